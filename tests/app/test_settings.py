"""The service's settings: stored in the profile, defaults from the config file, and what
each one changes (read receipts, typing), the relay URL, the passphrase, mute."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput, PassphraseProblem
from messenger_tui.app.models import Settings
from messenger_tui.app.profile import open_profile
from messenger_tui.app.service import MessengerService
from tests.helpers.clients import make_service

OFFLINE_URL = "ws://127.0.0.1:9"
Pair = tuple[MessengerService, MessengerService]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    alice = make_service(tmp_path, "alice", OFFLINE_URL)
    bob = make_service(tmp_path, "bob", OFFLINE_URL)
    alice.add_contact(bob.address, "Bob")
    bob.add_contact(alice.address, "Alice")
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


def _reopen(service: MessengerService, passphrase: str | None = None) -> MessengerService:
    home = service.profile.paths.home
    service.profile.close()
    return MessengerService(open_profile(home, passphrase))


def gated(service: MessengerService) -> bool:
    """Read afresh (mypy keeps an earlier check's narrowing on the attribute)."""
    return service.calls.gated


def _incoming(service: MessengerService, name: str, text: str) -> None:
    contact = service.contact(name)
    with service.store.db.transaction():
        service.store.messages.insert(
            contact.id, os.urandom(16), outgoing=False, body=text,
            sent_at_ms=int(time.time() * 1000), received_at_ms=1, state="received",
        )  # fmt: skip


async def test_defaults_update_and_survive_a_restart(pair: Pair) -> None:
    alice, _bob = pair
    s = alice.settings()
    assert s == Settings(relay_url=OFFLINE_URL, passphrase_set=False)
    changed = alice.update_settings(read_receipts=False, theme="nord", desktop=True)
    assert (changed.read_receipts, changed.theme, changed.desktop) == (False, "nord", True)
    with pytest.raises(BadInput, match="unknown setting 'colour'"):
        alice.update_settings(colour="red")
    with pytest.raises(BadInput, match="true or false"):
        alice.update_settings(typing="no")
    with pytest.raises(BadInput):  # nothing stored when one of the changes is wrong
        alice.update_settings(bell=False, typing="no")
    assert alice.settings().bell is True
    await alice.close()
    again = _reopen(alice)
    try:
        s = again.settings()
        assert (s.read_receipts, s.theme, s.desktop, s.typing) == (False, "nord", True, True)
    finally:
        again.profile.close()


async def test_config_defaults_apply_until_changed_in_the_app(pair: Pair) -> None:
    alice, _bob = pair
    alice.set_setting_defaults({"theme": "gruvbox", "private": True})
    assert alice.settings().theme == "gruvbox" and alice.settings().private
    alice.update_settings(private=False)  # changed in the app: stored, wins over the file
    assert alice.settings().private is False and alice.settings().theme == "gruvbox"
    with pytest.raises(BadInput):
        alice.set_setting_defaults({"nope": True})


async def test_call_bitrate_is_checked_stored_and_reaches_the_media_session(pair: Pair) -> None:
    """The bitrate sets the Opus rate and, with it, the one size of every frame sent."""
    from messenger_tui.core.calls.media_keys import CallRole, derive_media_keys
    from messenger_tui.media.session import MediaSession
    from tests.core.calls.test_messages_and_keys import CALL_ID, CALLEE, CALLER

    alice, _bob = pair
    assert alice.settings().call_bitrate_kbps == 24
    bad: Any
    for bad in (11, 65, "32", True, 24.0):
        with pytest.raises(BadInput, match="call_bitrate_kbps"):
            alice.update_settings(call_bitrate_kbps=bad)
    alice.set_setting_defaults({"call_bitrate_kbps": 16})
    assert alice.settings().call_bitrate_kbps == 16
    assert alice.update_settings(call_bitrate_kbps=40).call_bitrate_kbps == 40

    keys = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )

    class Nothing:
        def start(self, _callback: object) -> None: ...
        def stop(self) -> None: ...
        async def close(self) -> None: ...
        def send(self, _frame: bytes) -> bool:
            return True

    def session() -> MediaSession:
        made = alice._call_ports.make_session(keys, Nothing(), Nothing(), Nothing(), print, print)
        assert isinstance(made, MediaSession)
        return made

    s = session()
    assert s.settings.bitrate == 40_000 and s.payload_size == 4 + 2 * 125  # 1.25 x 100 B
    alice.call_bitrate_override = 12  # headless --bitrate: this call only
    assert session().payload_size == 4 + 2 * 38
    assert alice.settings().call_bitrate_kbps == 40
    await alice.close()
    again = _reopen(alice)
    try:
        assert again.settings().call_bitrate_kbps == 40
    finally:
        again.profile.close()


async def test_read_receipts_off_keeps_the_local_read_state_but_sends_nothing(pair: Pair) -> None:
    alice, _bob = pair
    _incoming(alice, "Bob", "one")
    before = alice.outbox_count()
    alice.update_settings(read_receipts=False)
    assert await alice.mark_read(alice.contact("Bob").id) == 1
    summary = alice.conversation(alice.contact("Bob").id)
    assert summary is not None and summary.unread == 0  # seen locally
    assert alice.outbox_count() == before  # no read receipt queued
    alice.update_settings(read_receipts=True)
    _incoming(alice, "Bob", "two")
    assert await alice.mark_read(alice.contact("Bob").id) == 1
    assert alice.outbox_count() == before + 1


async def test_typing_off_neither_shows_nor_sends(pair: Pair) -> None:
    alice, _bob = pair
    events = alice.subscribe()
    bob = alice.contact("Bob")
    alice.update_settings(typing=False)
    alice._emit(ev.TypingChanged(bob, True))
    assert events.empty()
    alice.update_settings(typing=True)
    alice._emit(ev.TypingChanged(bob, True))
    assert isinstance(events.get_nowait(), ev.TypingChanged)


async def test_relay_url_is_checked_and_stored(pair: Pair) -> None:
    alice, _bob = pair
    with pytest.raises(BadInput):
        await alice.set_relay_url("http://example.org")
    with pytest.raises(BadInput):
        await alice.set_relay_url("not a url")
    assert alice.settings().relay_url == OFFLINE_URL
    s = await alice.set_relay_url("  ws://127.0.0.1:10  ")
    assert s.relay_url == "ws://127.0.0.1:10" == alice.profile.relay_url
    assert alice._client.endpoint.connect_url.startswith("ws://127.0.0.1:10")


async def test_several_relay_urls_of_one_deployment_are_checked_and_stored(pair: Pair) -> None:
    """The settings' Relay URL field takes the nodes of one relay, comma-separated (issue 16);
    the client starts on the first."""
    alice, _bob = pair
    s = await alice.set_relay_url("ws://127.0.0.1:10, ws://127.0.0.1:11")
    assert s.relay_url == "ws://127.0.0.1:10,ws://127.0.0.1:11" == alice.profile.relay_url
    assert alice._client.endpoint.connect_url.startswith("ws://127.0.0.1:10")
    for bad in ("ws://127.0.0.1:10,http://x", "ws://127.0.0.1:10,ws://127.0.0.1:10"):
        with pytest.raises(BadInput):
            await alice.set_relay_url(bad)
    assert alice.settings().relay_url == "ws://127.0.0.1:10,ws://127.0.0.1:11"  # unchanged


async def test_passphrase_set_change_remove(pair: Pair) -> None:
    alice, _bob = pair
    home = alice.profile.paths.home
    s = await alice.change_passphrase(None, "first secret")
    assert s.passphrase_set
    with pytest.raises(PassphraseProblem, match="wrong"):
        await alice.change_passphrase("not it", "second")
    with pytest.raises(PassphraseProblem, match="current passphrase"):
        await alice.change_passphrase(None, "second")
    await alice.change_passphrase("first secret", "second secret")
    await alice.close()
    alice.profile.close()
    with pytest.raises(PassphraseProblem):
        open_profile(home, "first secret")
    with pytest.raises(PassphraseProblem):
        open_profile(home, None)
    profile = open_profile(home, "second secret")
    reopened = MessengerService(profile)
    try:
        assert reopened.address == alice.address
        s = await reopened.change_passphrase("second secret", None)  # remove it
        assert not s.passphrase_set
    finally:
        profile.close()
    open_profile(home, None).close()


async def test_mute_is_stored_and_announced(pair: Pair) -> None:
    alice, _bob = pair
    events = alice.subscribe()
    muted = alice.set_muted(alice.contact("Bob").id, True)
    assert muted.muted and alice.contact("Bob").muted
    changed = events.get_nowait()
    assert isinstance(changed, ev.ContactChanged) and changed.contact.muted
    assert alice.set_muted(alice.contact("Bob").id, False).muted is False


async def test_talk_mode_is_stored_and_gates_the_next_call(pair: Pair) -> None:
    """The talk mode: open by default, stored, one of three; a mode other than open makes the
    calls start with the mic gate closed (app/calls.py)."""
    alice, _bob = pair
    assert alice.settings().talk_mode == "open" and not alice.calls.gated
    with pytest.raises(BadInput, match="talk_mode"):
        alice.update_settings(talk_mode="push")
    assert alice.update_settings(talk_mode="hold").talk_mode == "hold"
    assert gated(alice) and alice.settings().talk_mode == "hold"
    assert alice.update_settings(talk_mode="open").talk_mode == "open"
    assert not gated(alice)
