"""Group call secrets: the join token the relay checks, and what travels over the E2E channel.

A group call has a random 16-byte ``call_id`` and a random 32-byte **call secret**, chosen by
the member who starts it and sent to the group's members inside the pairwise E2E channel
(:class:`GroupCallInvite`). Only members learn the secret. The relay join token is derived::

    join token = HKDF-SHA256(ikm = call secret, salt = call_id,
                             info = GROUP_JOIN_INFO, L = 32)

and the relay keys the call's room by ``SHA-256(join token)`` (:func:`room_id`): it never
stores the token, and someone who knows the call id (or sees a room id in a log) cannot join.
The relay learns the token of each leg that joins (as it does a 1:1 token) but the token opens
no audio: every participant seals its frames under its own frame keys
(:mod:`messenger_tui.core.calls.group_frames`), announced to the others one by one with
:class:`GroupCallFrameKey`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final

import msgspec

from messenger_tui.core.calls.group_frames import FrameKey
from messenger_tui.core.crypto.primitives import Rng, default_rng, hkdf_sha256
from messenger_tui.core.errors import CryptoError

#: HKDF info of the join token derivation.
GROUP_JOIN_INFO: Final = b"messenger-tui/group-call-join/v1"
GROUP_CALL_ID_LEN: Final = 16
CALL_SECRET_LEN: Final = 32
GROUP_JOIN_TOKEN_LEN: Final = 32
#: Most participants of one group call (the relay refuses the 17th leg).
MAX_GROUP_CALL_PARTICIPANTS: Final = 16


def new_call_secret(rng: Rng = default_rng) -> tuple[bytes, bytes]:
    """A fresh (call_id, call secret) for a new group call."""
    return rng(GROUP_CALL_ID_LEN), rng(CALL_SECRET_LEN)


def group_join_token(call_id: bytes, call_secret: bytes) -> bytes:
    """The token a participant shows the relay to join the call's room."""
    if len(call_id) != GROUP_CALL_ID_LEN or len(call_secret) != CALL_SECRET_LEN:
        raise CryptoError("group call ids are 16 bytes and call secrets 32 bytes")
    return hkdf_sha256(call_secret, salt=call_id, info=GROUP_JOIN_INFO, length=32)


def room_id(join_token: bytes) -> bytes:
    """What the relay keys a room by: SHA-256 of the join token."""
    return hashlib.sha256(join_token).digest()


class GroupCallInvite(msgspec.Struct, tag="group_call_invite", tag_field="t", frozen=True):
    """E2E, to every member: a group call started (or is in progress) in ``group_id``."""

    group_id: bytes
    call_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    secret: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    started_at_ms: int

    def __repr__(self) -> str:  # the secret never reaches logs
        return f"GroupCallInvite(call_id={self.call_id.hex()[:8]}…)"


class GroupCallFrameKey(msgspec.Struct, tag="group_call_key", tag_field="t", frozen=True):
    """E2E, to each participant present: the sender's new frame key for ``call_id``."""

    call_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    key_id: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
    key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]

    def frame_key(self) -> FrameKey:
        return FrameKey(self.key_id, self.key)

    def __repr__(self) -> str:
        return f"GroupCallFrameKey(key_id={self.key_id:#010x})"


class GroupCallOver(msgspec.Struct, tag="group_call_over", tag_field="t", frozen=True):
    """E2E, to every other member, from the last participant to leave: ``call_id`` in
    ``group_id`` is over (nobody is in it), so "call in progress, join" stops."""

    group_id: bytes
    call_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]

    def __repr__(self) -> str:
        return f"GroupCallOver(call_id={self.call_id.hex()[:8]}…)"


#: What travels over the E2E channel for group calls (ephemeral ``signal`` frames; all are
#: members of :data:`messenger_tui.core.payload.Payload`, encoded and decoded with it).
GroupCallMessage = GroupCallInvite | GroupCallFrameKey | GroupCallOver
