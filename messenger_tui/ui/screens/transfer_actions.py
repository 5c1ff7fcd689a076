"""Files from the main screen: attach (a path prompt), the transfer bar, cancel, open, and
the inline image previews of the conversation view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

from messenger_tui.app.errors import AppError
from messenger_tui.app.models import TransferView
from messenger_tui.ui.image_display import choose_display, graphics_of
from messenger_tui.ui.screens.attach_prompt import AttachPrompt
from messenger_tui.ui.widgets.transfer_bar import TransferBar

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


def install_previews(screen: MainScreen) -> None:
    """The conversation view's image previews: half-blocks, or the terminal's graphics
    protocol as the ``image_preview`` setting and the terminal allow (ui/image_display.py)."""
    images = screen.view.images
    images.preview_loader = screen.service.image_preview
    images.picture_loader = screen.service.image_picture
    images.display_mode = lambda: display_mode(screen)


def display_mode(screen: Screen[Any]) -> str:
    """What images are drawn with on this screen now (kitty, sixel, half-blocks, off)."""
    service = getattr(screen, "service", None)
    setting = service.settings().image_preview if service is not None else "auto"
    return choose_display(setting, graphics_of(screen.app))


def attach(screen: MainScreen) -> None:
    """Ask for a path and send it to the open conversation's contact."""
    if screen.current is None:
        screen.app.notify("Open a conversation first (Esc, then ↑ ↓ Enter).", severity="warning")
        return
    contact = screen.current  # sent by id (the service reads it as stored then)

    async def chosen(path: str | None) -> None:
        if path is None:
            return
        try:
            view = await screen.service.send_file(contact.id, path)
        except AppError as exc:
            screen.app.notify(str(exc), severity="error")
            return
        bar(screen).update_transfer(view)
        if screen.current is not None and screen.current.id == contact.id:
            newest = screen.service.history(contact.id, limit=1)
            if newest and newest[-1].id == view.message_row:
                screen.view.append(newest)
                screen.view.jump_to_newest()
        screen.refresh_summaries({contact.id})

    screen.app.push_screen(AttachPrompt(contact.name), chosen)


def bar(screen: MainScreen) -> TransferBar:
    return screen.query_one(TransferBar)


def transfers_changed(screen: MainScreen, views: list[TransferView]) -> None:
    transfer_bar = bar(screen)
    for view in views:
        transfer_bar.update_transfer(view)
        if view.status == "done" and view.direction == "down" and view.message_row is not None:
            screen.view.reload_preview(view.message_row)  # from the full image now


def open_newest(screen: MainScreen) -> None:
    """Open the newest received file of the open conversation with the desktop's program
    (only on this request: received files never open by themselves)."""
    current = screen.current
    if current is None:
        screen.app.notify("Open a conversation first (Esc, then ↑ ↓ Enter).", severity="warning")
        return
    saved = [
        v
        for v in screen.service.transfers()
        if v.contact_id == current.id and v.direction == "down" and v.status == "done"
    ]
    if not saved:
        screen.app.notify("No received file to open here.", severity="warning")
        return
    newest = max(saved, key=lambda v: v.id)
    try:
        screen.service.open_file(newest.id)
    except AppError as exc:
        screen.app.notify(str(exc), severity="error")
        return
    screen.app.notify(f"Opening {newest.name}", markup=False)


def conversation_opened(screen: MainScreen, contact_id: int | None) -> None:
    transfer_bar = bar(screen)
    if contact_id is not None and transfer_bar.contact_id is None:
        transfer_bar.load(screen.service.transfers())
    transfer_bar.show_contact(contact_id)


def cancel_newest(screen: MainScreen) -> None:
    """Cancel the newest transfer shown for the open conversation (a failed one is dropped
    from the bar the same way)."""
    shown = bar(screen).shown_transfers()
    if not shown:
        screen.app.notify("No file transfer to cancel here.", severity="warning")
        return
    newest = max(shown, key=lambda v: v.id)
    try:
        view = screen.service.cancel_transfer(newest.id)
    except AppError as exc:
        screen.app.notify(str(exc), severity="error")
        return
    bar(screen).update_transfer(view)
    screen.app.notify(f"Cancelled {view.name}", markup=False)
