"""The main screen's contact actions: add, safety number, rename, block / unblock, delete, mute
a conversation and accept a message request. Each acts on the open conversation's contact
(else the one highlighted in the list), tells the user what happened in a plain-text toast,
and leaves the screen showing the stored state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger_tui.app.errors import AppError
from messenger_tui.app.models import Contact
from messenger_tui.ui.widgets.chat_header import BLOCK_KEY

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


def contact_to_manage(screen: MainScreen) -> Contact | None:
    """The open conversation's contact, else the highlighted one in the list."""
    contact = screen.current
    if contact is None:
        cid = screen.conversation_list.highlighted_contact
        contact = screen.service.contact_by_id(cid) if cid is not None else None
    if contact is None:
        screen.app.notify("Open a conversation first.", severity="warning")
    return contact


def add(screen: MainScreen) -> None:
    """The add-contact dialog; the new contact's conversation opens."""
    from messenger_tui.ui.screens.add_contact import AddContactScreen

    async def added(contact: Contact | None) -> None:
        if contact is None:
            return
        await screen.service.watch_presence()
        screen.refresh_all_summaries()
        await screen.open_conversation(contact.id)

    screen.app.push_screen(AddContactScreen(screen.service), added)


def own_address(screen: MainScreen) -> None:
    """Our address and its QR code, to give to someone who adds us."""
    from messenger_tui.ui.screens.own_address import OwnAddressScreen

    screen.app.push_screen(OwnAddressScreen(screen.service))


def safety_number(screen: MainScreen) -> None:
    from messenger_tui.ui.screens.safety import SafetyNumberScreen

    contact = contact_to_manage(screen)
    if contact is not None:
        screen.app.push_screen(SafetyNumberScreen(screen.service, contact))


def _updated(screen: MainScreen, updated: Contact) -> None:
    """Show a contact the store changed: list, header, and the open conversation."""
    if screen.current is not None and screen.current.id == updated.id:
        screen.current = updated
        screen.view.set_their_name(updated.name)
    screen.refresh_all_summaries()
    screen.refresh_header()


def rename(screen: MainScreen) -> None:
    from messenger_tui.ui.screens.contact_dialogs import RenameContactScreen

    contact = contact_to_manage(screen)
    if contact is None:
        return

    def renamed(updated: Contact | None) -> None:
        if updated is None:
            return
        _updated(screen, updated)
        screen.app.notify(f"{contact.name} is now called {updated.name}.", markup=False)

    screen.app.push_screen(RenameContactScreen(screen.service, contact), renamed)


def toggle_block(screen: MainScreen) -> None:
    contact = contact_to_manage(screen)
    if contact is None:
        return
    try:
        updated = screen.service.set_blocked(contact.id, not contact.blocked)
    except AppError as exc:
        screen.app.notify(str(exc), severity="error", markup=False)
        return
    _updated(screen, updated)
    screen.app.notify(
        f"{updated.name} is blocked: their messages are dropped unseen and you cannot "
        f"write to them ({BLOCK_KEY} unblocks)."
        if updated.blocked
        else f"{updated.name} is unblocked.",
        markup=False,
    )


def accept_request(screen: MainScreen) -> None:
    """Make a message request's sender a contact (they then get read receipts)."""
    contact = contact_to_manage(screen)
    if contact is None:
        return
    if not contact.auto_added:
        screen.app.notify(f"{contact.name} is already a contact.", markup=False)
        return
    try:
        updated = screen.service.add_contact(contact.address, contact.name)
    except AppError as exc:
        screen.app.notify(str(exc), severity="error", markup=False)
        return
    _updated(screen, updated)
    screen.app.notify(
        f"{updated.name} is now a contact (Alt+R renames them; F2 verifies them).",
        markup=False,
    )


def toggle_mute(screen: MainScreen) -> None:
    contact = screen.current
    if contact is None:
        screen.app.notify("Open a conversation first.", severity="warning")
        return
    try:
        updated = screen.service.set_muted(contact.id, not contact.muted)
    except AppError as exc:
        screen.app.notify(str(exc), severity="error", markup=False)
        return
    screen.current = updated
    screen.refresh_summaries({updated.id})
    screen.refresh_header()
    screen.app.notify(
        f"{updated.name} muted: no notifications (Alt+M to unmute)."
        if updated.muted
        else f"{updated.name} unmuted.",
        markup=False,
    )


def delete(screen: MainScreen) -> None:
    from messenger_tui.ui.screens.contact_dialogs import ConfirmScreen

    contact = contact_to_manage(screen)
    if contact is None:
        return

    def confirmed(yes: bool | None) -> None:
        if not yes:
            return
        try:
            screen.service.delete_contact(contact.id)
        except AppError as exc:
            screen.app.notify(str(exc), severity="error", markup=False)
            return
        screen.forget_draft(contact.id)
        screen.refresh_all_summaries()
        screen.refresh_header()
        screen.conversation_list.focus()
        screen.app.notify(f"{contact.name} and your conversation were deleted.", markup=False)

    screen.app.push_screen(
        ConfirmScreen(
            f"Delete {contact.name}?",
            f"This deletes {contact.name}, your whole conversation with them and any "
            "message still waiting to be sent. It cannot be undone. (To stop their "
            f"messages but keep the conversation, block them instead: {BLOCK_KEY}.)",
            "Delete",
        ),
        confirmed,
    )


def disappearing_timer(screen: MainScreen) -> None:
    """Pick the open conversation's disappearing-message timer (both sides)."""
    from messenger_tui.core.disappearing import describe
    from messenger_tui.ui.screens.timer_dialog import DisappearingTimerScreen

    contact = contact_to_manage(screen)
    if contact is None:
        return

    async def chosen(seconds: int | None) -> None:
        if seconds is None:
            return
        try:
            screen.service.set_disappearing_timer(contact.id, seconds)
        except AppError as exc:
            screen.app.notify(str(exc), severity="error", markup=False)
            return
        screen.app.notify(
            f"Disappearing messages with {contact.name}: {describe(seconds)}", markup=False
        )
        screen.refresh_header()

    current = screen.service.disappearing_timer(contact.id)
    screen.app.push_screen(DisappearingTimerScreen(contact, current), chosen)
