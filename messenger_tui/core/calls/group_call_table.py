"""A group call seen from one member: its lifecycle as a table (states, events, actions,
transitions) and the rules it follows.

The machine that runs it is :class:`messenger_tui.core.calls.group_call.GroupCall`.

Design rules
============

1. **The table is the behaviour.** :data:`GROUP_TRANSITIONS` maps ``(state, event)`` to the
   next state and the named :class:`GroupAction` steps. Code outside the table only classifies
   inputs (guards: which call, which sender, is it a member) and runs the named steps.
2. **Sans-I/O.** Inputs are method calls carrying ``now`` (seconds, a monotonic clock shared
   with the injected ``clock`` of the frame sealer and opener); outputs are effect objects.
   Timers are deadlines: read :attr:`GroupCall.next_deadline` and call :meth:`GroupCall.poll`.
3. **Local events the table does not list are errors** (:class:`GroupCallStateError`): check
   :attr:`GroupCall.state` first. ``leave`` is listed in every state. **Peer, relay and timer
   events the table does not list are ignored** (late, duplicated or for an ended call).
4. **Ringing ends on its own.** An invite rings for :data:`RING_S` (30 s) after the call
   started, then shows "call in progress, join" (``IN_PROGRESS``); an invite older than that
   never rings. Declining stops the ringing and also leaves the call joinable.
5. **Keys go to members present, only.** A frame key is announced to every identity that is
   both a member of the group (as this client's membership says) and connected to the room
   now (as the relay's ``group_joined``/``group_member`` say). An identity in the room that is
   not a member (someone given the call secret, a removed member) never gets a key, and the
   relay cannot add one: the E2E channel decides who is a member.
6. **Rotate on every join and leave** (relay ``group_member`` events): a fresh key, announced
   to the members present after the change; the sealer switches after its switch-over. A
   leaver's keys are forgotten at once.
7. **Keys are taken only from members**, over the E2E channel, for the current call id;
   anything else is ignored (and counted). Keys that arrive while we are still joining (the
   others rotate when the relay tells them of our join, which can be before the relay's
   answer reaches us) are kept, at most :data:`MAX_KEYS_PER_SENDER` per member, and
   installed when the join completes.
8. **Leaving keeps a call others are in joinable.** ``leave`` while others are present in the
   room (as the relay last said) is ``LEAVE_REJOINABLE``: the media stops and every key is
   forgotten as on any leave, but the call's id and secret stay and the state is
   ``IN_PROGRESS`` ("call in progress, join"), so joining again joins the same call (and the
   others rotate on that join as on any other). Leaving alone, a failed leg or a join timeout
   end it (``ENDED``).
9. **A dropped leg rejoins by itself.** When the relay connection of a leg that was in the
   call drops (``LEG_DROPPED``: the connection closed or failed, not a leave), the call goes
   ``REJOINING``: the media keeps running (frames sent meanwhile are dropped by the leg) and
   the same call is joined again with the same token; each failed attempt is retried
   :data:`REJOIN_RETRY_S` later, and the whole rejoin gives up after
   :data:`REJOIN_TIMEOUT_S` (``ENDED``). On the relay's ``group_joined`` the call is
   ``IN_CALL`` again with the *same* sealer and opener (``RESUME_MEDIA``): the roster is
   taken from the relay, the keys of members who left meanwhile are forgotten, and our
   current (and pending) frame key is announced again to the members who were present before
   the drop and still are (they forgot it when the relay told them we left; a new key would
   cost a switch-over of silence). If who is present changed meanwhile, that is a join or
   leave we missed: we rotate as rule 6 says (a leaver opens nothing of ours after the
   switch-over, a joiner never gets the key that sealed what we sent before it joined). The
   others rotate on our join as on any other. Relay member events of the lost
   leg are ignored while rejoining.
10. **The last one out says the call is over.** Leaving while nobody else is present (as
   the relay last said) sends :class:`GroupCallOver` to every other member
   (``SEND_CALL_OVER``). A member whose call rings or shows "call in progress, join"
   (``RINGING``, ``IN_PROGRESS``) takes it (``CALL_OVER``, from a member, for that call) and
   goes ``ENDED``: it stops ringing and stops offering to join. A member joining or in the
   call ignores it (the relay says who is there, not the message), as does anyone for
   another call or from a non-member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from messenger_tui.core.errors import CoreError

#: An invite rings this long after the call started (then: "call in progress, join").
RING_S: Final = 30.0
#: From "join" to the relay's ``group_joined``; past it the join failed.
JOIN_TIMEOUT_S: Final = 15.0
#: A dropped leg's rejoin gives up after this long (rule 9) ...
REJOIN_TIMEOUT_S: Final = 20.0
#: ... trying again this long after each failed attempt.
REJOIN_RETRY_S: Final = 0.5


class GroupCallStateError(CoreError):
    """A local action the current state does not allow."""


class GroupCallState(Enum):
    IDLE = "idle"
    RINGING = "ringing"  # invited, ringing
    IN_PROGRESS = "in_progress"  # a call others are in: "call in progress, join"
    JOINING = "joining"  # our leg is connecting
    IN_CALL = "in_call"
    REJOINING = "rejoining"  # our leg dropped; joining the same call again (rule 9)
    ENDED = "ended"  # we left (or the join failed); a new invite starts over


class GroupEvent(Enum):
    # local
    START = "start"
    JOIN = "join"
    DECLINE = "decline"
    LEAVE = "leave"
    LEAVE_REJOINABLE = "leave_rejoinable"  # leave while others are in the call (rule 8)
    # peers (E2E)
    INVITE = "invite"
    INVITE_STALE = "invite_stale"  # older than RING_S: shows in progress, never rings
    CALL_OVER = "call_over"  # the last participant left (rule 10)
    # relay
    JOINED = "joined"
    MEMBER_JOINED = "member_joined"
    MEMBER_LEFT = "member_left"
    LEG_FAILED = "leg_failed"
    LEG_DROPPED = "leg_dropped"  # the connection of a leg that was in the call (rule 9)
    # timers
    RING_TIMEOUT = "ring_timeout"
    JOIN_TIMEOUT = "join_timeout"
    REJOIN_RETRY = "rejoin_retry"
    REJOIN_TIMEOUT = "rejoin_timeout"


class GroupAction(Enum):
    NEW_CALL = "new_call"  # fresh call id and secret
    ADOPT_INVITE = "adopt_invite"
    SEND_INVITES = "send_invites"
    ARM_RING_TIMER = "arm_ring_timer"
    ARM_JOIN_TIMER = "arm_join_timer"
    CONNECT_LEG = "connect_leg"
    START_MEDIA = "start_media"  # new sealer, first key announced to the members present
    ROTATE_KEY = "rotate_key"
    FORGET_LEAVER = "forget_leaver"
    STOP_MEDIA = "stop_media"  # close the leg, forget every key
    ARM_REJOIN_TIMER = "arm_rejoin_timer"  # the rejoin's overall deadline (rule 9)
    ARM_RETRY_TIMER = "arm_retry_timer"  # the next attempt after a failed one
    SEND_CALL_OVER = "send_call_over"  # to every other member (rule 10)
    RESUME_MEDIA = "resume_media"  # same sealer and opener; roster synced, own key re-sent


LOCAL_EVENTS: Final = frozenset(
    {GroupEvent.START, GroupEvent.JOIN, GroupEvent.DECLINE, GroupEvent.LEAVE_REJOINABLE}
)


@dataclass(frozen=True, slots=True)
class GroupTransition:
    target: GroupCallState
    actions: tuple[GroupAction, ...] = ()


_S = GroupCallState
_E = GroupEvent
_A = GroupAction
_T = GroupTransition

_START: Final = _T(_S.JOINING, (_A.NEW_CALL, _A.SEND_INVITES, _A.CONNECT_LEG, _A.ARM_JOIN_TIMER))
_JOIN: Final = _T(_S.JOINING, (_A.CONNECT_LEG, _A.ARM_JOIN_TIMER))
_RING: Final = _T(_S.RINGING, (_A.ADOPT_INVITE, _A.ARM_RING_TIMER))
_SHOW: Final = _T(_S.IN_PROGRESS, (_A.ADOPT_INVITE,))

#: The whole behaviour: ``GROUP_TRANSITIONS[state][event]``. Missing pairs: rule 3.
GROUP_TRANSITIONS: Final[Mapping[GroupCallState, Mapping[GroupEvent, GroupTransition]]] = {
    _S.IDLE: {_E.START: _START, _E.INVITE: _RING, _E.INVITE_STALE: _SHOW, _E.LEAVE: _T(_S.IDLE)},
    _S.ENDED: {_E.START: _START, _E.INVITE: _RING, _E.INVITE_STALE: _SHOW, _E.LEAVE: _T(_S.ENDED)},
    _S.RINGING: {
        _E.JOIN: _JOIN,
        _E.DECLINE: _T(_S.IN_PROGRESS),
        _E.RING_TIMEOUT: _T(_S.IN_PROGRESS),
        _E.CALL_OVER: _T(_S.ENDED),
        _E.LEAVE: _T(_S.IN_PROGRESS),
    },
    _S.IN_PROGRESS: {
        _E.JOIN: _JOIN,
        _E.START: _START,
        _E.INVITE: _RING,
        _E.CALL_OVER: _T(_S.ENDED),
        _E.LEAVE: _T(_S.IN_PROGRESS),
    },
    _S.JOINING: {
        _E.JOINED: _T(_S.IN_CALL, (_A.START_MEDIA,)),
        _E.LEG_FAILED: _T(_S.ENDED, (_A.STOP_MEDIA,)),
        _E.JOIN_TIMEOUT: _T(_S.ENDED, (_A.STOP_MEDIA,)),
        _E.LEAVE: _T(_S.ENDED, (_A.STOP_MEDIA,)),
    },
    _S.IN_CALL: {
        _E.MEMBER_JOINED: _T(_S.IN_CALL, (_A.ROTATE_KEY,)),
        _E.MEMBER_LEFT: _T(_S.IN_CALL, (_A.FORGET_LEAVER, _A.ROTATE_KEY)),
        _E.LEG_FAILED: _T(_S.ENDED, (_A.STOP_MEDIA,)),
        _E.LEG_DROPPED: _T(_S.REJOINING, (_A.CONNECT_LEG, _A.ARM_REJOIN_TIMER)),
        _E.LEAVE: _T(_S.ENDED, (_A.STOP_MEDIA, _A.SEND_CALL_OVER)),
        _E.LEAVE_REJOINABLE: _T(_S.IN_PROGRESS, (_A.STOP_MEDIA,)),
    },
    _S.REJOINING: {
        _E.JOINED: _T(_S.IN_CALL, (_A.RESUME_MEDIA,)),
        _E.LEG_DROPPED: _T(_S.REJOINING, (_A.ARM_RETRY_TIMER,)),
        _E.LEG_FAILED: _T(_S.REJOINING, (_A.ARM_RETRY_TIMER,)),
        _E.REJOIN_RETRY: _T(_S.REJOINING, (_A.CONNECT_LEG,)),
        _E.REJOIN_TIMEOUT: _T(_S.ENDED, (_A.STOP_MEDIA,)),
        _E.LEAVE: _T(_S.ENDED, (_A.STOP_MEDIA, _A.SEND_CALL_OVER)),
        _E.LEAVE_REJOINABLE: _T(_S.IN_PROGRESS, (_A.STOP_MEDIA,)),
    },
}
