"""A group call seen from one member: the machine that runs the group call table, its frame
keys, who gets them.

The behaviour is :data:`~messenger_tui.core.calls.group_call_table.GROUP_TRANSITIONS` and the
design rules written with it (``core/calls/group_call_table.py``); this module classifies
inputs into the table's events (guards: which call, which sender, is it a member), runs the
named actions and returns effects. The table's names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from messenger_tui.core.calls.group_call_table import (
    GROUP_TRANSITIONS,
    JOIN_TIMEOUT_S,
    LOCAL_EVENTS,
    REJOIN_RETRY_S,
    REJOIN_TIMEOUT_S,
    RING_S,
    GroupAction,
    GroupCallState,
    GroupCallStateError,
    GroupEvent,
    GroupTransition,
)
from messenger_tui.core.calls.group_frames import (
    MAX_KEYS_PER_SENDER,
    FrameKey,
    GroupFrameOpener,
    GroupFrameSealer,
    KeyIdConflict,
)
from messenger_tui.core.calls.group_keys import (
    GroupCallFrameKey,
    GroupCallInvite,
    GroupCallOver,
    group_join_token,
    new_call_secret,
)
from messenger_tui.core.crypto.primitives import Rng, default_rng

__all__ = [
    "GROUP_TRANSITIONS",
    "JOIN_TIMEOUT_S",
    "REJOIN_RETRY_S",
    "REJOIN_TIMEOUT_S",
    "RING_S",
    "CallStateChange",
    "ConnectLeg",
    "DisconnectLeg",
    "GroupAction",
    "GroupCall",
    "GroupCallCounters",
    "GroupCallState",
    "GroupCallStateError",
    "GroupEffect",
    "GroupEvent",
    "GroupTransition",
    "SendCallOver",
    "SendFrameKey",
    "SendInvite",
]


# ---------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class SendInvite:
    """Send ``invite`` to ``member`` over the E2E channel."""

    member: bytes
    invite: GroupCallInvite


@dataclass(frozen=True, slots=True)
class SendFrameKey:
    """Send ``key`` to ``member`` over the E2E channel."""

    member: bytes
    key: GroupCallFrameKey


@dataclass(frozen=True, slots=True)
class SendCallOver:
    """Send ``message`` to ``member`` over the E2E channel (rule 10)."""

    member: bytes
    message: GroupCallOver


@dataclass(frozen=True, slots=True, repr=False)
class ConnectLeg:
    """Open the media route leg and send ``group_join(token)``."""

    token: bytes

    def __repr__(self) -> str:
        return "ConnectLeg()"


@dataclass(frozen=True, slots=True)
class DisconnectLeg:
    """Send ``group_leave`` and close the leg; stop capture and playback."""


@dataclass(frozen=True, slots=True)
class CallStateChange:
    state: GroupCallState


GroupEffect = (
    SendInvite | SendFrameKey | SendCallOver | ConnectLeg | DisconnectLeg | CallStateChange
)


@dataclass(slots=True)
class GroupCallCounters:
    keys_installed: int = 0
    keys_ignored: int = 0  # from non-members, for another call, conflicting ids
    rotations: int = 0


@dataclass(slots=True)
class _Call:
    group_id: bytes
    call_id: bytes
    secret: bytes
    started_at_ms: int
    present: set[bytes] = field(default_factory=set)  # identities in the room, besides us


class GroupCall:
    """One member's view of its group's call (one machine per group)."""

    def __init__(
        self,
        *,
        own: bytes,
        group_id: bytes,
        members: Callable[[], frozenset[bytes]],
        clock: Callable[[], float],
        rng: Rng = default_rng,
    ) -> None:
        self.own = own
        self.group_id = group_id
        self._members = members  # the group's current members (this client's view)
        self._clock = clock
        self._rng = rng
        self.state = GroupCallState.IDLE
        self._call: _Call | None = None
        self._ring_deadline: float | None = None
        self._join_deadline: float | None = None
        self._rejoin_deadline: float | None = None
        self._retry_deadline: float | None = None
        self.sealer: GroupFrameSealer | None = None
        self.opener: GroupFrameOpener | None = None
        self.counters = GroupCallCounters()
        self._early_keys: dict[bytes, list[FrameKey]] = {}  # keys received while joining

    # ----------------------------------------------------------------------- reading

    @property
    def call_id(self) -> bytes | None:
        return self._call.call_id if self._call else None

    @property
    def participants(self) -> list[bytes]:
        """The other identities connected to the room (as the relay says)."""
        return sorted(self._call.present) if self._call else []

    @property
    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (
                self._ring_deadline,
                self._join_deadline,
                self._rejoin_deadline,
                self._retry_deadline,
            )
            if d is not None
        ]
        return min(deadlines, default=None)

    # ------------------------------------------------------------------------ inputs

    def start(self, now_ms: int) -> list[GroupEffect]:
        return self._fire(GroupEvent.START, now_ms=now_ms)

    def join(self) -> list[GroupEffect]:
        return self._fire(GroupEvent.JOIN)

    def decline(self) -> list[GroupEffect]:
        return self._fire(GroupEvent.DECLINE)

    def leave(self) -> list[GroupEffect]:
        call = self._call
        if (
            self.state in (GroupCallState.IN_CALL, GroupCallState.REJOINING)
            and call is not None
            and call.present
        ):
            return self._fire(GroupEvent.LEAVE_REJOINABLE)  # rule 8
        return self._fire(GroupEvent.LEAVE)

    def invite_received(
        self, sender: bytes, invite: GroupCallInvite, now_ms: int
    ) -> list[GroupEffect]:
        """An E2E invite: rings unless stale; ignored from non-members or for another group,
        and while we are in (or joining) a call."""
        if sender not in self._members() or invite.group_id != self.group_id:
            return []
        if self._call is not None and self._call.call_id == invite.call_id:
            return []  # a duplicate
        age_s = (now_ms - invite.started_at_ms) / 1000
        event = GroupEvent.INVITE if -RING_S < age_s < RING_S else GroupEvent.INVITE_STALE
        return self._fire(event, now_ms=now_ms, invite=invite)

    def call_over_received(self, sender: bytes, message: GroupCallOver) -> list[GroupEffect]:
        """An E2E "call over" (rule 10): ends a ringing or in-progress call of ours."""
        call = self._call
        if (
            call is None
            or sender == self.own
            or sender not in self._members()
            or message.group_id != self.group_id
            or message.call_id != call.call_id
        ):
            return []
        return self._fire(GroupEvent.CALL_OVER)

    def frame_key_received(self, sender: bytes, message: GroupCallFrameKey) -> bool:
        """An E2E frame key (rule 7); True when installed."""
        call = self._call
        if (
            call is None
            or message.call_id != call.call_id
            or sender == self.own
            or sender not in self._members()
            or (self.opener is None and self.state is not GroupCallState.JOINING)
        ):
            self.counters.keys_ignored += 1
            return False
        if self.opener is None:  # joining: keep it for START_MEDIA (rule 7)
            early = self._early_keys.setdefault(sender, [])
            if message.frame_key() in early:
                return False
            early.append(message.frame_key())
            del early[:-MAX_KEYS_PER_SENDER]
            return True
        try:
            installed = self.opener.add_key(sender, message.frame_key())
        except KeyIdConflict:
            self.counters.keys_ignored += 1
            return False
        self.counters.keys_installed += int(installed)
        return installed

    def relay_joined(self, participants: list[bytes]) -> list[GroupEffect]:
        if self._call is not None and self.state in (
            GroupCallState.JOINING,
            GroupCallState.REJOINING,
        ):
            previous = self._call.present
            self._call.present = {p for p in participants if p != self.own}
            if self.state is GroupCallState.REJOINING:
                return self._fire(GroupEvent.JOINED, previous=frozenset(previous))
        return self._fire(GroupEvent.JOINED)

    def relay_member(self, identity: bytes, present: bool) -> list[GroupEffect]:
        call = self._call
        if call is None or self.state is not GroupCallState.IN_CALL or identity == self.own:
            return []
        if present:
            call.present.add(identity)
            return self._fire(GroupEvent.MEMBER_JOINED)
        if identity not in call.present:
            return []
        call.present.discard(identity)
        return self._fire(GroupEvent.MEMBER_LEFT, leaver=identity)

    def leg_failed(self) -> list[GroupEffect]:
        """The leg ended before it joined (the relay refused, could not connect)."""
        return self._fire(GroupEvent.LEG_FAILED)

    def leg_dropped(self) -> list[GroupEffect]:
        """The connection of a leg that had joined closed or failed (rule 9)."""
        return self._fire(GroupEvent.LEG_DROPPED)

    def poll(self, now: float) -> list[GroupEffect]:
        if self._ring_deadline is not None and now >= self._ring_deadline:
            self._ring_deadline = None
            return self._fire(GroupEvent.RING_TIMEOUT)
        if self._join_deadline is not None and now >= self._join_deadline:
            self._join_deadline = None
            return self._fire(GroupEvent.JOIN_TIMEOUT)
        if self._rejoin_deadline is not None and now >= self._rejoin_deadline:
            self._rejoin_deadline = None
            return self._fire(GroupEvent.REJOIN_TIMEOUT)
        if self._retry_deadline is not None and now >= self._retry_deadline:
            self._retry_deadline = None
            return self._fire(GroupEvent.REJOIN_RETRY)
        return []

    # ---------------------------------------------------------------------- the table

    def _fire(
        self,
        event: GroupEvent,
        *,
        now_ms: int = 0,
        invite: GroupCallInvite | None = None,
        leaver: bytes | None = None,
        previous: frozenset[bytes] = frozenset(),
    ) -> list[GroupEffect]:
        row = GROUP_TRANSITIONS[self.state].get(event)
        if row is None:
            if event in LOCAL_EVENTS:
                raise GroupCallStateError(f"cannot {event.value} while {self.state.value}")
            return []
        effects: list[GroupEffect] = []
        for action in row.actions:
            self._run(
                action, effects, now_ms=now_ms, invite=invite, leaver=leaver, previous=previous
            )
        if row.target is not self.state:
            if row.target is not GroupCallState.RINGING:
                self._ring_deadline = None
            if row.target is not GroupCallState.JOINING:
                self._join_deadline = None
            if row.target is not GroupCallState.REJOINING:
                self._rejoin_deadline = self._retry_deadline = None
            self.state = row.target
            effects.append(CallStateChange(row.target))
        return effects

    def _run(
        self,
        action: GroupAction,
        effects: list[GroupEffect],
        *,
        now_ms: int,
        invite: GroupCallInvite | None,
        leaver: bytes | None,
        previous: frozenset[bytes] = frozenset(),
    ) -> None:
        if action is GroupAction.NEW_CALL:
            call_id, secret = new_call_secret(self._rng)
            self._call = _Call(self.group_id, call_id, secret, now_ms)
        elif action is GroupAction.ADOPT_INVITE:
            if invite is None:
                raise GroupCallStateError("no invite to adopt")
            self._call = _Call(self.group_id, invite.call_id, invite.secret, invite.started_at_ms)
        elif action is GroupAction.SEND_INVITES:
            call = self._required_call()
            message = GroupCallInvite(
                group_id=call.group_id,
                call_id=call.call_id,
                secret=call.secret,
                started_at_ms=call.started_at_ms,
            )
            for member in sorted(self._members() - {self.own}):
                effects.append(SendInvite(member, message))
        elif action is GroupAction.ARM_RING_TIMER:
            call = self._required_call()
            age_s = max(0.0, (now_ms or call.started_at_ms) - call.started_at_ms) / 1000
            self._ring_deadline = self._clock() + RING_S - age_s
        elif action is GroupAction.ARM_JOIN_TIMER:
            self._join_deadline = self._clock() + JOIN_TIMEOUT_S
        elif action is GroupAction.CONNECT_LEG:
            call = self._required_call()
            effects.append(ConnectLeg(group_join_token(call.call_id, call.secret)))
        elif action is GroupAction.START_MEDIA:
            self.sealer = GroupFrameSealer(self._clock, self._rng)
            self.opener = GroupFrameOpener(self._clock)
            early, self._early_keys = self._early_keys, {}
            for sender, keys in early.items():
                for key in keys:
                    try:
                        self.counters.keys_installed += int(self.opener.add_key(sender, key))
                    except KeyIdConflict:
                        self.counters.keys_ignored += 1
            self._announce(self.sealer.current, effects)
        elif action is GroupAction.ROTATE_KEY:
            if self.sealer is None:
                raise GroupCallStateError("no media to rotate the key of")
            self.counters.rotations += 1
            self._announce(self.sealer.rotate(), effects)
        elif action is GroupAction.FORGET_LEAVER:
            if self.opener is not None and leaver is not None:
                self.opener.remove_sender(leaver)
        elif action is GroupAction.SEND_CALL_OVER:
            call = self._required_call()
            over = GroupCallOver(group_id=call.group_id, call_id=call.call_id)
            for member in sorted(self._members() - {self.own}):
                effects.append(SendCallOver(member, over))
        elif action is GroupAction.ARM_REJOIN_TIMER:
            self._rejoin_deadline = self._clock() + REJOIN_TIMEOUT_S
        elif action is GroupAction.ARM_RETRY_TIMER:
            self._retry_deadline = self._clock() + REJOIN_RETRY_S
        elif action is GroupAction.RESUME_MEDIA:
            if self.sealer is None or self.opener is None:
                raise GroupCallStateError("no media to resume")
            present = self._required_call().present
            for identity in sorted(previous - present):  # left while we were away
                self.opener.remove_sender(identity)
            # those who had our keys before the drop get them again at once (they forgot
            # them when the relay said we left) ...
            kept = previous & present
            self._announce(self.sealer.current, effects, to=kept)
            pending = self.sealer.pending
            if pending is not None:
                self._announce(pending, effects, to=kept)
            # ... and a change of who is there is a join or leave we missed: rotate (rule 6),
            # so a leaver opens nothing after the switch-over and a joiner nothing from before
            if present != previous:
                self.counters.rotations += 1
                self._announce(self.sealer.rotate(), effects)
        elif action is GroupAction.STOP_MEDIA:
            self.sealer = None
            self.opener = None
            self._early_keys = {}
            if self._call is not None:
                self._call.present = set()
            effects.append(DisconnectLeg())

    def _announce(
        self, key: FrameKey, effects: list[GroupEffect], *, to: AbstractSet[bytes] | None = None
    ) -> None:
        """Send ``key`` to the members present (or to those of ``to`` who are)."""
        call = self._required_call()
        message = GroupCallFrameKey(call_id=call.call_id, key_id=key.key_id, key=key.key)
        recipients = call.present if to is None else call.present & to
        for member in sorted(recipients & self._members()):
            effects.append(SendFrameKey(member, message))

    def _required_call(self) -> _Call:
        if self._call is None:
            raise GroupCallStateError("no group call")
        return self._call
