"""Group calls in the app: one :class:`~messenger_tui.core.calls.group_call.GroupCall` machine
per group, its timers, its leg on the relay, its media session.

The lifecycle is the core machine's transition table (its rules are written at the top of
``core/calls/group_call_table.py``); :class:`GroupCallManager` only routes inputs to the right
machine and carries out the effects it returns:

* ``SendInvite`` / ``SendFrameKey`` / ``SendCallOver``: the message goes to the member over
  the E2E channel, in order, from one task (``app/group_call_signals.py``).
* ``ConnectLeg``: a group leg (``transport/group_link.py``) joins the room with the token;
  its ``group_joined`` / ``group_member`` / end are fed back to the machine; on ``IN_CALL``
  the media session (``media/group_session.py``) starts between the leg and the audio ends.
  A leg that drops after it joined is reported as ``leg_dropped`` (the machine's rule 9):
  its ``ConnectLeg`` opens a new leg with the same token for the same call, and the media
  session (the same sealer and opener) goes on, writing to whichever leg is current; a
  callback of an earlier leg is ignored.
* ``DisconnectLeg``: the media stops and the leg sends ``group_leave`` and closes; the
  machine has already forgotten every key.
* ``CallStateChange``: a :class:`~messenger_tui.app.events.GroupCallChanged` event.

Manager rules (beyond the table):

1. **One call at a time.** Starting or joining a group call while another group call is
   joining or in progress, or while a 1:1 call is under way, is :class:`BadInput`. An invite
   that arrives meanwhile still rings (the user may leave and join).
2. **Only members.** An invite is taken only for a group we are a member of, from one of its
   members (the machine checks the sender); frame keys only for the call we are in.
3. **Timers** are the machines' deadlines on the injected monotonic ``clock``; one loop timer
   is armed at the earliest after every input.
4. While in a call, a ``GroupCallChanged`` with fresh participant health is published every
   :data:`HEALTH_INTERVAL_S`.
5. A frame key that could not be sent (the relay connection down for a moment, no session
   yet) is tried again a few times while we are in that call (``app/group_call_signals.py``):
   without it that member hears nothing of us until the next rotation.

Nothing here logs keys, secrets, tokens or audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_call_signals import GroupCallSignals
from messenger_tui.app.group_call_view import group_call_view
from messenger_tui.app.group_models import Group, GroupCallView
from messenger_tui.core.calls import group_call as gc
from messenger_tui.core.calls.group_frames import GroupFrameOpener, GroupFrameSealer
from messenger_tui.core.calls.group_keys import (
    GroupCallFrameKey,
    GroupCallInvite,
    GroupCallMessage,
    GroupCallOver,
)
from messenger_tui.media.codec import CodecUnavailable
from messenger_tui.media.group_receive import ParticipantHealth
from messenger_tui.media.ports import AudioFactory, AudioSink, AudioSource, AudioUnavailable

log = logging.getLogger(__name__)

#: How often the participants' health is published while in a call.
HEALTH_INTERVAL_S = 1.0


class GroupLegLike(Protocol):
    """What the manager needs of a group leg (transport/group_link.py)."""

    def start(self) -> None: ...
    def send(self, frame: bytes) -> bool: ...
    async def leave(self) -> None: ...
    async def close(self) -> None: ...


class GroupMediaLike(Protocol):
    """What the manager needs of a group media session (media/group_session.py)."""

    muted: bool

    def receive(self, frame: bytes) -> None: ...
    def remove(self, identity: bytes) -> None: ...
    def health(self) -> list[ParticipantHealth]: ...
    async def start_async(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class LegCallbacks:
    on_frame: Callable[[bytes], None]
    on_joined: Callable[[list[bytes]], None]
    on_member: Callable[[bytes, bool], None]
    on_ended: Callable[[str], None]


#: ``open_leg(join_token, callbacks)``: a leg, not started yet.
LegFactory = Callable[[bytes, LegCallbacks], GroupLegLike]
#: ``make_media(sealer, opener, send, source, sink)``.
MediaFactory = Callable[
    [GroupFrameSealer, GroupFrameOpener, Callable[[bytes], bool], AudioSource, AudioSink],
    GroupMediaLike,
]


@dataclass
class _Leg:
    group_id: bytes
    leg: GroupLegLike | None = None
    media: GroupMediaLike | None = None
    joined_ms: int | None = None
    left: list[bytes] = field(default_factory=list)
    attempt: int = 0  # legs opened for this call (a rejoin opens another)

    def send(self, frame: bytes) -> bool:
        """The media session's writer: the current leg, whichever it is."""
        return self.leg.send(frame) if self.leg is not None else False


class GroupCallManager:
    """Every group's call, for one profile (see the module docstring). Loop-only."""

    def __init__(
        self,
        *,
        own: bytes,
        clock: Callable[[], float],
        now_ms: Callable[[], int],
        groups: Callable[[], list[Group]],
        send_signal: Callable[[bytes, bytes], Awaitable[bool]],
        emit: Callable[[ev.Event], None],
        open_leg: LegFactory,
        make_media: MediaFactory,
        audio_factory: AudioFactory,
        other_call_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._own = own
        self._clock = clock
        self._now_ms = now_ms
        self._groups = groups
        self._emit = emit
        self._open_leg = open_leg
        self._make_media = make_media
        self.audio_factory = audio_factory
        self._other_call_busy = other_call_busy
        self._machines: dict[bytes, gc.GroupCall] = {}
        self._leg: _Leg | None = None
        self._muted = False
        self._problem: dict[bytes, str] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._signals = GroupCallSignals(
            send_signal, still_in_call=self._still_in_call, spawn=self._spawn
        )
        self._health_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ reading

    def view(self, name: str) -> GroupCallView | None:
        """The call of group ``name`` (None when it never had one here)."""
        group = self._named(name)
        machine = self._machines.get(group.group_id)
        return self._view(group, machine) if machine is not None else None

    def active(self) -> GroupCallView | None:
        """The group call we are joining or in, if any."""
        leg = self._leg
        if leg is None:
            return None
        group = self._group(leg.group_id)
        machine = self._machines.get(leg.group_id)
        return self._view(group, machine) if group and machine else None

    def calls(self) -> list[GroupCallView]:
        """Every group call that rings, is in progress, or that we are in."""
        out = []
        for group in self._groups():
            machine = self._machines.get(group.group_id)
            if machine is not None and machine.state not in (
                gc.GroupCallState.IDLE,
                gc.GroupCallState.ENDED,
            ):
                out.append(self._view(group, machine))
        return out

    @property
    def busy(self) -> bool:
        return self._leg is not None

    # ------------------------------------------------------------------ the local user

    def start_or_join(self, name: str) -> GroupCallView:
        """Join the group's call if it rings or is in progress, else start one (ringing the
        members). :class:`BadInput` when another call is under way or we are not a member."""
        group = self._named(name)
        if not group.is_member:
            raise BadInput(f"you are no longer a member of {group.name}")
        machine = self._machine(group)
        state = machine.state
        if state in (
            gc.GroupCallState.JOINING,
            gc.GroupCallState.IN_CALL,
            gc.GroupCallState.REJOINING,
        ):
            return self._view(group, machine)
        if self._leg is not None or self._other_call_busy():
            raise BadInput("you are already in a call; leave it first")
        self._problem.pop(group.group_id, None)
        self._muted = False
        self._leg = _Leg(group.group_id)
        if state in (gc.GroupCallState.RINGING, gc.GroupCallState.IN_PROGRESS):
            self._run(machine, machine.join())
        else:
            self._run(machine, machine.start(self._now_ms()))
        return self._view(group, machine)

    def decline(self, name: str) -> None:
        """Stop the group's call ringing (it stays joinable). :class:`BadInput` if it does not
        ring."""
        group = self._named(name)
        machine = self._machines.get(group.group_id)
        if machine is None or machine.state is not gc.GroupCallState.RINGING:
            raise BadInput(f"no call rings in {group.name}")
        self._run(machine, machine.decline())

    def leave(self) -> None:
        """Leave the group call we are in or joining; nothing happens without one."""
        leg = self._leg
        if leg is None:
            return
        machine = self._machines.get(leg.group_id)
        if machine is not None:
            self._run(machine, machine.leave())

    def set_muted(self, muted: bool) -> None:
        """Mute the microphone (silent frames keep going at the same rate and size)."""
        self._muted = muted
        leg = self._leg
        if leg is not None and leg.media is not None:
            leg.media.muted = muted
        self._changed_active()

    # ------------------------------------------------------------------ peers

    def on_signal(self, sender: bytes, message: GroupCallMessage) -> None:
        """A group call message from ``sender``, authenticated by the pairwise ratchet."""
        if isinstance(message, GroupCallInvite):
            group = self._group(message.group_id)
            if group is None or not group.is_member:
                return
            machine = self._machine(group)
            self._run(machine, machine.invite_received(sender, message, self._now_ms()))
        elif isinstance(message, GroupCallOver):
            over = self._machines.get(message.group_id)
            if over is not None and self._group(message.group_id) is not None:
                self._run(over, over.call_over_received(sender, message))
        elif isinstance(message, GroupCallFrameKey):
            for machine in self._machines.values():
                if machine.call_id == message.call_id:
                    machine.frame_key_received(sender, message)
                    return

    async def close(self) -> None:
        """Leave any call and stop every task (bounded)."""
        self.leave()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._signals.drain(2.0)
        if self._background:
            await asyncio.wait(set(self._background), timeout=3.0)
        await self._signals.close()
        for task in (self._health_task, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ------------------------------------------------------------------ effects

    def _run(self, machine: gc.GroupCall, effects: list[gc.GroupEffect]) -> None:
        try:
            for effect in effects:
                if isinstance(effect, gc.SendInvite):
                    self._signals.queue(effect.member, effect.invite)
                elif isinstance(effect, gc.SendFrameKey):
                    self._signals.queue(effect.member, effect.key)
                elif isinstance(effect, gc.SendCallOver):
                    self._signals.queue(effect.member, effect.message)
                elif isinstance(effect, gc.ConnectLeg):
                    self._connect(machine, effect.token)
                elif isinstance(effect, gc.DisconnectLeg):
                    self._disconnect(machine.group_id)
                elif isinstance(effect, gc.CallStateChange):
                    if effect.state is gc.GroupCallState.IN_CALL:
                        self._start_media(machine)
                    self._changed(machine)
        finally:
            self._arm_timer()

    def _changed(self, machine: gc.GroupCall) -> None:
        group = self._group(machine.group_id)
        if group is not None:
            self._emit(ev.GroupCallChanged(self._view(group, machine)))

    def _changed_active(self) -> None:
        leg = self._leg
        machine = self._machines.get(leg.group_id) if leg else None
        if machine is not None:
            self._changed(machine)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadlines = [d for m in self._machines.values() if (d := m.next_deadline) is not None]
        if not deadlines:
            return
        delay = max(0.0, min(deadlines) - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self.poll)

    def poll(self) -> None:
        """The timer's callback (tests call it after moving their fake clock)."""
        self._timer = None
        now = self._clock()
        for machine in list(self._machines.values()):
            effects = machine.poll(now)
            if effects:
                self._run(machine, effects)
        self._arm_timer()

    def _still_in_call(self, call_id: bytes) -> bool:
        """Whether we are still in (or joining) call ``call_id`` (a key retry's guard)."""
        return self._leg is not None and any(m.call_id == call_id for m in self._machines.values())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ the leg and media

    def _connect(self, machine: gc.GroupCall, token: bytes) -> None:
        leg = self._leg
        if leg is None or leg.group_id != machine.group_id:
            leg = self._leg = _Leg(machine.group_id)
        leg.attempt += 1
        attempt = leg.attempt
        if leg.leg is not None:  # a rejoin: the dropped leg goes
            self._spawn(leg.leg.close())
            leg.leg = None

        def current() -> bool:
            return self._leg is leg and leg.attempt == attempt

        def on_frame(frame: bytes) -> None:
            if current() and leg.media is not None:
                leg.media.receive(frame)

        def on_joined(participants: list[bytes]) -> None:
            if current():
                self._run(machine, machine.relay_joined(participants))

        def on_member(identity: bytes, present: bool) -> None:
            if not current():
                return
            if not present and leg.media is not None:
                self._changed(machine)  # the leaver's last health, while it is listed
                leg.media.remove(identity)
            self._run(machine, machine.relay_member(identity, present))
            self._changed(machine)

        def on_ended(reason: str) -> None:
            if not current():
                return
            if machine.state is gc.GroupCallState.JOINING:
                self._problem[machine.group_id] = reason
                self._run(machine, machine.leg_failed())
            elif machine.state in (gc.GroupCallState.IN_CALL, gc.GroupCallState.REJOINING):
                # rule 9: rejoin; the reason shows if the rejoin gives up
                log.info("group call leg dropped; rejoining")
                self._problem[machine.group_id] = reason
                self._run(machine, machine.leg_dropped())

        leg.leg = self._open_leg(token, LegCallbacks(on_frame, on_joined, on_member, on_ended))
        leg.leg.start()

    def _start_media(self, machine: gc.GroupCall) -> None:
        leg = self._leg
        if leg is None or leg.leg is None or machine.sealer is None or machine.opener is None:
            return
        if leg.media is not None:  # rejoined (rule 9): the same session goes on
            self._problem.pop(machine.group_id, None)
            return
        leg.joined_ms = self._now_ms()
        try:
            source, sink = self.audio_factory()
            media = self._make_media(machine.sealer, machine.opener, leg.send, source, sink)
        except (AudioUnavailable, CodecUnavailable) as exc:
            self._media_failed(machine, exc)
            return
        media.muted = self._muted
        leg.media = media
        self._spawn(self._start_session(machine, leg, media))
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def _start_session(self, machine: gc.GroupCall, leg: _Leg, media: GroupMediaLike) -> None:
        try:
            await media.start_async()
        except (AudioUnavailable, CodecUnavailable) as exc:
            if self._leg is leg:
                self._media_failed(machine, exc)

    def _media_failed(
        self, machine: gc.GroupCall, exc: AudioUnavailable | CodecUnavailable
    ) -> None:
        self._problem[machine.group_id] = exc.reason + (f" ({exc.fix})" if exc.fix else "")
        log.warning("group call audio unavailable: %s", exc.reason)
        self._run(machine, machine.leave())

    def _disconnect(self, group_id: bytes) -> None:
        leg = self._leg
        if leg is None or leg.group_id != group_id:
            return
        self._leg = None  # detached now: a new start cannot be stopped by this
        self._spawn(self._stop(leg))

    async def _stop(self, leg: _Leg) -> None:
        try:
            if leg.media is not None:
                await leg.media.stop()
        finally:
            if leg.leg is not None:
                await leg.leg.leave()

    async def _health_loop(self) -> None:
        while self._leg is not None:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            self._changed_active()

    # ------------------------------------------------------------------ views and lookups

    def _machine(self, group: Group) -> gc.GroupCall:
        machine = self._machines.get(group.group_id)
        if machine is None:
            group_id = group.group_id
            machine = self._machines[group_id] = gc.GroupCall(
                own=self._own,
                group_id=group_id,
                members=lambda: self._members(group_id),
                clock=self._clock,
            )
        return machine

    def _members(self, group_id: bytes) -> frozenset[bytes]:
        group = self._group(group_id)
        if group is None or not group.is_member:
            return frozenset()
        return frozenset(m.identity for m in group.members)

    def _group(self, group_id: bytes) -> Group | None:
        return next((g for g in self._groups() if g.group_id == group_id), None)

    def _named(self, name: str) -> Group:
        groups = self._groups()
        group = next((g for g in groups if g.name == name), None)
        if group is None:
            known = ", ".join(sorted(g.name for g in groups)) or "none"
            raise BadInput(f"no group called {name!r} (groups: {known})")
        return group

    def _view(self, group: Group, machine: gc.GroupCall) -> GroupCallView:
        leg = self._leg if self._leg and self._leg.group_id == group.group_id else None
        in_call = machine.state in (
            gc.GroupCallState.JOINING,
            gc.GroupCallState.IN_CALL,
            gc.GroupCallState.REJOINING,
        )
        return group_call_view(
            group,
            machine.state.value,
            machine.participants if in_call else [],
            leg.media.health() if leg and leg.media else [],
            muted=self._muted,
            problem=self._problem.get(group.group_id),
            joined_ms=leg.joined_ms if leg else None,
        )
