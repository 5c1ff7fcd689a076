"""The members panel of a group conversation (F2 there): every member with its role, and the
actions on the group: add, remove, make or unmake admin (admins), rename, leave, and a
member's safety number (their identity key changed: "! key changed", as in 1:1).

The panel is a list; its keys act on the highlighted member. What an admin may do is
checked by the app (a refusal shows as an error notice, nothing changes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from messenger_tui.app.errors import AppError, BadInput
from messenger_tui.app.group_models import Group, GroupMember
from messenger_tui.app.models import Contact
from messenger_tui.ui.screens.group_message_text import member_colour

if TYPE_CHECKING:
    from messenger_tui.ui.screens.group_chat import GroupChatScreen


def member_label(member: GroupMember, contact: Contact | None) -> Text:
    """One row: the name, "admin", "you", and "! key changed" when their key changed."""
    line = Text("★ " if member.admin else "  ", style="yellow")
    line.append("you" if member.me else member.name, style=f"bold {member_colour(member.identity)}")
    if member.admin:
        line.append(" admin", style="dim")
    if contact is not None and contact.key_changed:
        line.append(" ! key changed", style="bold red")
    elif contact is not None and contact.verified:
        line.append(" ✓", style="green")
    elif contact is None and not member.me:
        line.append(" (not a contact)", style="dim")
    return line


class MemberList(OptionList):
    """The members of the open group; the keys below act on the highlighted one."""

    BINDINGS = [
        Binding("a", "screen.add_members", "Add", id="group.members.add",
                tooltip="Add contacts to the group (admins)"),
        Binding("delete,r", "screen.remove_member", "Remove", id="group.members.remove",
                tooltip="Remove the highlighted member from the group (admins)"),
        Binding("p", "screen.toggle_admin", "Admin", id="group.members.admin",
                tooltip="Make the highlighted member an admin, or no longer one (admins)"),
        Binding("s", "screen.member_safety", "Safety no.", id="group.members.safety",
                tooltip="The highlighted member's safety number (verify them, or accept "
                        "their changed key)"),
        Binding("n", "screen.rename_group", "Rename", id="group.members.rename",
                tooltip="Rename the group (every member sees the new name)"),
        Binding("l", "screen.leave_group", "Leave", id="group.members.leave",
                tooltip="Leave the group (asks first; the history stays)"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    MemberList { width: 34; height: 1fr; border: none; border-left: solid $panel-lighten-2;
                 padding: 0 1; }
    MemberList:focus { border: none; border-left: solid $accent; }
    MemberList.-hidden { display: none; }
    """

    def show_group(self, group: Group, contact_of: dict[int, Contact]) -> None:
        highlighted = self.highlighted
        self.clear_options()
        self.add_option(Option(Text(f"{len(group.members)} members", style="bold"), disabled=True))
        for m in group.members:
            contact = contact_of.get(m.contact_id) if m.contact_id is not None else None
            self.add_option(Option(member_label(m, contact), id=m.identity.hex()))
        if highlighted is not None and highlighted < self.option_count:
            self.highlighted = highlighted
        elif self.option_count > 1:
            self.highlighted = 1

    def highlighted_identity(self) -> bytes | None:
        if self.highlighted is None:
            return None
        option_id = self.get_option_at_index(self.highlighted).id
        return bytes.fromhex(option_id) if option_id else None


def toggle_panel(screen: GroupChatScreen) -> None:
    """F2: show the panel (focused) or hide it (back to the composer)."""
    panel = screen.query_one(MemberList)
    group = screen.group
    if panel.has_class("-hidden") and group is not None:
        panel.remove_class("-hidden")
        panel.show_group(group, screen.contacts_of(group))
        panel.focus()
    else:
        panel.add_class("-hidden")
        screen.composer.focus()


def highlighted_member(screen: GroupChatScreen) -> GroupMember | None:
    identity = screen.query_one(MemberList).highlighted_identity()
    group = screen.group
    if identity is None or group is None:
        return None
    return next((m for m in group.members if m.identity == identity), None)


def add_members(screen: GroupChatScreen) -> None:
    from messenger_tui.ui.screens.group_dialogs import AddMembersScreen

    group = screen.group
    if group is not None:
        screen.app.push_screen(AddMembersScreen(screen.service, group), lambda _: screen.reload())


def rename_group(screen: GroupChatScreen) -> None:
    from messenger_tui.ui.screens.group_dialogs import RenameGroupScreen

    group = screen.group
    if group is not None:
        screen.app.push_screen(RenameGroupScreen(screen.service, group), lambda _: screen.reload())


def leave_group(screen: GroupChatScreen) -> None:
    from messenger_tui.ui.screens.contact_dialogs import ConfirmScreen

    group = screen.group
    if group is None or not group.is_member:
        return

    def answered(yes: bool | None) -> None:
        if not yes or group is None:
            return
        try:
            screen.service.groups.leave(group.name)
        except AppError as exc:
            screen.notify(str(exc), severity="error", markup=False)
        screen.reload()

    question = f"Leave {group.name}? You keep its history but get no new messages."
    screen.app.push_screen(ConfirmScreen("Leave group", question, "Leave"), answered)


def member_safety(screen: GroupChatScreen) -> None:
    from messenger_tui.ui.screens.safety import SafetyNumberScreen

    member = highlighted_member(screen)
    if member is None or member.me:
        return
    service = screen.service
    contact = service.contact_by_id(member.contact_id) if member.contact_id is not None else None
    if contact is None:
        screen.notify(f"{member.name} is not a contact: add them to see a safety number")
        return
    screen.app.push_screen(SafetyNumberScreen(service, contact), lambda _: screen.reload())


def apply(screen: GroupChatScreen, what: str) -> None:
    """Run one members-panel action on the open group (``what``: the action's name)."""
    group = screen.group
    if group is None:
        return
    member = screen.highlighted_member()
    groups = screen.service.groups
    try:
        if what == "remove":
            if member is None or member.me:
                screen.notify("Highlight a member to remove (to go yourself: l, leave)")
                return
            groups.remove(group.name, [_contact_name(screen, member)])
        elif what == "admin":
            if member is None:
                return
            groups.set_admin(group.name, [_contact_name(screen, member)], not member.admin)
    except AppError as exc:
        screen.notify(str(exc), severity="error", markup=False)
        return
    screen.reload()


def _contact_name(screen: GroupChatScreen, member: GroupMember) -> str:
    """The app names members by contact name; one that is no contact cannot be picked."""
    contact = (
        screen.service.contact_by_id(member.contact_id) if member.contact_id is not None else None
    )
    if contact is None:
        raise BadInput(f"{member.name} is not one of your contacts: add them first")
    return contact.name
