"""Row types of the group tables (schema 006) and their converters from SQL rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.core.message_states import MessageState, is_message_state


@dataclass(frozen=True)
class GroupRow:
    id: int
    group_id: bytes
    name: str
    log: bytes
    sending_key: bytes | None
    rotate: bool
    pending: bytes | None
    send_seq: int
    is_member: bool
    muted: bool
    dropped: int


@dataclass(frozen=True)
class MemberRow:
    identity: bytes
    admin: bool
    name: str | None
    key_sent: int | None


@dataclass(frozen=True)
class GroupMessageRow:
    id: int
    group_row: int
    sender: bytes
    message_id: bytes
    outgoing: bool
    kind: str
    body: str
    sent_at_ms: int
    received_at_ms: int | None
    state: MessageState
    pos: int


@dataclass(frozen=True)
class GroupOutboxRow:
    seq: int
    group_row: int
    envelope_id: bytes
    body: bytes
    message_row: int | None
    after_outbox_seq: int
    recipients: tuple[bytes, ...]


GROUP_COLS = (
    "id, group_id, name, log, sending_key, rotate, pending, send_seq, is_member, muted, dropped"
)
MESSAGE_COLS = (
    "id, group_row, sender, message_id, outgoing, kind, body, sent_at_ms, received_at_ms, "
    "state, pos"
)


def group_from_sql(r: tuple[Any, ...]) -> GroupRow:
    return GroupRow(
        id=int(r[0]),
        group_id=bytes(r[1]),
        name=str(r[2]),
        log=bytes(r[3]),
        sending_key=bytes(r[4]) if r[4] is not None else None,
        rotate=bool(r[5]),
        pending=bytes(r[6]) if r[6] is not None else None,
        send_seq=int(r[7]),
        is_member=bool(r[8]),
        muted=bool(r[9]),
        dropped=int(r[10]),
    )


def message_from_sql(r: tuple[Any, ...]) -> GroupMessageRow:
    return GroupMessageRow(
        id=int(r[0]),
        group_row=int(r[1]),
        sender=bytes(r[2]),
        message_id=bytes(r[3]),
        outgoing=bool(r[4]),
        kind=str(r[5]),
        body=str(r[6]),
        sent_at_ms=int(r[7]),
        received_at_ms=int(r[8]) if r[8] is not None else None,
        state=r[9] if is_message_state(r[9]) else "error",
        pos=int(r[10]),
    )
