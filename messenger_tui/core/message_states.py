"""The delivery states of a stored message, one name for the storage, the app and the UI."""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

#: Own messages: queued -> sent -> delivered -> read, or error (the relay refused it).
#: Incoming messages: received -> seen.
MessageState = Literal["queued", "sent", "delivered", "read", "received", "seen", "error"]
MESSAGE_STATES: Final[tuple[str, ...]] = get_args(MessageState)


def is_message_state(value: object) -> TypeGuard[MessageState]:
    return value in MESSAGE_STATES
