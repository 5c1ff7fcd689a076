"""Call signalling's behaviour: the transition table, its events, actions and timeouts.

The machine that runs it is :class:`messenger_tui.core.calls.signalling.CallSignalling`.

Design rules
============

1. **The table is the behaviour.** :data:`TRANSITIONS` maps ``(state, event)`` to a
   :class:`CallTransition`: the next state, the named :class:`Action` steps to run, and the
   end reason when the next state is ``ENDED``. Code outside the table only *classifies* an input
   into a :class:`CallEvent` (the guards: which call a message is for, glare, staleness, key
   validity) and *runs* the named actions. The table has no conditions in it.
2. **Sans-I/O.** Inputs are method calls that carry ``now_ms``; outputs are lists of effect
   objects (:mod:`.effects`). The machine never sends, sleeps or calls back. Timers are
   deadlines: read :attr:`CallSignalling.next_deadline_ms` and call :meth:`~CallSignalling.poll`
   when it has passed. Randomness (call ids, call keys) comes from an injected ``rng``.
3. **Local events that the table does not list are errors** (:class:`CallStateError`): the UI
   asked for something impossible, e.g. accept while nothing rings; check :attr:`state` first.
   ``hang_up`` is listed in every state, so it is always safe. **Peer, media and timer events
   that the table does not list are ignored**: signalling is carried over a lossy, duplicating
   channel, and late or repeated messages are normal, never errors.
4. **One call at a time.** An offer that arrives while a call is ringing, connecting or active
   is answered ``busy`` (and reported as :class:`~.effects.BusyRejected`), glare excepted.
5. **Glare** (we call a peer who is calling us): both sides see both offers, so both apply the
   same rule to the same data: *the offer with the lower call id (bytewise) wins*. The side
   whose offer lost withdraws it (a hangup for it) and accepts the winning offer (both users
   asked for this call, so it connects without ringing); the winning side ignores the losing
   offer and sends its own again, in case the first copy was lost. The withdrawal matters when
   the two sides did *not* see the same pair of offers: the peer hung up and called again
   before our offer reached it, so it judges our offer against its new one, may adopt it, and
   must then learn that we gave it up. A call id tie (2**-128) leaves both ringing.
6. **Stale offers never ring.** An offer whose ``created_ms`` is more than
   ``max_offer_age_ms`` (30 s) away from our clock, either way, is dropped silently; so is any
   offer whose call id we have seen before (duplicates, our own calls, answered ones).
7. **ENDED is IDLE with a memory**: new calls start from it as from IDLE, and the last call's
   :class:`~.states.CallInfo` stays readable until the next one begins.
8. Messages name their call: a message for another call id, or from someone who is not the
   current call's peer, is ignored. Media events name their call id for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from messenger_tui.core.calls.messages import (
    CallAccept,
    CallBusy,
    CallDecline,
    CallHangup,
    CallRinging,
    HangupReason,
)
from messenger_tui.core.calls.states import CallState, EndReason, EventSource
from messenger_tui.core.errors import CoreError

#: Ring this long before giving up with ``no_answer`` (both sides).
NO_ANSWER_TIMEOUT_MS: Final = 45_000
#: From accept to media flowing; past it the call ends ``failed``.
CONNECT_TIMEOUT_MS: Final = 15_000
#: An offer further than this from our clock (stale, or from a badly skewed clock) never rings.
MAX_OFFER_AGE_MS: Final = 30_000
#: How many call ids we remember to drop duplicate offers.
SEEN_CALL_IDS: Final = 64


class CallStateError(CoreError):
    """A local action the current state does not allow (e.g. accept while nothing rings)."""


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    """The machine's time limits; the defaults are the protocol's."""

    no_answer_ms: int = NO_ANSWER_TIMEOUT_MS
    connect_ms: int = CONNECT_TIMEOUT_MS
    max_offer_age_ms: int = MAX_OFFER_AGE_MS


class CallEvent(Enum):
    """Inputs after classification. The source of each is in :data:`EVENT_SOURCE`."""

    # the local user
    PLACE_CALL = "place_call"
    ACCEPT = "accept"
    DECLINE = "decline"
    HANG_UP = "hang_up"
    # the peer's messages
    PEER_OFFER = "peer_offer"
    PEER_OFFER_GLARE_WON = "peer_offer_glare_won"  # their offer crossed ours and lost
    PEER_OFFER_GLARE_LOST = "peer_offer_glare_lost"  # their offer crossed ours and won
    PEER_OFFER_WHILE_BUSY = "peer_offer_while_busy"
    PEER_RINGING = "peer_ringing"
    PEER_ACCEPT = "peer_accept"
    PEER_ACCEPT_BAD_KEY = "peer_accept_bad_key"  # its key gives no usable shared secret
    PEER_DECLINE = "peer_decline"
    PEER_BUSY = "peer_busy"
    PEER_HANGUP = "peer_hangup"
    # the media transport
    MEDIA_CONNECTED = "media_connected"
    MEDIA_FAILED = "media_failed"
    MEDIA_LOST = "media_lost"
    # deadlines
    RING_TIMEOUT = "ring_timeout"
    CONNECT_TIMEOUT = "connect_timeout"


_L, _P, _M, _TM = EventSource.LOCAL, EventSource.PEER, EventSource.MEDIA, EventSource.TIMER
#: Where each event comes from: decides errors (rule 3) and ``CallInfo.ended_by``.
EVENT_SOURCE: Final[Mapping[CallEvent, EventSource]] = {
    CallEvent.PLACE_CALL: _L,
    CallEvent.ACCEPT: _L,
    CallEvent.DECLINE: _L,
    CallEvent.HANG_UP: _L,
    CallEvent.PEER_OFFER: _P,
    CallEvent.PEER_OFFER_GLARE_WON: _P,
    CallEvent.PEER_OFFER_GLARE_LOST: _P,
    CallEvent.PEER_OFFER_WHILE_BUSY: _P,
    CallEvent.PEER_RINGING: _P,
    CallEvent.PEER_ACCEPT: _P,
    CallEvent.PEER_ACCEPT_BAD_KEY: _P,
    CallEvent.PEER_DECLINE: _P,
    CallEvent.PEER_BUSY: _P,
    CallEvent.PEER_HANGUP: _P,
    CallEvent.MEDIA_CONNECTED: _M,
    CallEvent.MEDIA_FAILED: _M,
    CallEvent.MEDIA_LOST: _M,
    CallEvent.RING_TIMEOUT: _TM,
    CallEvent.CONNECT_TIMEOUT: _TM,
}


class Action(Enum):
    """Named steps a transition runs, in order (see ``CallSignalling._run``)."""

    NEW_OUTGOING_CALL = "new_outgoing_call"  # fresh call id and key pair
    ADOPT_OFFER = "adopt_offer"  # the offer's call becomes the current call
    STORE_PEER_KEYS = "store_peer_keys"  # media keys from the peer's accept
    MARK_ACCEPTED = "mark_accepted"
    MARK_ACTIVE = "mark_active"
    SEND_OFFER = "send_offer"
    SEND_RINGING = "send_ringing"
    SEND_ACCEPT = "send_accept"
    SEND_DECLINE = "send_decline"
    SEND_HANGUP = "send_hangup"  # with the transition's reason
    WITHDRAW_OFFER = "withdraw_offer"  # a hangup for our own call, which lost glare
    SEND_BUSY = "send_busy"  # to the rejected offer's sender, not the current peer
    START_MEDIA = "start_media"
    STOP_MEDIA = "stop_media"
    ARM_RING_TIMER = "arm_ring_timer"
    ARM_CONNECT_TIMER = "arm_connect_timer"
    REPORT_PEER_RINGING = "report_peer_ringing"
    REPORT_BUSY_REJECTED = "report_busy_rejected"


@dataclass(frozen=True, slots=True)
class CallTransition:
    """One row of the table. ``reason`` is set exactly when ``target`` is ``ENDED``, unless
    ``peer_reason`` says the peer's hangup message names it."""

    target: CallState
    actions: tuple[Action, ...] = ()
    reason: EndReason | None = None
    peer_reason: bool = False


_S = CallState
_A = Action
_T = CallTransition


def _busy_in(state: CallState) -> CallTransition:
    """A new offer while a call is in progress: answer busy, stay where we are (rule 4)."""
    return _T(state, (_A.SEND_BUSY, _A.REPORT_BUSY_REJECTED))


_START_FROM_IDLE: Final[Mapping[CallEvent, CallTransition]] = {
    CallEvent.PLACE_CALL: _T(
        _S.OUTGOING_RINGING, (_A.NEW_OUTGOING_CALL, _A.SEND_OFFER, _A.ARM_RING_TIMER)
    ),
    CallEvent.PEER_OFFER: _T(
        _S.INCOMING_RINGING, (_A.ADOPT_OFFER, _A.SEND_RINGING, _A.ARM_RING_TIMER)
    ),
}
_ACCEPT_STEPS: Final = (_A.MARK_ACCEPTED, _A.SEND_ACCEPT, _A.START_MEDIA, _A.ARM_CONNECT_TIMER)
_HANG_UP_WITH_MEDIA: Final = _T(_S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.HUNG_UP)

#: The whole signalling behaviour: ``TRANSITIONS[state][event]``. Missing pairs: rule 3.
TRANSITIONS: Final[Mapping[CallState, Mapping[CallEvent, CallTransition]]] = {
    _S.IDLE: {
        **_START_FROM_IDLE,
        CallEvent.HANG_UP: _T(_S.IDLE),
    },
    _S.OUTGOING_RINGING: {
        CallEvent.HANG_UP: _T(_S.ENDED, (_A.SEND_HANGUP,), EndReason.HUNG_UP),
        CallEvent.PEER_RINGING: _T(_S.OUTGOING_RINGING, (_A.REPORT_PEER_RINGING,)),
        CallEvent.PEER_ACCEPT: _T(
            _S.CONNECTING,
            (_A.STORE_PEER_KEYS, _A.MARK_ACCEPTED, _A.START_MEDIA, _A.ARM_CONNECT_TIMER),
        ),
        CallEvent.PEER_ACCEPT_BAD_KEY: _T(_S.ENDED, (_A.SEND_HANGUP,), EndReason.FAILED),
        CallEvent.PEER_DECLINE: _T(_S.ENDED, (), EndReason.DECLINED),
        CallEvent.PEER_BUSY: _T(_S.ENDED, (), EndReason.BUSY),
        CallEvent.PEER_HANGUP: _T(_S.ENDED, peer_reason=True),
        CallEvent.PEER_OFFER_GLARE_WON: _T(_S.OUTGOING_RINGING, (_A.SEND_OFFER,)),
        CallEvent.PEER_OFFER_GLARE_LOST: _T(
            _S.CONNECTING, (_A.WITHDRAW_OFFER, _A.ADOPT_OFFER, *_ACCEPT_STEPS)
        ),
        CallEvent.PEER_OFFER_WHILE_BUSY: _busy_in(_S.OUTGOING_RINGING),
        CallEvent.RING_TIMEOUT: _T(_S.ENDED, (_A.SEND_HANGUP,), EndReason.NO_ANSWER),
    },
    _S.INCOMING_RINGING: {
        CallEvent.ACCEPT: _T(_S.CONNECTING, _ACCEPT_STEPS),
        CallEvent.DECLINE: _T(_S.ENDED, (_A.SEND_DECLINE,), EndReason.DECLINED),
        # the hang-up key on a ringing call declines it
        CallEvent.HANG_UP: _T(_S.ENDED, (_A.SEND_DECLINE,), EndReason.DECLINED),
        CallEvent.PEER_HANGUP: _T(_S.ENDED, peer_reason=True),
        CallEvent.PEER_OFFER_WHILE_BUSY: _busy_in(_S.INCOMING_RINGING),
        # the caller hangs up at its own timeout too; this covers a lost hangup
        CallEvent.RING_TIMEOUT: _T(_S.ENDED, (), EndReason.NO_ANSWER),
    },
    _S.CONNECTING: {
        CallEvent.HANG_UP: _HANG_UP_WITH_MEDIA,
        CallEvent.MEDIA_CONNECTED: _T(_S.ACTIVE, (_A.MARK_ACTIVE,)),
        CallEvent.MEDIA_FAILED: _T(_S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.FAILED),
        CallEvent.MEDIA_LOST: _T(
            _S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.CONNECTION_LOST
        ),
        CallEvent.CONNECT_TIMEOUT: _T(_S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.FAILED),
        CallEvent.PEER_HANGUP: _T(_S.ENDED, (_A.STOP_MEDIA,), peer_reason=True),
        CallEvent.PEER_OFFER_WHILE_BUSY: _busy_in(_S.CONNECTING),
    },
    _S.ACTIVE: {
        CallEvent.HANG_UP: _HANG_UP_WITH_MEDIA,
        CallEvent.MEDIA_FAILED: _T(_S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.FAILED),
        CallEvent.MEDIA_LOST: _T(
            _S.ENDED, (_A.SEND_HANGUP, _A.STOP_MEDIA), EndReason.CONNECTION_LOST
        ),
        CallEvent.PEER_HANGUP: _T(_S.ENDED, (_A.STOP_MEDIA,), peer_reason=True),
        CallEvent.PEER_OFFER_WHILE_BUSY: _busy_in(_S.ACTIVE),
    },
    _S.ENDED: {
        **_START_FROM_IDLE,
        CallEvent.HANG_UP: _T(_S.ENDED),
    },
}

#: The reasons a hangup message can carry (the others have their own messages).
HANGUP_REASONS: Final[Mapping[EndReason, HangupReason]] = {
    EndReason.HUNG_UP: "hung_up",
    EndReason.NO_ANSWER: "no_answer",
    EndReason.FAILED: "failed",
    EndReason.CONNECTION_LOST: "connection_lost",
}
MESSAGE_EVENTS: Final[Mapping[type, CallEvent]] = {
    CallRinging: CallEvent.PEER_RINGING,
    CallAccept: CallEvent.PEER_ACCEPT,
    CallDecline: CallEvent.PEER_DECLINE,
    CallBusy: CallEvent.PEER_BUSY,
    CallHangup: CallEvent.PEER_HANGUP,
}
