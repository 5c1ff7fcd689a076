"""Calls in the UI, end to end: two real in-process services on a real relay process, each
with its own app (Alice and Bob press keys in their own UI), media through the relay's media
route. Audio comes from WAV sources and goes to WAV sinks that run on a real 20 ms clock (no
devices): Alice's microphone plays a tone, so Bob's remote level shows whether he hears her.

Shown: F5 in a conversation calls; the other side's incoming-call modal opens (while another
conversation is open there) and rings; "a" accepts and both panes go "in call" with the timer;
F6 mutes (Alice's pane says muted, Bob's remote level falls to silence); F7 hangs up; the
call-log entries appear in both conversations. Declining ("d") shows "declined" on the
caller's pane and in both logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from messenger_tui.app.service import MessengerService
from messenger_tui.core.address import encode_address
from messenger_tui.media.ports import AudioSink, AudioSource
from messenger_tui.media.wav_io import WavSink, WavSource
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.incoming_call import IncomingCallScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.widgets.call_pane import CallPane
from tests.helpers.clients import introduce, make_service
from tests.helpers.pulseaudio import tone_pcm, write_wav
from tests.helpers.relay_process import RelayProcess

from .conftest import SMALL, wait_until

pytestmark = pytest.mark.slow

#: The call log of a short completed call ("Outgoing call, 0:03").
COMPLETED = r"{} call, 0:0\d"


def wav_audio(tmp: Path, name: str, *, tone: bool) -> Callable[[], tuple[AudioSource, AudioSink]]:
    """An audio factory: a looping 440 Hz tone (or silence) as the microphone, a WAV file as
    the speaker, both paced by their own 20 ms real-time clocks."""
    mic = write_wav(tmp / f"{name}-mic.wav", tone_pcm(440, 1.0) if tone else bytes(96_000))

    def make() -> tuple[AudioSource, AudioSink]:
        return WavSource(mic, loop_audio=True), WavSink(tmp / f"{name}-speaker.wav")

    return make


@pytest.fixture
async def pair(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    await introduce(alice, bob)  # both published their prekeys
    await alice.close()  # each app connects its service again
    await bob.close()
    alice.set_audio(wav_audio(tmp_path, "alice", tone=True))
    bob.set_audio(wav_audio(tmp_path, "bob", tone=False))
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


def main_of(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def pane_text(app: MessengerApp) -> str:
    return main_of(app).query_one(CallPane).text


def log_lines(app: MessengerApp) -> str:
    return "\n".join(main_of(app).view.text_lines())


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 15.0
) -> None:
    await wait_until(pilot, predicate, what=what, timeout=timeout)


async def connected_with_conversation(pilot: Pilot[None], app: MessengerApp, name: str) -> None:
    service = app.service
    assert service is not None
    screen = main_of(app)
    await until(pilot, lambda: service.connected, f"{service.name} connected")
    contact = next(c for c in service.contacts() if c.name == name)
    await screen.open_conversation(contact.id, focus_composer=True)
    await until(pilot, lambda: app.focused is screen.composer, "the composer focused")


async def ringing_at_bob(
    alice_pilot: Pilot[None], bob_pilot: Pilot[None], bob_app: MessengerApp, rings: list[int]
) -> IncomingCallScreen:
    """Alice presses F5; Bob's incoming-call modal opens and rings."""
    await alice_pilot.press("f5")
    await until(
        bob_pilot,
        lambda: isinstance(bob_app.screen, IncomingCallScreen) and bob_app.screen.is_mounted,
        "Bob's incoming-call modal",
    )
    modal = bob_app.screen
    assert isinstance(modal, IncomingCallScreen)
    assert modal.call.contact is not None and modal.call.contact.name == "alice"
    await until(bob_pilot, lambda: bool(rings), "the bell")
    return modal


async def test_call_accept_mute_hang_up_and_the_call_log(
    pair: tuple[MessengerService, MessengerService], tmp_path: Path
) -> None:
    alice, bob = pair
    # Bob has another conversation open when the call comes in.
    carol = bob.add_contact(encode_address(os.urandom(32)), "Carol")
    alice_app, bob_app = make_app(alice), make_app(bob)
    rings: list[int] = []
    bob_app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with alice_app.run_test(size=SMALL) as ap, bob_app.run_test(size=SMALL) as bp:
        await connected_with_conversation(ap, alice_app, "bob")
        await until(bp, lambda: bob.connected, "Bob connected")
        await main_of(bob_app).open_conversation(carol.id)

        modal = await ringing_at_bob(ap, bp, bob_app, rings)
        await until(ap, lambda: "ringing…" in pane_text(alice_app), "Alice's pane ringing")
        assert "Carol" in main_of(bob_app).header_text  # the modal opened over Carol
        assert "Carol" not in str(modal.query_one(".dialog-title").render())

        await bp.press("a")
        await until(bp, lambda: not isinstance(bob_app.screen, IncomingCallScreen), "modal gone")
        for app, pilot in ((alice_app, ap), (bob_app, bp)):

            def in_call_with_timer(app: MessengerApp = app) -> bool:
                return re.search(r"in call · 00:0\d", pane_text(app)) is not None

            assert app.service is not None
            await until(
                pilot, in_call_with_timer, f"{app.service.name}'s pane in call with the timer"
            )
        # Accepting opened Alice's conversation at Bob's.
        await until(bp, lambda: "alice" in main_of(bob_app).header_text, "Bob sees Alice's chat")
        # Bob hears Alice's tone; both health lines reach "peer playing".
        bob_pane = main_of(bob_app).query_one(CallPane)
        alice_pane = main_of(alice_app).query_one(CallPane)
        await until(
            bp,
            lambda: bob_pane.stats is not None and bob_pane.stats.remote_level > 0.05,
            "Bob's remote level showing Alice's tone",
        )
        await until(
            ap,
            lambda: "peer playing ✓" in pane_text(alice_app) and "rtt" in pane_text(alice_app),
            "Alice's health line all ✓ and her statistics",
        )
        assert alice_pane.stats is not None and alice_pane.stats.frames_sent > 0
        # The footer recomposes after the call state changes (empty while it does): wait for
        # the in-call keys rather than reading it mid-recompose.
        await until(
            ap,
            lambda: "f6" in _footer(alice_app) and "f7" in _footer(alice_app),
            "Alice's footer offers F6 and F7",
        )
        assert "f5" not in _footer(alice_app)

        # F6 (from the composer, which binds F6 itself) mutes: Alice's pane says so, and Bob
        # gets silence.
        assert alice_app.focused is main_of(alice_app).composer
        await ap.press("f6")
        await until(ap, lambda: "· muted" in pane_text(alice_app), "Alice's pane muted")
        assert "(muted: they hear silence)" in pane_text(alice_app)
        assert (call := alice.current_call()) is not None and call.muted
        await until(
            bp,
            lambda: bob_pane.stats is not None and bob_pane.stats.remote_level < 0.01,
            "silence at Bob",
        )

        # F7 hangs up: both calls end, and each conversation logs the call.
        await ap.press("f7")
        await until(ap, lambda: "call ended: hung up" in pane_text(alice_app), "Alice ended")
        await until(bp, lambda: "call ended: hung up" in pane_text(bob_app), "Bob ended")
        await until(
            ap,
            lambda: re.search(COMPLETED.format("Outgoing"), log_lines(alice_app)) is not None,
            "Alice's call log",
        )
        await until(
            bp,
            lambda: re.search(COMPLETED.format("Incoming"), log_lines(bob_app)) is not None,
            "Bob's call log",
        )
        await until(ap, lambda: "f5" in _footer(alice_app), "F5 back in the footer")
        assert "f6" not in _footer(alice_app) and "f7" not in _footer(alice_app)


async def test_decline_shows_declined_on_both_sides(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    alice_app, bob_app = make_app(alice), make_app(bob)
    rings: list[int] = []
    bob_app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with alice_app.run_test(size=SMALL) as ap, bob_app.run_test(size=SMALL) as bp:
        await connected_with_conversation(ap, alice_app, "bob")
        await connected_with_conversation(bp, bob_app, "alice")

        await ringing_at_bob(ap, bp, bob_app, rings)
        await bp.press("d")
        await until(ap, lambda: "call ended: declined" in pane_text(alice_app), "declined")
        await until(
            ap, lambda: "Outgoing call, declined" in log_lines(alice_app), "Alice's call log"
        )
        await until(bp, lambda: "Declined call" in log_lines(bob_app), "Bob's call log")
        assert not isinstance(bob_app.screen, IncomingCallScreen)
        assert (call := alice.current_call()) is not None and call.state == "ended"


def _footer(app: MessengerApp) -> str:
    """The keys the main screen's footer shows now."""
    return " ".join(
        str(getattr(key, "key_display", ""))
        for key in main_of(app).query("FittingFooter FooterKey")
    )


async def test_hold_to_talk_without_releases_toggles_the_mic_bob_hears(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    """Alice chose hold-to-talk; her terminal (the headless driver) reports no key releases,
    so F4 toggles. Her call starts with the mic closed: Bob hears silence until she presses
    F4, hears her tone, and silence again after the next F4 (real services, real relay)."""
    alice, bob = pair
    alice.update_settings(talk_mode="hold")
    alice_app, bob_app = make_app(alice), make_app(bob)
    rings: list[int] = []
    bob_app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with alice_app.run_test(size=SMALL) as ap, bob_app.run_test(size=SMALL) as bp:
        await connected_with_conversation(ap, alice_app, "bob")
        await connected_with_conversation(bp, bob_app, "alice")
        await ringing_at_bob(ap, bp, bob_app, rings)
        await bp.press("a")
        await until(ap, lambda: "in call" in pane_text(alice_app), "Alice in call")
        bob_pane = main_of(bob_app).query_one(CallPane)
        await until(
            bp, lambda: bob_pane.stats is not None and bob_pane.stats.frames_received > 150,
            "Bob receiving",
        )  # fmt: skip
        assert bob_pane.stats is not None and bob_pane.stats.remote_level < 0.01
        text = " ".join(pane_text(alice_app).split())
        assert "mic closed: F4 to talk" in text and "F4 toggles" in text
        assert "f4" in _footer(alice_app)
        await ap.press("f4")
        await until(
            bp, lambda: bob_pane.stats is not None and bob_pane.stats.remote_level > 0.05,
            "Bob hears Alice's tone",
        )  # fmt: skip
        assert "talking (F4 to stop)" in pane_text(alice_app)
        await ap.press("f4")
        await until(
            bp, lambda: bob_pane.stats is not None and bob_pane.stats.remote_level < 0.01,
            "silence at Bob again",
        )  # fmt: skip
        await ap.press("f7")
        await until(bp, lambda: "call ended: hung up" in pane_text(bob_app), "Bob ended")
