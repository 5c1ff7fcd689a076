"""Files in a group conversation in the app: Ctrl+O in the group screen sends a file to the
group; the view shows it under the sender's name with its size; both other members (in-process
services, through a real relay) save the same bytes; a file from a member shows with that
member's name. Voice: Ctrl+R in the group screen records for the group, Enter sends it to
every member, Alt+P plays it."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.app.service import MessengerService
from messenger_tui.media.wav_io import WavSink, WavSource
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.attach_prompt import AttachPrompt
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.widgets.voice_line import RecordingLine
from tests.helpers.clients import introduce, make_service, wait_for
from tests.helpers.pulseaudio import tone_pcm, write_wav
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, screen_text, wait_shown, wait_until
from .snapshot_facade import sample_image

pytestmark = pytest.mark.slow


@pytest.fixture
async def trio(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    carol = make_service(tmp_path, "carol", relay.url)
    await introduce(alice, bob)
    await introduce(alice, carol)
    await introduce(bob, carol)
    await alice.close()  # the app connects Alice again
    for s in (alice, bob, carol):
        s.set_download_dir(tmp_path / f"downloads-{s.name}")
    try:
        yield alice, bob, carol
    finally:
        for s in (alice, bob, carol):
            await s.close()
            s.profile.close()


def has_saved(service: MessengerService, name: str) -> bool:
    return saved_file(service, name) is not None


def has_voice(service: MessengerService) -> bool:
    return any(v.duration_ms is not None and v.status == "done" for v in service.transfers())


def saved_file(service: MessengerService, name: str) -> Path | None:
    for view in service.transfers():
        if view.direction == "down" and view.name == name and view.status == "done" and view.path:
            return Path(view.path)
    return None


async def test_attach_a_file_in_a_group(
    tmp_path: Path, trio: tuple[MessengerService, MessengerService, MessengerService]
) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    bob.groups.create("team", ["alice", "carol"])
    source = tmp_path / "plan.bin"
    source.write_bytes(os.urandom(300_000))
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_shown(pilot, "# team")
        clist = screen.conversation_list
        clist.focus()
        clist.highlighted = clist.get_option_index("group-1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, AttachPrompt), what="prompt")
        await pilot.press(*str(source), "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        await wait_shown(pilot, "you: [file] plan.bin")
        for member in (bob, carol):
            await wait_for(functools.partial(has_saved, member, "plan.bin"), timeout=30)
            saved = saved_file(member, "plan.bin")
            assert saved is not None
            digest = hashlib.sha256(saved.read_bytes()).hexdigest()
            assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
            history = member.groups.history("team")
            assert [(m.sender_name, m.kind) for m in history if m.kind == "attachment"] == [
                ("alice", "attachment")
            ]
        # alice's line says it reached both members
        await wait_shown(pilot, "delivered to 2 of 2")
        line = next(ln for ln in screen_text(app).splitlines() if "plan.bin" in ln)
        assert "292.9 KiB" not in line and "300000 bytes" in line

        # a file from bob shows with bob's name, saved at alice's side
        (tmp_path / "from-bob.txt").write_text("bob's notes\n")
        await bob.group_files.send_file("team", tmp_path / "from-bob.txt")
        await wait_shown(pilot, "bob: [file] from-bob.txt")
        await wait_for(lambda: saved_file(alice, "from-bob.txt") is not None, timeout=30)
        await wait_shown(pilot, "saved)")

        # a photo from bob shows its half-block preview under his line (the real service's
        # image_preview of a group message: the thumbnail, then the saved image)
        (tmp_path / "sunset.png").write_bytes(sample_image())
        await bob.group_files.send_file("team", tmp_path / "sunset.png")
        await wait_shown(pilot, "bob: [file] sunset.png")
        await wait_until(pilot, lambda: "▀" in screen_text(app), what="the preview")

        # Ctrl+R records for the group (a looping tone as the microphone); Enter sends it to
        # the members, Alt+P plays it in place
        mic = write_wav(tmp_path / "mic.wav", tone_pcm(440, 1.0))
        alice.voice.microphone = lambda: WavSource(mic, loop_audio=True, pace="thread")
        alice.voice.speaker = lambda: WavSink(tmp_path / "speaker.wav", pace="thread")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: alice.voice.recording is not None, what="recording")
        assert alice.voice.recording_for == "team" and alice.voice.recording_group
        assert app.screen.query_one(RecordingLine).display
        await pilot.pause(1.2)
        await pilot.press("enter")
        # 1.2 s of recording shows as 0:01, or 0:02 when a loaded machine delays the Enter
        await wait_until(
            pilot,
            lambda: any(f"you: [voice 0:0{s}]" in screen_text(app) for s in (1, 2)),
            what="the voice line",
        )
        for member in (bob, carol):
            await wait_for(functools.partial(has_voice, member), timeout=30)
            kinds = [
                m.kind for m in member.groups.history("team") if m.sender == alice.identity.public
            ]
            assert kinds == ["attachment", "voice"]
        await pilot.press("alt+p")
        await wait_until(pilot, lambda: alice.voice.player is not None, what="playing")
        await wait_shown(pilot, "⏸")
