"""Sending from the main screen's composer, and telling the open conversation's contact that
we type. A message that cannot go out goes back into the composer (nothing typed is lost) with
the reason in a toast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger_tui.app.errors import AppError, KeyChangeBlocked
from messenger_tui.app.models import Contact

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


async def submit(screen: MainScreen, text: str) -> None:
    composer = screen.composer
    if screen.current is None:
        composer.restore(text)
        screen.app.notify("Open a conversation first (Esc, then ↑ ↓ Enter).", severity="warning")
        return
    contact = screen.current  # by id: the service reads it as stored now (renamed or not)
    try:
        message = await screen.service.send_text(contact.id, text)
    except KeyChangeBlocked:  # the service's gate (app/outgoing.py) is the only check
        composer.restore(text)
        screen.app.notify(
            f"{contact.name}'s key changed: review the safety number (F2) before sending.",
            severity="error",
        )
        banner = screen.query_one("#key-banner")
        banner.add_class("-flash")
        screen.set_timer(0.6, lambda: banner.remove_class("-flash"))
        return
    except AppError as exc:
        composer.restore(text)
        screen.app.notify(str(exc), severity="error")
        return
    screen.view.append([message])
    screen.view.jump_to_newest()
    screen.refresh_summaries({contact.id})


async def send_typing(screen: MainScreen, contact: Contact, active: bool) -> None:
    """Best effort: a typing notice that cannot go out is not worth a toast."""
    try:
        await screen.service.send_typing(contact.id, active)
    except AppError:
        pass
