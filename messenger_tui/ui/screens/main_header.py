"""The main screen's header: the open conversation's name, presence, typing and timer, and the
key-change and message-request banners under it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.models import Contact
from messenger_tui.ui.widgets.chat_header import header_line, key_banner, request_banner

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


def refresh_header(screen: MainScreen) -> None:
    """The header line (name, presence, typing, timer) and the key-change and message-request
    banners of the open conversation."""
    header = screen.query_one("#chat-header", Static)
    contact = screen.current
    online = screen.presence.get(contact.id, False) if contact is not None else None
    line = header_line(
        contact,
        online=online if screen.conn_state == "connected" else None,
        typing=contact is not None and contact.id in screen.typing,
        width=header.content_region.width or 60,
        timer_s=screen.timer_of(contact),
    )
    header.update(line)
    for banner_id, text in (
        ("#key-banner", key_banner(contact)),
        ("#request-banner", request_banner(contact)),
    ):
        banner = screen.query_one(banner_id, Static)
        if text is not None:
            banner.update(text)
        banner.set_class(text is not None, "-shown")


def timer_of(screen: MainScreen, contact: Contact | None) -> int:
    if contact is None:
        return 0
    try:
        return screen.service.disappearing_timer(contact.id)
    except AppError:  # deleted meanwhile
        return 0
