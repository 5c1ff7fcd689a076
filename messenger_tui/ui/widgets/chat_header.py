"""What the conversation's header line and its banners say: pure functions of the contact and
of what we know of them."""

from __future__ import annotations

from rich.text import Text

from messenger_tui.app.models import Contact
from messenger_tui.core.disappearing import describe
from messenger_tui.ui.formatting import short_address

#: The keys the header and banners name (the defaults; F1 lists the keymap in effect).
BLOCK_KEY = "Alt+X"
ACCEPT_KEY = "Alt+A"


def presence_mark(online: bool | None) -> tuple[str, str]:
    """The presence text and its style: ``online`` None means not known (our own link to the
    relay is down, so nobody's presence is current)."""
    if online is None:
        return "◌ unknown (you are offline)", "dim italic"
    return ("● online", "green") if online else ("○ offline", "dim")


def header_line(
    contact: Contact | None, *, online: bool | None, typing: bool, width: int, timer_s: int = 0
) -> Text:
    """The header: name, presence, typing, the disappearing-message timer, muted / blocked /
    request, and the trust state flush right."""
    if contact is None:
        return Text("messenger-tui", style="bold")
    line = Text(contact.name, style="bold")
    line.append("  ")
    line.append(*presence_mark(online))
    if typing:
        line.append(" · typing…", style="italic")
    if timer_s > 0:
        line.append(f" · ⏱ {describe(timer_s)}", style="bold")
    if contact.muted:
        line.append(" · muted", style="dim")
    if contact.blocked:
        line.append(f" · ⊘ blocked ({BLOCK_KEY})", style="bold red")
    elif contact.auto_added:
        line.append(" · message request", style="bold yellow")
    if contact.key_changed:
        trust = Text("⚠ key changed", style="bold red")
    elif contact.verified:
        trust = Text("✔ verified", style="green")
    else:
        trust = Text("not verified (F2)", style="dim")
    line.append(" " * max(2, width - line.cell_len - trust.cell_len))
    line.append_text(trust)
    return line


def key_banner(contact: Contact | None) -> str | None:
    """The warning under the conversation when the contact's identity key changed."""
    if contact is None or not contact.key_changed:
        return None
    return (
        f"⚠ {contact.name}'s identity key changed. Sending is blocked until you review "
        "the new safety number: press F2, compare it with them, then accept."
    )


def request_banner(contact: Contact | None) -> str | None:
    """The notice over a message request: who wrote (their address: the name is only what
    they announced) and the choices."""
    if contact is None or not contact.auto_added or contact.blocked or contact.key_changed:
        return None
    return (
        f"Message request from {short_address(contact.address, 24)}, not in your contacts. "
        f"{ACCEPT_KEY}: accept · {BLOCK_KEY}: block · Alt+R: rename · F2: safety number"
    )
