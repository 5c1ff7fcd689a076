"""Desktop notifications: ``notify-send`` on a local graphical session, otherwise an escape
sequence the terminal turns into a notification (OSC 777 ``notify``, or OSC 9 for the
terminals that speak that one).

The text comes from peers (their name, their message), so everything placed in an escape
sequence or a command line goes through :func:`sanitize` first: no control characters (an
ESC or BEL could end the sequence early and smuggle in another one), no ``;`` (the field
separator of OSC 777, and OSC 9 treats ``4;`` as a progress report), bounded length.

Inside tmux the sequence is wrapped in tmux's DCS passthrough (``ESC P tmux; … ESC \\``):
checked with tmux 3.3, which drops a bare OSC 777 or OSC 9 instead of passing it on, and
forwards the wrapped one when ``set -g allow-passthrough on`` is set.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from textual.app import App

from messenger_tui.app.models import Contact, Message, Settings
from messenger_tui.ui.formatting import clean_text, preview

MAX_TITLE = 64
MAX_BODY = 160
PRIVATE_TITLE = "messenger-tui"
PRIVATE_BODY = "New message"

#: Terminals that show OSC 9 notifications (the rest get OSC 777, as VTE, foot, urxvt,
#: Ghostty and WezTerm understand it).
_OSC9_TERM_PROGRAMS = frozenset({"iTerm.app", "WezTerm"})


def sanitize(text: str, limit: int = MAX_BODY) -> str:
    """``text`` made safe to place in an escape sequence or a notification: control and
    formatting characters (C0, C1, DEL, bidi overrides) dropped, line breaks and tabs made
    spaces, ``;`` made ``,``, runs of spaces collapsed, cut to ``limit`` characters."""
    out: list[str] = []
    for ch in text:
        if ch in "\n\r\t\v\f":
            out.append(" ")
        elif ch == ";":
            out.append(",")
        elif ch.isprintable():
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)].rstrip() + "…"
    return cleaned


def osc777(title: str, body: str) -> str:
    return f"\x1b]777;notify;{sanitize(title, MAX_TITLE)};{sanitize(body)}\x1b\\"


def osc9(title: str, body: str) -> str:
    text = sanitize(f"{title}: {body}" if body else title)
    if text[:1].isdigit():
        text = " " + text  # "4;…" would be a progress report (ConEmu, Windows Terminal)
    return f"\x1b]9;{text}\x1b\\"


def tmux_passthrough(sequence: str) -> str:
    """Wrap ``sequence`` for tmux's passthrough (every ESC inside doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def notification_text(sender: str, text: str, *, private: bool) -> tuple[str, str]:
    """Title and body of a notification for a message; ``private``: neither sender nor
    content, just that there is a new message."""
    if private:
        return PRIVATE_TITLE, PRIVATE_BODY
    return sanitize(sender, MAX_TITLE) or PRIVATE_TITLE, sanitize(text)


def _spawn_detached(argv: list[str]) -> None:
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        pass


def write_to_terminal(app: App[object], text: str) -> None:
    """Write an escape sequence to the app's real terminal (nothing in a headless test)."""
    driver = app._driver
    if driver is not None:
        driver.write(text)
        driver.flush()


@dataclass
class DesktopNotifier:
    """Sends desktop notifications. ``write`` puts text on the real terminal (the app's
    driver); ``env``, ``which`` and ``spawn`` are swappable for tests."""

    write: Callable[[str], None]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    which: Callable[[str], str | None] = shutil.which
    spawn: Callable[[list[str]], None] = _spawn_detached

    @property
    def method(self) -> str:
        """``notify-send`` (a local graphical session that has it), ``osc9`` or ``osc777``."""
        env = self.env
        graphical = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
        remote = bool(env.get("SSH_CONNECTION") or env.get("SSH_TTY"))
        if graphical and not remote and self.which("notify-send"):
            return "notify-send"
        program = env.get("TERM_PROGRAM", "")
        if program in _OSC9_TERM_PROGRAMS or env.get("WT_SESSION") or env.get("ConEmuPID"):
            return "osc9"
        return "osc777"

    def notify(self, title: str, body: str) -> str:
        """Show a notification; returns the method used."""
        title = sanitize(title, MAX_TITLE) or PRIVATE_TITLE
        body = sanitize(body)
        method = self.method
        if method == "notify-send":
            # Notification daemons read a small HTML subset in the body (<a href>, <b>...).
            body = html.escape(body, quote=False)
            self.spawn(["notify-send", "--app-name=messenger-tui", "--", title, body])
            return method
        sequence = osc9(title, body) if method == "osc9" else osc777(title, body)
        if self.env.get("TMUX"):
            sequence = tmux_passthrough(sequence)
        self.write(sequence)
        return method


def announce(
    app: App[object],
    notifier: DesktopNotifier,
    settings: Settings,
    texts: list[tuple[Contact, Message]],
) -> None:
    """Tell the user about new messages (already without muted contacts' ones), as the
    settings say: a toast per message (at most three, then a count); while the terminal does
    not have the focus, the bell (tmux marks the window) and a desktop notification."""
    if not texts:
        return
    if settings.toasts:
        for contact, message in texts[-3:]:
            app.notify(
                preview(clean_text(message.text), 200), title=contact.name, timeout=4, markup=False
            )
        if len(texts) > 3:
            app.notify(f"and {len(texts) - 3} more messages", timeout=4)
    if app.app_focus:
        return
    if settings.bell:
        app.bell()
    if settings.desktop:
        contact, message = texts[-1]
        if len(texts) == 1 or settings.private:
            title, body = notification_text(contact.name, message.text, private=settings.private)
        else:
            senders = sorted({c.name for c, _ in texts})
            title, body = f"{len(texts)} new messages", "from " + ", ".join(senders)
        notifier.notify(title, body)
