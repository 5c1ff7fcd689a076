"""Call signalling: one state machine per client (the "phone line").

Its behaviour is the table in :mod:`messenger_tui.core.calls.signalling_table` (the design
rules are written there); this module classifies inputs into the table's events and runs the
named actions. The table's names are re-exported here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from messenger_tui.core.calls.effects import (
    BusyRejected,
    CallEffect,
    CallEnded,
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
)
from messenger_tui.core.calls.signalling_table import (
    CONNECT_TIMEOUT_MS,
    EVENT_SOURCE,
    HANGUP_REASONS,
    MAX_OFFER_AGE_MS,
    MESSAGE_EVENTS,
    NO_ANSWER_TIMEOUT_MS,
    SEEN_CALL_IDS,
    TRANSITIONS,
    Action,
    CallEvent,
    CallStateError,
    CallTimeouts,
    CallTransition,
)
from messenger_tui.core.calls.states import CallInfo, CallState, EndReason, EventSource
from messenger_tui.core.crypto.primitives import Rng, default_rng
from messenger_tui.core.errors import CryptoError

__all__ = [
    "CONNECT_TIMEOUT_MS",
    "EVENT_SOURCE",
    "MAX_OFFER_AGE_MS",
    "NO_ANSWER_TIMEOUT_MS",
    "TRANSITIONS",
    "Action",
    "CallEvent",
    "CallSignalling",
    "CallStateError",
    "CallTimeouts",
    "CallTransition",
]


@dataclass(slots=True)
class _Call:
    """The machine's private record of the current call (holds the call's private key)."""

    info: CallInfo
    own_key: CallKeyPair | None  # dropped when the call ends
    keys: MediaKeys | None = None


@dataclass(slots=True)
class _Input:
    """A classified input: the event plus what its actions need."""

    event: CallEvent
    peer: bytes | None = None
    message: CallMessage | None = None
    offered_call: _Call | None = None  # the call an offer proposes (callee keys derived)
    accept_keys: MediaKeys | None = None
    effects: list[CallEffect] = field(default_factory=list)


class CallSignalling:
    """The signalling state machine of one client. Drive it with the methods below; carry out
    the effects each returns, in order (see :mod:`.effects`)."""

    def __init__(self, *, rng: Rng = default_rng, timeouts: CallTimeouts | None = None) -> None:
        self._rng = rng
        self.timeouts = timeouts or CallTimeouts()
        self._state = CallState.IDLE
        self._call: _Call | None = None
        self._deadline: int | None = None
        self._seen: deque[bytes] = deque(maxlen=SEEN_CALL_IDS)

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

    def place_call(self, peer: bytes, now_ms: int) -> list[CallEffect]:
        """Call ``peer``. Calling the peer whose call is ringing here answers it."""
        call = self._call
        if self._state is CallState.INCOMING_RINGING and call and call.info.peer == peer:
            return self._apply(_Input(CallEvent.ACCEPT), now_ms)
        return self._apply(_Input(CallEvent.PLACE_CALL, peer=peer), now_ms)

    def accept(self, now_ms: int) -> list[CallEffect]:
        """Answer the ringing call."""
        return self._apply(_Input(CallEvent.ACCEPT), now_ms)

    def decline(self, now_ms: int) -> list[CallEffect]:
        """Decline the ringing call."""
        return self._apply(_Input(CallEvent.DECLINE), now_ms)

    def hang_up(self, now_ms: int) -> list[CallEffect]:
        """End or cancel the call in any state (declines a ringing one); a no-op when idle."""
        return self._apply(_Input(CallEvent.HANG_UP), now_ms)

    # ------------------------------------------------------------------ peer messages

    def receive(self, peer: bytes, message: CallMessage, now_ms: int) -> list[CallEffect]:
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
            event = CallEvent.PEER_OFFER
        elif state is CallState.OUTGOING_RINGING and call and call.info.peer == peer:
            if offer.call_id == call.info.call_id:
                return None  # rule 5's tie
            won = offer.call_id < call.info.call_id
            event = CallEvent.PEER_OFFER_GLARE_LOST if won else CallEvent.PEER_OFFER_GLARE_WON
        else:
            return _Input(CallEvent.PEER_OFFER_WHILE_BUSY, peer=peer, message=offer)
        offered = None
        if event is not CallEvent.PEER_OFFER_GLARE_WON:
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
        event = MESSAGE_EVENTS[type(message)]
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
                event = CallEvent.PEER_ACCEPT_BAD_KEY
        return _Input(event, peer=peer, message=message, accept_keys=keys)

    # ------------------------------------------------------------------ media and time

    def media_connected(self, call_id: bytes, now_ms: int) -> list[CallEffect]:
        """The media route is up and frames flow both ways (or at least from the peer)."""
        return self._media_event(CallEvent.MEDIA_CONNECTED, call_id, now_ms)

    def media_failed(self, call_id: bytes, now_ms: int) -> list[CallEffect]:
        """The media session could not start (relay refused the join, codec or device error)."""
        return self._media_event(CallEvent.MEDIA_FAILED, call_id, now_ms)

    def media_lost(self, call_id: bytes, now_ms: int) -> list[CallEffect]:
        """The media connection is gone for good: the link did not come back within its grace
        period (10 s), or no frame arrived from the peer for that long (the peer crashed)."""
        return self._media_event(CallEvent.MEDIA_LOST, call_id, now_ms)

    def _media_event(self, event: CallEvent, call_id: bytes, now_ms: int) -> list[CallEffect]:
        if self._call is None or self._call.info.call_id != call_id:
            return []  # a stale media session's report
        return self._apply(_Input(event), now_ms)

    def poll(self, now_ms: int) -> list[CallEffect]:
        """Fire the deadline if it has passed; call it at :attr:`next_deadline_ms`."""
        if self._deadline is None or now_ms < self._deadline:
            return []
        connecting = self._state is CallState.CONNECTING
        event = CallEvent.CONNECT_TIMEOUT if connecting else CallEvent.RING_TIMEOUT
        return self._apply(_Input(event), now_ms)

    # ------------------------------------------------------------------ the engine

    def _apply(self, inp: _Input, now_ms: int) -> list[CallEffect]:
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

    def _run(self, action: Action, inp: _Input, now_ms: int, row: CallTransition) -> None:
        out = inp.effects
        if action is Action.NEW_OUTGOING_CALL:
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
        if action is Action.ADOPT_OFFER:
            assert inp.offered_call is not None
            self._call = inp.offered_call
            return
        if action is Action.SEND_BUSY:
            assert inp.peer is not None and inp.message is not None
            out.append(SendSignal(inp.peer, CallBusy(call_id=inp.message.call_id)))
            return
        if action is Action.REPORT_BUSY_REJECTED:
            assert inp.peer is not None and isinstance(inp.message, CallOffer)
            out.append(BusyRejected(inp.peer, inp.message.call_id, inp.message.created_ms))
            return
        call = self._call
        assert call is not None, f"{action} needs a current call"
        info = call.info
        if action is Action.STORE_PEER_KEYS:
            assert inp.accept_keys is not None
            call.keys = inp.accept_keys
        elif action is Action.MARK_ACCEPTED:
            call.info = replace(info, accepted_ms=now_ms)
        elif action is Action.MARK_ACTIVE:
            call.info = replace(info, active_ms=now_ms)
        elif action is Action.SEND_OFFER:
            assert call.own_key is not None
            offer = CallOffer(info.call_id, created_ms=info.created_ms, key=call.own_key.public)
            out.append(SendSignal(info.peer, offer))
        elif action is Action.SEND_RINGING:
            out.append(SendSignal(info.peer, CallRinging(info.call_id)))
        elif action is Action.SEND_ACCEPT:
            assert call.own_key is not None
            out.append(SendSignal(info.peer, CallAccept(info.call_id, key=call.own_key.public)))
        elif action is Action.SEND_DECLINE:
            out.append(SendSignal(info.peer, CallDecline(info.call_id)))
        elif action is Action.SEND_HANGUP:
            assert row.reason is not None
            reason = HANGUP_REASONS[row.reason]
            out.append(SendSignal(info.peer, CallHangup(info.call_id, reason=reason)))
        elif action is Action.WITHDRAW_OFFER:
            out.append(SendSignal(info.peer, CallHangup(info.call_id, reason="hung_up")))
        elif action is Action.START_MEDIA:
            assert call.keys is not None
            out.append(StartMedia(info.call_id, info.peer, info.role, call.keys))
        elif action is Action.STOP_MEDIA:
            out.append(StopMedia(info.call_id))
        elif action is Action.ARM_RING_TIMER:
            # the callee ends when the caller does: its ring started when the offer was made
            age = 0 if info.role is CallRole.CALLER else now_ms - info.created_ms
            age = min(max(age, 0), self.timeouts.max_offer_age_ms)
            self._deadline = now_ms + self.timeouts.no_answer_ms - age
        elif action is Action.ARM_CONNECT_TIMER:
            self._deadline = now_ms + self.timeouts.connect_ms
        elif action is Action.REPORT_PEER_RINGING:
            call.info = replace(info, peer_ringing=True)
            out.append(PeerRinging(call.info))
        else:  # pragma: no cover - every Action is handled above
            raise AssertionError(f"unhandled action {action}")
