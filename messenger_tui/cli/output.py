"""What the headless commands print: lines for people (peer text made terminal-safe) and
JSON objects for scripts (``--json``: one object per line)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from messenger_tui.app.models import Contact, Message


def out(text: str = "") -> None:
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def short_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def contact_json(c: Contact) -> dict[str, Any]:
    return {
        "name": c.name,
        "address": c.address,
        "verified": c.verified,
        "key_changed": c.key_changed,
        "blocked": c.blocked,
        "message_request": c.auto_added,
    }


def message_json(contact: Contact, m: Message) -> dict[str, Any]:
    return {
        "id": m.message_id.hex(),
        "from": "me" if m.outgoing else contact.name,
        "to": contact.name if m.outgoing else "me",
        "contact": contact.name,
        "direction": "out" if m.outgoing else "in",
        "kind": m.kind,
        "text": m.text,
        "sent_at": iso(m.sent_at_ms),
        "sent_at_ms": m.sent_at_ms,
        "state": m.state,
    }


def receipt_json(contact: Contact, m: Message, state: str) -> dict[str, Any]:
    """A delivery or read receipt for one of our messages, as ``receive --json`` prints it."""
    return {
        "type": "receipt",
        "state": state,
        "id": m.message_id.hex(),
        "contact": contact.name,
        "text": m.text,
        "sent_at_ms": m.sent_at_ms,
    }


def terminal_safe(text: str) -> str:
    """Text from a peer, made harmless for a terminal: control characters (ESC sequences that
    could clear the screen, retitle the window or write the clipboard) become visible escapes;
    newlines and tabs stay."""
    return "".join(
        ch
        if ch in "\n\t" or (ch.isprintable() and not 0x80 <= ord(ch) < 0xA0)
        else f"\\x{ord(ch):02x}"
        if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}"
        for ch in text
    )


def print_message(contact: Contact, m: Message) -> None:
    who = "me" if m.outgoing else terminal_safe(contact.name)
    text = terminal_safe(m.text)
    if m.kind == "notice":
        out(f"[{short_time(m.sent_at_ms)}] ! {text}")
        return
    if m.kind == "call":
        out(f"[{short_time(m.sent_at_ms)}] (call) {text}")
        return
    state = f"  ({m.state})" if m.outgoing else ""
    out(f"[{short_time(m.sent_at_ms)}] {who}: {text}{state}")
