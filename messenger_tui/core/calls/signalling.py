"""Call signalling: one state machine per client (the "phone line"), its behaviour as a table.

Design rules
============

1. **The table is the behaviour.** :data:`TRANSITIONS` maps ``(state, event)`` to a
   :class:`Transition`: the next state, the named :class:`Action` steps to run, and the end
   reason when the next state is ``ENDED``. Code outside the table only *classifies* an input
   into an :class:`Event` (the guards: which call a message is for, glare, staleness, key
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

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Final

from messenger_tui.core.calls.effects import (
    BusyRejected,
    CallEnded,
    Effect,
    PeerRinging,
    SendSignal,
    StartMedia,
    StateChanged,
    StopMedia,
)
from messenger_tui.core.calls.media_keys import CallKeyPair, CallRole, MediaKeys, derive_media_keys
from messenger_tui.core.calls.messages import (
    CALL_ID_LEN,
    CallAccept,
    CallBusy,
    CallDecline,
    CallHangup,
    CallMessage,
    CallOffer,
    CallRinging,
    HangupReason,
)
from messenger_tui.core.calls.states import CallInfo, CallState, EndReason, EventSource
from messenger_tui.core.crypto.primitives import Rng, default_rng
from messenger_tui.core.errors import CoreError, CryptoError

#: Ring this long before giving up with ``no_answer`` (both sides).
NO_ANSWER_TIMEOUT_MS: Final = 45_000
#: From accept to media flowing; past it the call ends ``failed``.
CONNECT_TIMEOUT_MS: Final = 15_000
#: An offer further than this from our clock (stale, or from a badly skewed clock) never rings.
MAX_OFFER_AGE_MS: Final = 30_000
#: How many call ids we remember to drop duplicate offers.
_SEEN_CALL_IDS: Final = 64


class CallStateError(CoreError):
    """A local action the current state does not allow (e.g. accept while nothing rings)."""


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    """The machine's time limits; the defaults are the protocol's."""

    no_answer_ms: int = NO_ANSWER_TIMEOUT_MS
    connect_ms: int = CONNECT_TIMEOUT_MS
    max_offer_age_ms: int = MAX_OFFER_AGE_MS


class Event(Enum):
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
EVENT_SOURCE: Final[Mapping[Event, EventSource]] = {
    Event.PLACE_CALL: _L,
    Event.ACCEPT: _L,
    Event.DECLINE: _L,
    Event.HANG_UP: _L,
    Event.PEER_OFFER: _P,
    Event.PEER_OFFER_GLARE_WON: _P,
    Event.PEER_OFFER_GLARE_LOST: _P,
    Event.PEER_OFFER_WHILE_BUSY: _P,
    Event.PEER_RINGING: _P,
    Event.PEER_ACCEPT: _P,
    Event.PEER_ACCEPT_BAD_KEY: _P,
    Event.PEER_DECLINE: _P,
    Event.PEER_BUSY: _P,
    Event.PEER_HANGUP: _P,
    Event.MEDIA_CONNECTED: _M,
    Event.MEDIA_FAILED: _M,
    Event.MEDIA_LOST: _M,
    Event.RING_TIMEOUT: _TM,
    Event.CONNECT_TIMEOUT: _TM,
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
class Transition:
    """One row of the table. ``reason`` is set exactly when ``target`` is ``ENDED``, unless
    ``peer_reason`` says the peer's hangup message names it."""

    target: CallState
    actions: tuple[Action, ...] = ()
    reason: EndReason | None = None
    peer_reason: bool = False


S = CallState
A = Action
_T = Transition


def _busy_in(state: CallState) -> Transition:
    """A new offer while a call is in progress: answer busy, stay where we are (rule 4)."""
    return _T(state, (A.SEND_BUSY, A.REPORT_BUSY_REJECTED))


_START_FROM_IDLE: Final[Mapping[Event, Transition]] = {
    Event.PLACE_CALL: _T(S.OUTGOING_RINGING, (A.NEW_OUTGOING_CALL, A.SEND_OFFER, A.ARM_RING_TIMER)),
    Event.PEER_OFFER: _T(S.INCOMING_RINGING, (A.ADOPT_OFFER, A.SEND_RINGING, A.ARM_RING_TIMER)),
}
_ACCEPT_STEPS: Final = (A.MARK_ACCEPTED, A.SEND_ACCEPT, A.START_MEDIA, A.ARM_CONNECT_TIMER)
_HANG_UP_WITH_MEDIA: Final = _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.HUNG_UP)

#: The whole signalling behaviour: ``TRANSITIONS[state][event]``. Missing pairs: rule 3.
TRANSITIONS: Final[Mapping[CallState, Mapping[Event, Transition]]] = {
    S.IDLE: {
        **_START_FROM_IDLE,
        Event.HANG_UP: _T(S.IDLE),
    },
    S.OUTGOING_RINGING: {
        Event.HANG_UP: _T(S.ENDED, (A.SEND_HANGUP,), EndReason.HUNG_UP),
        Event.PEER_RINGING: _T(S.OUTGOING_RINGING, (A.REPORT_PEER_RINGING,)),
        Event.PEER_ACCEPT: _T(
            S.CONNECTING, (A.STORE_PEER_KEYS, A.MARK_ACCEPTED, A.START_MEDIA, A.ARM_CONNECT_TIMER)
        ),
        Event.PEER_ACCEPT_BAD_KEY: _T(S.ENDED, (A.SEND_HANGUP,), EndReason.FAILED),
        Event.PEER_DECLINE: _T(S.ENDED, (), EndReason.DECLINED),
        Event.PEER_BUSY: _T(S.ENDED, (), EndReason.BUSY),
        Event.PEER_HANGUP: _T(S.ENDED, peer_reason=True),
        Event.PEER_OFFER_GLARE_WON: _T(S.OUTGOING_RINGING, (A.SEND_OFFER,)),
        Event.PEER_OFFER_GLARE_LOST: _T(
            S.CONNECTING, (A.WITHDRAW_OFFER, A.ADOPT_OFFER, *_ACCEPT_STEPS)
        ),
        Event.PEER_OFFER_WHILE_BUSY: _busy_in(S.OUTGOING_RINGING),
        Event.RING_TIMEOUT: _T(S.ENDED, (A.SEND_HANGUP,), EndReason.NO_ANSWER),
    },
    S.INCOMING_RINGING: {
        Event.ACCEPT: _T(S.CONNECTING, _ACCEPT_STEPS),
        Event.DECLINE: _T(S.ENDED, (A.SEND_DECLINE,), EndReason.DECLINED),
        # the hang-up key on a ringing call declines it
        Event.HANG_UP: _T(S.ENDED, (A.SEND_DECLINE,), EndReason.DECLINED),
        Event.PEER_HANGUP: _T(S.ENDED, peer_reason=True),
        Event.PEER_OFFER_WHILE_BUSY: _busy_in(S.INCOMING_RINGING),
        # the caller hangs up at its own timeout too; this covers a lost hangup
        Event.RING_TIMEOUT: _T(S.ENDED, (), EndReason.NO_ANSWER),
    },
    S.CONNECTING: {
        Event.HANG_UP: _HANG_UP_WITH_MEDIA,
        Event.MEDIA_CONNECTED: _T(S.ACTIVE, (A.MARK_ACTIVE,)),
        Event.MEDIA_FAILED: _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.FAILED),
        Event.MEDIA_LOST: _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.CONNECTION_LOST),
        Event.CONNECT_TIMEOUT: _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.FAILED),
        Event.PEER_HANGUP: _T(S.ENDED, (A.STOP_MEDIA,), peer_reason=True),
        Event.PEER_OFFER_WHILE_BUSY: _busy_in(S.CONNECTING),
    },
    S.ACTIVE: {
        Event.HANG_UP: _HANG_UP_WITH_MEDIA,
        Event.MEDIA_FAILED: _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.FAILED),
        Event.MEDIA_LOST: _T(S.ENDED, (A.SEND_HANGUP, A.STOP_MEDIA), EndReason.CONNECTION_LOST),
        Event.PEER_HANGUP: _T(S.ENDED, (A.STOP_MEDIA,), peer_reason=True),
        Event.PEER_OFFER_WHILE_BUSY: _busy_in(S.ACTIVE),
    },
    S.ENDED: {
        **_START_FROM_IDLE,
        Event.HANG_UP: _T(S.ENDED),
    },
}

#: The reasons a hangup message can carry (the others have their own messages).
_HANGUP_REASONS: Final[Mapping[EndReason, HangupReason]] = {
    EndReason.HUNG_UP: "hung_up",
    EndReason.NO_ANSWER: "no_answer",
    EndReason.FAILED: "failed",
    EndReason.CONNECTION_LOST: "connection_lost",
}
_MESSAGE_EVENTS: Final[Mapping[type, Event]] = {
    CallRinging: Event.PEER_RINGING,
    CallAccept: Event.PEER_ACCEPT,
    CallDecline: Event.PEER_DECLINE,
    CallBusy: Event.PEER_BUSY,
    CallHangup: Event.PEER_HANGUP,
}


@dataclass(slots=True)
class _Call:
    """The machine's private record of the current call (holds the call's private key)."""

    info: CallInfo
    own_key: CallKeyPair | None  # dropped when the call ends
    keys: MediaKeys | None = None


@dataclass(slots=True)
class _Input:
    """A classified input: the event plus what its actions need."""

    event: Event
    peer: bytes | None = None
    message: CallMessage | None = None
    offered_call: _Call | None = None  # the call an offer proposes (callee keys derived)
    accept_keys: MediaKeys | None = None
    effects: list[Effect] = field(default_factory=list)


class CallSignalling:
    """The signalling state machine of one client. Drive it with the methods below; carry out
    the effects each returns, in order (see :mod:`.effects`)."""

    def __init__(self, *, rng: Rng = default_rng, timeouts: CallTimeouts | None = None) -> None:
        self._rng = rng
        self.timeouts = timeouts or CallTimeouts()
        self._state = CallState.IDLE
        self._call: _Call | None = None
        self._deadline: int | None = None
        self._seen: deque[bytes] = deque(maxlen=_SEEN_CALL_IDS)

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def call(self) -> CallInfo | None:
        """The current call, or the last one once it ended; ``None`` before the first."""
        return self._call.info if self._call else None

    @property
    def next_deadline_ms(self) -> int | None:
        """When :meth:`poll` must next be called (``None``: no timer running)."""
        return self._deadline

    # ------------------------------------------------------------------ local user

    def place_call(self, peer: bytes, now_ms: int) -> list[Effect]:
        """Call ``peer``. Calling the peer whose call is ringing here answers it."""
        call = self._call
        if self._state is CallState.INCOMING_RINGING and call and call.info.peer == peer:
            return self._apply(_Input(Event.ACCEPT), now_ms)
        return self._apply(_Input(Event.PLACE_CALL, peer=peer), now_ms)

    def accept(self, now_ms: int) -> list[Effect]:
        """Answer the ringing call."""
        return self._apply(_Input(Event.ACCEPT), now_ms)

    def decline(self, now_ms: int) -> list[Effect]:
        """Decline the ringing call."""
        return self._apply(_Input(Event.DECLINE), now_ms)

    def hang_up(self, now_ms: int) -> list[Effect]:
        """End or cancel the call in any state (declines a ringing one); a no-op when idle."""
        return self._apply(_Input(Event.HANG_UP), now_ms)

    # ------------------------------------------------------------------ peer messages

    def receive(self, peer: bytes, message: CallMessage, now_ms: int) -> list[Effect]:
        """A call message that arrived from ``peer`` (the sender the ratchet authenticated)."""
        if isinstance(message, CallOffer):
            classified = self._classify_offer(peer, message, now_ms)
        else:
            classified = self._classify_reply(peer, message)
        if classified is None:
            return []
        return self._apply(classified, now_ms)

    def _classify_offer(self, peer: bytes, offer: CallOffer, now_ms: int) -> _Input | None:
        if offer.call_id in self._seen:
            return None  # a duplicate, or one of our own calls echoed back
        age = now_ms - offer.created_ms
        if abs(age) > self.timeouts.max_offer_age_ms:
            return None  # rule 6: a ringing offer must never arrive minutes later
        self._seen.append(offer.call_id)
        state, call = self._state, self._call
        if state in (CallState.IDLE, CallState.ENDED):
            event = Event.PEER_OFFER
        elif state is CallState.OUTGOING_RINGING and call and call.info.peer == peer:
            if offer.call_id == call.info.call_id:
                return None  # rule 5's tie
            won = offer.call_id < call.info.call_id
            event = Event.PEER_OFFER_GLARE_LOST if won else Event.PEER_OFFER_GLARE_WON
        else:
            return _Input(Event.PEER_OFFER_WHILE_BUSY, peer=peer, message=offer)
        offered = None
        if event is not Event.PEER_OFFER_GLARE_WON:
            offered = self._incoming_call(peer, offer, now_ms)
            if offered is None:
                return None  # unusable key: a broken or hostile peer; never ring for it
        return _Input(event, peer=peer, message=offer, offered_call=offered)

    def _incoming_call(self, peer: bytes, offer: CallOffer, now_ms: int) -> _Call | None:
        own = CallKeyPair.generate(self._rng)
        try:
            keys = derive_media_keys(
                call_id=offer.call_id, role=CallRole.CALLEE, own=own, peer_public=offer.key
            )
        except CryptoError:
            return None
        info = CallInfo(
            call_id=offer.call_id,
            peer=peer,
            role=CallRole.CALLEE,
            state=CallState.INCOMING_RINGING,
            created_ms=offer.created_ms,
            started_ms=now_ms,
        )
        return _Call(info, own, keys=keys)

    def _classify_reply(self, peer: bytes, message: CallMessage) -> _Input | None:
        call = self._call
        if call is None or message.call_id != call.info.call_id or peer != call.info.peer:
            return None  # rule 8: another call's (or another sender's) message
        event = _MESSAGE_EVENTS[type(message)]
        keys = None
        if isinstance(message, CallAccept) and call.keys is None and call.own_key is not None:
            try:
                keys = derive_media_keys(
                    call_id=call.info.call_id,
                    role=CallRole.CALLER,
                    own=call.own_key,
                    peer_public=message.key,
                )
            except CryptoError:
                event = Event.PEER_ACCEPT_BAD_KEY
        return _Input(event, peer=peer, message=message, accept_keys=keys)

    # ------------------------------------------------------------------ media and time

    def media_connected(self, call_id: bytes, now_ms: int) -> list[Effect]:
        """The media route is up and frames flow both ways (or at least from the peer)."""
        return self._media_event(Event.MEDIA_CONNECTED, call_id, now_ms)

    def media_failed(self, call_id: bytes, now_ms: int) -> list[Effect]:
        """The media session could not start (relay refused the join, codec or device error)."""
        return self._media_event(Event.MEDIA_FAILED, call_id, now_ms)

    def media_lost(self, call_id: bytes, now_ms: int) -> list[Effect]:
        """The media connection is gone for good: the link did not come back within its grace
        period (10 s), or no frame arrived from the peer for that long (the peer crashed)."""
        return self._media_event(Event.MEDIA_LOST, call_id, now_ms)

    def _media_event(self, event: Event, call_id: bytes, now_ms: int) -> list[Effect]:
        if self._call is None or self._call.info.call_id != call_id:
            return []  # a stale media session's report
        return self._apply(_Input(event), now_ms)

    def poll(self, now_ms: int) -> list[Effect]:
        """Fire the deadline if it has passed; call it at :attr:`next_deadline_ms`."""
        if self._deadline is None or now_ms < self._deadline:
            return []
        connecting = self._state is CallState.CONNECTING
        event = Event.CONNECT_TIMEOUT if connecting else Event.RING_TIMEOUT
        return self._apply(_Input(event), now_ms)

    # ------------------------------------------------------------------ the engine

    def _apply(self, inp: _Input, now_ms: int) -> list[Effect]:
        previous = self._state
        row = TRANSITIONS[previous].get(inp.event)
        if row is None:
            if EVENT_SOURCE[inp.event] is EventSource.LOCAL:
                raise CallStateError(f"cannot {inp.event.value} while {previous.value}")
            return []  # rule 3
        if row.target is not previous:
            self._deadline = None  # every timer belongs to one state
        old_call = self._call
        for action in row.actions:
            self._run(action, inp, now_ms, row)
        self._state = row.target
        call = self._call
        if call is None:
            return inp.effects
        if row.target is CallState.ENDED and row.target is not previous:
            reason = row.reason
            if row.peer_reason and isinstance(inp.message, CallHangup):
                reason = EndReason(inp.message.reason)
            call.info = replace(
                call.info,
                ended_ms=now_ms,
                end_reason=reason,
                ended_by=EVENT_SOURCE[inp.event],
            )
            call.keys = call.own_key = None  # the call's secrets are not needed any more
        if row.target is not previous or call is not old_call:
            call.info = replace(call.info, state=row.target)
            inp.effects.append(StateChanged(previous, row.target, call.info))
            if row.target is CallState.ENDED:
                inp.effects.append(CallEnded(call.info))
        return inp.effects

    def _run(self, action: Action, inp: _Input, now_ms: int, row: Transition) -> None:
        out = inp.effects
        if action is A.NEW_OUTGOING_CALL:
            assert inp.peer is not None
            call_id = self._rng(CALL_ID_LEN)
            if len(call_id) != CALL_ID_LEN:
                raise ValueError("the rng returned the wrong number of bytes")
            self._seen.append(call_id)
            info = CallInfo(
                call_id=call_id,
                peer=inp.peer,
                role=CallRole.CALLER,
                state=CallState.OUTGOING_RINGING,
                created_ms=now_ms,
                started_ms=now_ms,
            )
            self._call = _Call(info, CallKeyPair.generate(self._rng))
            return
        if action is A.ADOPT_OFFER:
            assert inp.offered_call is not None
            self._call = inp.offered_call
            return
        if action is A.SEND_BUSY:
            assert inp.peer is not None and inp.message is not None
            out.append(SendSignal(inp.peer, CallBusy(call_id=inp.message.call_id)))
            return
        if action is A.REPORT_BUSY_REJECTED:
            assert inp.peer is not None and isinstance(inp.message, CallOffer)
            out.append(BusyRejected(inp.peer, inp.message.call_id, inp.message.created_ms))
            return
        call = self._call
        assert call is not None, f"{action} needs a current call"
        info = call.info
        if action is A.STORE_PEER_KEYS:
            assert inp.accept_keys is not None
            call.keys = inp.accept_keys
        elif action is A.MARK_ACCEPTED:
            call.info = replace(info, accepted_ms=now_ms)
        elif action is A.MARK_ACTIVE:
            call.info = replace(info, active_ms=now_ms)
        elif action is A.SEND_OFFER:
            assert call.own_key is not None
            offer = CallOffer(info.call_id, created_ms=info.created_ms, key=call.own_key.public)
            out.append(SendSignal(info.peer, offer))
        elif action is A.SEND_RINGING:
            out.append(SendSignal(info.peer, CallRinging(info.call_id)))
        elif action is A.SEND_ACCEPT:
            assert call.own_key is not None
            out.append(SendSignal(info.peer, CallAccept(info.call_id, key=call.own_key.public)))
        elif action is A.SEND_DECLINE:
            out.append(SendSignal(info.peer, CallDecline(info.call_id)))
        elif action is A.SEND_HANGUP:
            assert row.reason is not None
            reason = _HANGUP_REASONS[row.reason]
            out.append(SendSignal(info.peer, CallHangup(info.call_id, reason=reason)))
        elif action is A.WITHDRAW_OFFER:
            out.append(SendSignal(info.peer, CallHangup(info.call_id, reason="hung_up")))
        elif action is A.START_MEDIA:
            assert call.keys is not None
            out.append(StartMedia(info.call_id, info.peer, info.role, call.keys))
        elif action is A.STOP_MEDIA:
            out.append(StopMedia(info.call_id))
        elif action is A.ARM_RING_TIMER:
            # the callee ends when the caller does: its ring started when the offer was made
            age = 0 if info.role is CallRole.CALLER else now_ms - info.created_ms
            age = min(max(age, 0), self.timeouts.max_offer_age_ms)
            self._deadline = now_ms + self.timeouts.no_answer_ms - age
        elif action is A.ARM_CONNECT_TIMER:
            self._deadline = now_ms + self.timeouts.connect_ms
        elif action is A.REPORT_PEER_RINGING:
            call.info = replace(info, peer_ringing=True)
            out.append(PeerRinging(call.info))
        else:  # pragma: no cover - every Action is handled above
            raise AssertionError(f"unhandled action {action}")
