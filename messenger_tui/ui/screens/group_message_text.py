"""How a group message reads on screen: its line (time, sender in the member's colour, the
text with ``@name`` mentions styled, our delivery and read counts) and who a text mentions."""

from __future__ import annotations

import hashlib

from rich.text import Text

from messenger_tui.app.group_models import GroupMember, GroupMessage
from messenger_tui.ui.formatting import list_time

#: Colours of member names, picked by a hash of the member's identity key.
MEMBER_COLOURS = ("cyan", "magenta", "green", "yellow", "bright_blue", "bright_red", "orange3")


def member_colour(identity: bytes) -> str:
    return MEMBER_COLOURS[hashlib.sha256(identity).digest()[0] % len(MEMBER_COLOURS)]


def mentioned_members(text: str, members: tuple[GroupMember, ...]) -> list[bytes]:
    """The identity keys of the other members ``text`` names as ``@name``."""
    folded = text.casefold()
    return [m.identity for m in members if not m.me and f"@{m.name}".casefold() in folded]


def highlight_mentions(body: Text, names: list[str], own: str) -> None:
    """Style every ``@name`` of a member in ``body``; a mention of ``own`` stands out."""
    plain = body.plain.casefold()
    for name in sorted(set(names), key=len, reverse=True):
        if not name:
            continue
        needle = f"@{name}".casefold()
        style = "bold reverse" if name == own else "bold underline"
        start = plain.find(needle)
        while start >= 0:
            body.stylize(style, start, start + len(needle))
            start = plain.find(needle, start + len(needle))


def message_line(m: GroupMessage, names: list[str] | None = None, own: str = "") -> Text:
    """One message as the view shows it (``names``: the members' names, for mentions)."""
    when = Text(f"{list_time(m.sent_at_ms)} ", style="dim")
    if m.kind == "notice":
        return when + Text(f"! {m.text}", style="italic dim")
    name = "you" if m.outgoing else m.sender_name
    body = Text(f": {m.text}")
    if names and "@" in m.text:
        highlight_mentions(body, names, own)
    line = when + Text(name, style=f"bold {member_colour(m.sender)}") + body
    if m.outgoing:
        if m.state == "queued":
            state = "queued"
        else:
            state = f"delivered to {m.delivered} of {m.recipients}"
            if m.read:
                state += f", read by {m.read}"
        line.append(f"  ({state})", style="dim")
    return line
