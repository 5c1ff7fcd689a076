"""Read models of group chats the facade hands out (plain, immutable, free of storage)."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_tui.core.message_states import MessageState


@dataclass(frozen=True)
class GroupMember:
    identity: bytes
    #: The contact's name, else the name the member gives itself, else a fingerprint.
    name: str
    admin: bool
    #: The local contact id if the member is a contact (None: not one).
    contact_id: int | None
    me: bool = False


@dataclass(frozen=True)
class Group:
    id: int  # local row id
    group_id: bytes
    name: str
    members: tuple[GroupMember, ...]
    #: False once we left or were removed (the history stays).
    is_member: bool
    #: We may add and remove members.
    admin: bool
    unread: int = 0
    #: Group messages dropped (from non-members, undecryptable, given up while held).
    dropped: int = 0
    #: No toast, bell or desktop notification for its messages, except those mentioning us.
    muted: bool = False


@dataclass(frozen=True)
class GroupMessage:
    id: int  # local row id (a row of the message log, as a 1:1 message's)
    group_row: int
    message_id: bytes
    sender: bytes
    sender_name: str
    outgoing: bool
    kind: str  # text | notice
    text: str
    sent_at_ms: int
    received_at_ms: int | None
    state: MessageState
    #: Own messages: members that have it, and that read it (of ``recipients``).
    delivered: int = 0
    read: int = 0
    recipients: int = 0


@dataclass(frozen=True)
class GroupSearchHit:
    """One search result in a group: as :class:`~messenger_tui.app.facade.SearchHit` for a
    1:1 conversation (a snippet around the match; ``highlights``: the character spans of the
    matched terms), with the group instead of the contact."""

    group: Group
    message: GroupMessage
    snippet: str
    highlights: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class GroupCallParticipant:
    """One line of a group call's participants list (besides us)."""

    identity: bytes
    name: str
    #: Its voice activity bit within the last 0.3 s.
    speaking: bool = False
    #: Its last frame's level (dBov, 0 to -127).
    level_dbov: int = -127
    frames_received: int = 0
    #: Loss while the relay forwarded it (its talk bursts; media/group_receive.py).
    loss_percent: float = 0.0
    #: Its jitter buffer's delay.
    delay_ms: float = 0.0
    #: Heard from yet (its key arrived and a frame opened).
    heard: bool = False
    #: Frames of its talk bursts that arrived, of those its bursts spanned.
    voice_frames_received: int = 0
    voice_frames_expected: int = 0


@dataclass(frozen=True)
class GroupCallView:
    """A group's call as this member sees it."""

    group_row: int
    group_name: str
    #: idle | ringing | in_progress ("call in progress, join") | joining | in_call | ended
    state: str
    participants: tuple[GroupCallParticipant, ...] = ()
    muted: bool = False
    #: Why the last join or the audio failed, in words.
    problem: str | None = None
    #: When we joined (wall clock, ms), in a call.
    joined_ms: int | None = None
