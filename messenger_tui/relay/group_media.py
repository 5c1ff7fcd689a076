"""Group calls on the media route: rooms of up to 16 legs, forwarding like an SFU.

A group leg connects to ``/media`` and authenticates like a 1:1 leg, then sends
``group_join(token)`` (:mod:`messenger_tui.core.group_media_wire`). The relay keys the room by
SHA-256 of the token (:func:`messenger_tui.core.calls.group_keys.room_id`) and keeps no token:
only members can derive it, so a stranger who knows the call id finds no room (it would open a
new, empty room of its own that no member ever joins, and that closes after the alone timeout).

Rules of a room (:class:`GroupRooms`):

1. One leg per identity. A second join by the same identity replaces the older connection
   (close 4000), the way a client resumes; it is not a new participant.
2. At most ``max_participants`` (16) identities; the next join is refused (``room_full``,
   close 1008).
3. A join or leave is announced at once to every other leg (``group_member``), so each
   participant rotates its frame key; the joiner gets the present identities in
   ``group_joined``.
4. Each frame a leg sends (first byte 0x02) is forwarded, unread beyond its level byte, to
   every other leg whose speaker selection includes the sender (at most the 3 loudest,
   :mod:`messenger_tui.relay.speakers`). Nothing is queued beyond the per-leg write limit of
   1:1 legs (``media_write_limit``): a congested leg's frame is dropped and counted. The
   per-leg rate limit, frame size limit and abuse strikes are the 1:1 legs'.
5. A leg alone in its room for ``media_alone_timeout_s`` is closed (``alone_timeout``, 4001).
6. ``group_leave`` closes the leg (1000) after telling the others; so does any disconnect.

Logs carry an 8-hex-digit prefix of the room id, identity fingerprints and counts only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Final, Protocol

from websockets.exceptions import ConnectionClosed

from messenger_tui.core import group_media_wire as gw
from messenger_tui.core import wire
from messenger_tui.core.calls.group_keys import MAX_GROUP_CALL_PARTICIPANTS, room_id
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.media_wire import MediaErrorCode
from messenger_tui.relay.handshake import CLOSE_POLICY
from messenger_tui.relay.speakers import SpeakerSelector

if TYPE_CHECKING:
    from messenger_tui.relay.media_route import MediaRouteConnection

#: Close code of a leg replaced by a newer connection of the same identity.
CLOSE_REPLACED: Final = 4000
#: Normal close after ``group_leave``.
CLOSE_LEFT: Final = 1000


@dataclass
class GroupStats:
    """Counters of the group rooms since the relay started."""

    joins: int = 0
    replaced: int = 0
    refused_full: int = 0
    leaves: int = 0
    received: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    not_selected: int = 0  # frames a receiver did not get: the sender was not among its loudest
    dropped_congested: int = 0
    dropped_oversized: int = 0
    dropped_rate_limited: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


class GroupLeg(Protocol):
    """A joined group connection as the rooms see it."""

    @property
    def identity(self) -> bytes: ...

    def deliver(self, data: bytes) -> bool:
        """Write one media frame now, or False (congested or closing)."""
        ...

    def member_changed(self, identity: bytes, present: bool, alone: bool) -> None:
        """Another participant joined or left; ``alone``: this leg is now the only one."""
        ...

    def replace(self) -> None:
        """A newer connection of the same identity took this place: close this one."""
        ...


class GroupJoinOutcome(Enum):
    JOINED = "joined"
    RESUMED = "resumed"
    FULL = "full"


class Room:
    """The legs of one group call."""

    __slots__ = ("key", "label", "legs", "selector")

    def __init__(self, key: bytes) -> None:
        self.key = key  # the room id: SHA-256 of the join token
        self.label = key.hex()[:8]
        self.legs: dict[bytes, GroupLeg] = {}
        self.selector: SpeakerSelector[bytes] = SpeakerSelector(
            max_speakers=gw.MAX_FORWARDED_SPEAKERS
        )


class GroupRooms:
    """Group call rooms by room id (sans-I/O: legs come in as :class:`GroupLeg`)."""

    def __init__(self, max_participants: int = MAX_GROUP_CALL_PARTICIPANTS) -> None:
        self._rooms: dict[bytes, Room] = {}
        self.max_participants = max_participants
        self.stats = GroupStats()

    def __len__(self) -> int:
        return len(self._rooms)

    def room(self, token: bytes) -> Room | None:
        return self._rooms.get(room_id(token))

    def join(self, leg: GroupLeg, token: bytes) -> tuple[GroupJoinOutcome, Room | None]:
        key = room_id(token)
        room = self._rooms.get(key)
        if room is None:
            room = self._rooms[key] = Room(key)
        identity = leg.identity
        older = room.legs.get(identity)
        if older is None and len(room.legs) >= self.max_participants:
            self.stats.refused_full += 1
            return GroupJoinOutcome.FULL, None
        room.legs[identity] = leg
        self.stats.joins += 1
        if older is not None:
            self.stats.replaced += 1
            older.replace()
            return GroupJoinOutcome.RESUMED, room
        room.selector.add(identity)
        for other_id, other in room.legs.items():
            if other_id != identity:
                other.member_changed(identity, True, alone=False)
        return GroupJoinOutcome.JOINED, room

    def leave(self, leg: GroupLeg, room: Room) -> None:
        """``leg`` ended; no-op if a newer connection of its identity holds the place."""
        identity = leg.identity
        if room.legs.get(identity) is not leg:
            return
        del room.legs[identity]
        self.stats.leaves += 1
        room.selector.remove(identity)
        if not room.legs:
            if self._rooms.get(room.key) is room:
                del self._rooms[room.key]
            return
        alone = len(room.legs) == 1
        for other in room.legs.values():
            other.member_changed(identity, False, alone=alone)

    def forward(self, room: Room, sender: bytes, data: bytes, now: float) -> None:
        """Forward one frame of ``sender`` to the receivers that select it."""
        stats = self.stats
        selector = room.selector
        selector.observe(sender, data[1] if len(data) > 1 else 127, now)
        for receiver_id, receiver in room.legs.items():
            if receiver_id == sender:
                continue
            if not selector.forwards(receiver_id, sender):
                stats.not_selected += 1
            elif receiver.deliver(data):
                stats.forwarded += 1
                stats.forwarded_bytes += len(data)
            else:
                stats.dropped_congested += 1


class GroupLegSession:
    """The group part of one media route connection, after authentication: join, forward,
    leave. Uses the connection's bounded write paths (``deliver``, ``_send_control``)."""

    def __init__(self, conn: MediaRouteConnection, rooms: GroupRooms, join: gw.GroupJoin) -> None:
        self._c = conn
        self._rooms = rooms
        self._join = join
        self._room: Room | None = None
        self._log = conn._s.log

    @property
    def identity(self) -> bytes:
        return self._c.identity

    def deliver(self, data: bytes) -> bool:
        return self._c.deliver(data)

    def member_changed(self, identity: bytes, present: bool, alone: bool) -> None:
        if self._room is None:
            return
        self._c._send_control(gw.ParticipantChange(identity=identity, present=present))
        if present:
            self._c._cancel_alone()
        elif alone:
            self._c._arm_alone()

    def replace(self) -> None:
        label = self._room.label if self._room else "-"
        self._log.info("group %s (%s): replaced by a newer connection", label, self._c._label)
        self._room = None
        self._c._error(MediaErrorCode.REPLACED, "replaced by a newer connection of this leg")
        _spawn_close(self._c, CLOSE_REPLACED, "replaced by a newer connection of this leg")

    async def run(self) -> None:
        conn = self._c
        outcome, room = self._rooms.join(self, self._join.token)
        if room is None:
            self._log.info("group %s: refused, room full", conn._label)
            conn._error(
                gw.GroupErrorCode.ROOM_FULL,
                f"this call has {self._rooms.max_participants} participants already",
            )
            await conn._close(CLOSE_POLICY, "room full")
            return
        self._room = room
        config = conn._config
        others = [identity for identity in room.legs if identity != self.identity]
        conn._send_control(
            gw.GroupJoined(
                participants=others,
                max_participants=self._rooms.max_participants,
                alone_timeout_ms=int(config.media_alone_timeout_s * 1000),
                max_frame=config.media_max_frame,
            )
        )
        if not others:
            conn._arm_alone()
        self._log.info(
            "group %s (%s): %s, %d present", room.label, conn._label, outcome.value, len(others)
        )
        try:
            await self._forward()
        except ConnectionClosed:
            pass
        finally:
            if self._room is not None:
                current, self._room = self._room, None
                self._rooms.leave(self, current)
            self._log.info(
                "group %s (%s): left (code %s, received %d)",
                room.label,
                conn._label,
                conn._conn.close_code,
                conn.received,
            )

    async def _forward(self) -> None:
        conn = self._c
        ws = conn._conn
        rooms = self._rooms
        stats = rooms.stats
        config = conn._config
        max_frame = config.media_max_frame
        rate = config.media_rate_limit.rate_per_s
        burst = float(config.media_rate_limit.burst)
        tokens = burst
        monotonic = time.monotonic
        last = monotonic()
        identity = self.identity
        while True:
            data = await ws.recv()
            if type(data) is bytes and data[:1] == b"\x02":
                conn.received += 1
                stats.received += 1
                room = self._room
                if room is None:
                    continue  # replaced: on its way out
                if len(data) > max_frame:
                    stats.dropped_oversized += 1
                    await conn._abuse_strike(
                        wire.ErrorCode.TOO_LARGE,
                        f"media frame of {len(data)} bytes dropped; the limit is {max_frame}",
                    )
                    continue
                now = monotonic()
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    stats.dropped_rate_limited += 1
                    continue
                tokens -= 1.0
                rooms.forward(room, identity, data, now)
                continue
            try:
                frame = gw.decode_group_client_frame(data)
            except MalformedFrame as exc:
                await conn._malformed(exc)
                continue
            if isinstance(frame, gw.GroupLeave):
                if self._room is not None:
                    current, self._room = self._room, None
                    rooms.leave(self, current)
                await conn._close(CLOSE_LEFT, "left the call")
                return
            await conn._abuse_strike(
                wire.ErrorCode.BAD_REQUEST, "already joined; open a new connection to rejoin"
            )


_background: set[asyncio.Task[None]] = set()


def _spawn_close(conn: MediaRouteConnection, code: int, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(conn._close(code, reason))
    _background.add(task)
    task.add_done_callback(_background.discard)
