"""Notifications: toasts, the bell and desktop notifications as the settings say; mute per
contact; privacy; escape sequences that peers' text cannot break out of."""

from __future__ import annotations

import os
import time

import pytest
from textual import events
from textual.pilot import Pilot

from messenger_tui.app import events as ev
from messenger_tui.app.rows import message_model
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.notify import (
    DesktopNotifier,
    notification_text,
    osc9,
    osc777,
    sanitize,
    tmux_passthrough,
)
from messenger_tui.ui.screens.main import MainScreen

from .conftest import SMALL, screen_text, wait_until

EVIL = "Eve\x1b]52;c;ZXZpbA==\x07\x1b\\;rm\x9c\u202e\x00\nnext"


def test_sanitize_removes_every_control_character() -> None:
    clean = sanitize(EVIL)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in clean)
    assert "\u202e" not in clean and ";" not in clean
    assert clean == "Eve]52,c,ZXZpbA==\\,rm next"
    assert sanitize("x" * 500, 10) == "x" * 9 + "…"


def test_desktop_escape_sequences_cannot_be_broken_out_of() -> None:
    seq = osc777(EVIL, EVIL)
    assert seq.startswith("\x1b]777;notify;") and seq.endswith("\x1b\\")
    inner = seq[len("\x1b]777;notify;") : -2]
    assert "\x1b" not in inner and "\x07" not in inner and "\x9c" not in inner
    assert inner.count(";") == 1  # just the title/body separator
    nine = osc9("4", "progress?")
    assert nine.startswith("\x1b]9; 4") and nine.count("\x1b") == 2  # never "9;4;…"
    wrapped = tmux_passthrough(seq)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]777") and wrapped.endswith("\x1b\x1b\\\x1b\\")


def test_the_method_follows_the_environment() -> None:
    written: list[str] = []
    spawned: list[list[str]] = []

    def notifier(env: dict[str, str], has_notify_send: bool) -> DesktopNotifier:
        return DesktopNotifier(
            written.append, env=env,
            which=lambda _: "/usr/bin/notify-send" if has_notify_send else None,
            spawn=spawned.append,
        )  # fmt: skip

    assert notifier({"DISPLAY": ":0"}, True).notify("Bob\x1b", "hi\x07") == "notify-send"
    assert spawned == [["notify-send", "--app-name=messenger-tui", "--", "Bob", "hi"]]
    ssh = {"DISPLAY": ":0", "SSH_CONNECTION": "1 2 3 4"}
    assert notifier(ssh, True).notify("Bob", "hi") == "osc777"  # not the remote desktop
    assert written.pop() == "\x1b]777;notify;Bob;hi\x1b\\"
    assert notifier({"TERM_PROGRAM": "iTerm.app"}, False).notify("Bob", "hi") == "osc9"
    assert written.pop() == "\x1b]9;Bob: hi\x1b\\"
    assert notifier({"TMUX": "/tmp/tmux-1/default,1,0"}, False).notify("Bob", "hi") == "osc777"
    assert written.pop() == "\x1bPtmux;\x1b\x1b]777;notify;Bob;hi\x1b\x1b\\\x1b\\"
    assert notification_text("Bob", "secret", private=True) == ("messenger-tui", "New message")


def _incoming(
    service: MessengerService, name: str, text: str, kind: str = "text"
) -> ev.MessageReceived:
    """Store an unread message from ``name`` and build the event the service would emit."""
    contact = service.contact(name)
    with service.store.db.transaction():
        row = service.store.messages.insert(
            contact.id, os.urandom(16), outgoing=False, body=text,
            sent_at_ms=int(time.time() * 1000), received_at_ms=1, state="received",
            kind=kind,
        )  # fmt: skip
    assert row is not None  # a fresh random id: never a duplicate
    return ev.MessageReceived(contact, message_model(row))


class Captured:
    def __init__(
        self, app: MessengerApp, screen: MainScreen, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.written: list[str] = []
        self.bells = 0
        screen.notifier = DesktopNotifier(
            self.written.append, env={"TERM": "xterm-256color"}, which=lambda _: None
        )

        def bell() -> None:
            self.bells += 1

        monkeypatch.setattr(app, "bell", bell)
        self.app = app

    @property
    def toasts(self) -> list[str]:
        return [f"{n.title}: {n.message}" for n in self.app._notifications]


async def _unfocused_app(
    pilot: Pilot[None], app: MessengerApp, monkeypatch: pytest.MonkeyPatch
) -> tuple[MainScreen, Captured]:
    await wait_until(pilot, lambda: app.main_screen is not None)
    screen = app.main_screen
    assert screen is not None
    app.post_message(events.AppBlur())
    await wait_until(pilot, lambda: not app.app_focus)
    return screen, Captured(app, screen, monkeypatch)


async def test_toast_bell_and_desktop_notification_while_unfocused(
    offline_pair: tuple[MessengerService, MessengerService], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _bob = offline_pair
    alice.update_settings(desktop=True)
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen, got = await _unfocused_app(pilot, app, monkeypatch)
        await screen.apply_events([_incoming(alice, "Bob", "lunch at \x1b[2J noon?")])
        await pilot.pause()
        assert got.toasts == ["Bob: lunch at \ufffd[2J noon?"]
        assert got.bells == 1
        assert got.written == ["\x1b]777;notify;Bob;lunch at [2J noon?\x1b\\"]

        # Privacy: the desktop notification says only that there is a new message.
        alice.update_settings(private=True)
        await screen.apply_events([_incoming(alice, "Bob", "the secret plan")])
        await pilot.pause()
        assert got.written[-1] == "\x1b]777;notify;messenger-tui;New message\x1b\\"
        assert "Bob" not in got.written[-1] and "secret" not in got.written[-1]

        # Toasts, bell and desktop notifications off: none of them.
        alice.update_settings(toasts=False, bell=False, desktop=False)
        before = len(got.toasts)
        await screen.apply_events([_incoming(alice, "Bob", "quiet")])
        await pilot.pause()
        assert (len(got.toasts), got.bells, len(got.written)) == (before, 2, 2)

        # Focused again: a toast only (no bell, no desktop notification).
        alice.update_settings(toasts=True, bell=True, desktop=True, private=False)
        app.post_message(events.AppFocus())
        await wait_until(pilot, lambda: app.app_focus)
        await screen.apply_events([_incoming(alice, "Bob", "hello again")])
        await pilot.pause()
        assert got.toasts[-1] == "Bob: hello again"
        assert (got.bells, len(got.written)) == (2, 2)


async def test_mute_suppresses_notifications_but_counts_unread(
    offline_pair: tuple[MessengerService, MessengerService], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _bob = offline_pair
    alice.update_settings(desktop=True)
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen, got = await _unfocused_app(pilot, app, monkeypatch)
        app.post_message(events.AppFocus())
        await wait_until(pilot, lambda: app.app_focus)
        await pilot.press("enter")  # open Bob
        await wait_until(pilot, lambda: screen.current is not None)
        await pilot.press("alt+m")
        await wait_until(pilot, lambda: alice.contact("Bob").muted, what="muted")
        assert "muted" in screen.header_text
        await pilot.press("escape")  # focus the list; Bob's conversation stays open
        app.post_message(events.AppBlur())
        await wait_until(pilot, lambda: not app.app_focus)
        toasts = len(got.toasts)
        await screen.apply_events([_incoming(alice, "Bob", "psst")])
        await pilot.pause()
        assert (len(got.toasts), got.bells, got.written) == (toasts, 0, [])
        bob_id = alice.contact("Bob").id
        conversation = alice.conversation(bob_id)
        assert conversation is not None and conversation.unread == 1  # still counted
        await wait_until(pilot, lambda: "psst" in screen_text(app), what="shown in the view")

        # The palette entry unmutes; notifications come back.
        await pilot.press("ctrl+p")
        await pilot.press(*"Unmute conversation")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not alice.contact("Bob").muted, what="unmuted")
        app.post_message(events.AppBlur())
        await wait_until(pilot, lambda: not app.app_focus)
        await screen.apply_events([_incoming(alice, "Bob", "again")])
        await pilot.pause()
        assert got.bells == 1 and len(got.written) == 1


async def test_a_received_file_or_voice_message_notifies_and_counts_unread_like_a_text(
    offline_pair: tuple[MessengerService, MessengerService], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _bob = offline_pair
    alice.update_settings(desktop=True)
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen, got = await _unfocused_app(pilot, app, monkeypatch)
        await screen.apply_events([_incoming(alice, "Bob", "[file] photo.jpg", "attachment")])
        await pilot.pause()
        assert got.toasts == ["Bob: [file] photo.jpg"]
        assert got.bells == 1
        assert got.written == ["\x1b]777;notify;Bob;[file] photo.jpg\x1b\\"]
        await screen.apply_events([_incoming(alice, "Bob", "[voice 0:12]", "voice")])
        await pilot.pause()
        assert got.toasts[-1] == "Bob: [voice 0:12]" and got.bells == 2
        # a notice is not something Bob sent: no toast, not unread
        await screen.apply_events([_incoming(alice, "Bob", "key changed", "notice")])
        await pilot.pause()
        assert len(got.toasts) == 2 and got.bells == 2
        conversation = alice.conversation(alice.contact("Bob").id)
        assert conversation is not None and conversation.unread == 2
