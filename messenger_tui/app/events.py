"""Plain event objects the service publishes; the UI and the CLI react to them."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_tui.app.group_models import Group, GroupCallView, GroupMessage
from messenger_tui.app.models import CallStats, CallView, Contact, Message, TransferView
from messenger_tui.core.message_states import MessageState


@dataclass(frozen=True)
class MessageReceived:
    contact: Contact
    message: Message


@dataclass(frozen=True)
class MessageStateChanged:
    """An own message moved to ``state`` (sent, delivered, read)."""

    contact: Contact
    message_row: int
    state: MessageState


@dataclass(frozen=True)
class MessageFailed:
    """An incoming envelope could not be opened; it was dropped and noted in the chat."""

    contact: Contact | None
    sender: bytes
    reason: str


@dataclass(frozen=True)
class ContactChanged:
    contact: Contact


@dataclass(frozen=True)
class TypingChanged:
    contact: Contact
    active: bool


@dataclass(frozen=True)
class PresenceChanged:
    contact: Contact
    online: bool


@dataclass(frozen=True)
class ConnectionChanged:
    """``state`` is one of offline, connecting, connected, reconnecting."""

    state: str
    retry_in: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class OutboxChanged:
    waiting: int


@dataclass(frozen=True)
class BacklogDrained:
    """Everything the relay had queued for us was processed and stored."""


@dataclass(frozen=True)
class CallChanged:
    """The call's state, ringing, mute, media link or problem changed."""

    call: CallView


@dataclass(frozen=True)
class GroupCallChanged:
    """A group's call rang, was joined or left, its participants or their health changed
    (while in a call, about once a second)."""

    call: GroupCallView


@dataclass(frozen=True)
class CallStatsChanged:
    """Fresh statistics of the active call, about once a second."""

    stats: CallStats


@dataclass(frozen=True)
class GroupChanged:
    """A group was created, joined, renamed, or its members changed (or we left it)."""

    group: Group


@dataclass(frozen=True)
class GroupMessageReceived:
    group: Group
    message: GroupMessage
    #: The message mentions us (``@`` our name): notified even when the group is muted.
    mentioned: bool = False


@dataclass(frozen=True)
class GroupTypingChanged:
    """A member started or stopped typing in a group (an ephemeral notice)."""

    group: Group
    member: bytes
    name: str
    active: bool


@dataclass(frozen=True)
class GroupMessageStateChanged:
    """An own group message was stored by the relay or delivered to or read by a member
    (``message`` carries the per-member counts)."""

    group: Group
    message: GroupMessage


@dataclass(frozen=True)
class TransferChanged:
    """An attachment transfer moved (bytes done, rate, time left) or changed status
    (app/transfers.py); at most a few per second per transfer."""

    transfer: TransferView


@dataclass(frozen=True)
class TimerChanged:
    """The conversation's disappearing-message timer is now ``seconds`` (0: off);
    ``by_me``: this profile set it (else the contact did)."""

    contact: Contact
    seconds: int
    by_me: bool


@dataclass(frozen=True)
class MessagesExpired:
    """These messages (local row ids) of the conversation with ``contact_id`` disappeared:
    they are gone from the database; remove their lines."""

    contact_id: int
    message_rows: tuple[int, ...]


@dataclass(frozen=True)
class GroupTimerChanged:
    """The group's disappearing-message timer is now ``seconds`` (0: off); ``by_me``: this
    profile set it (else a member did)."""

    group: Group
    seconds: int
    by_me: bool


@dataclass(frozen=True)
class GroupMessagesExpired:
    """These messages (local row ids) of the group with local row id ``group_row``
    disappeared: they are gone from the database; remove their lines."""

    group_row: int
    message_rows: tuple[int, ...]


Event = (
    MessageReceived
    | MessageStateChanged
    | MessageFailed
    | ContactChanged
    | TypingChanged
    | PresenceChanged
    | ConnectionChanged
    | OutboxChanged
    | BacklogDrained
    | CallChanged
    | CallStatsChanged
    | GroupCallChanged
    | (GroupChanged | GroupMessageReceived | GroupMessageStateChanged | GroupTypingChanged)
    | TransferChanged
    | TimerChanged
    | MessagesExpired
    | (GroupTimerChanged | GroupMessagesExpired)
)
