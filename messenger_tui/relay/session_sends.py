"""A connection's sends: ``Send`` and ``SendMulti`` checked, gated, rate-limited and handed to
the mailboxes, their answers (``Stored``, ``StoredMulti`` or a refusal), and the bounds on what
one connection may have awaiting its commit (a part of
:class:`~messenger_tui.relay.session.MessageRouteConnection`).

The session reads nothing more from the client while :meth:`SessionSends._sends_backlogged`
holds; a commit that brings the backlog under its bounds sets the session's ``_resume``.
A stranger whose message requests keep being refused for a full quota is closed (1008) after
:data:`MAX_QUOTA_REFUSALS` of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Final

from messenger_tui.core import wire
from messenger_tui.core.groups.send_credential import grant_verifier
from messenger_tui.core.wire import ErrorCode
from messenger_tui.relay import fanout
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.frame_queue import FrameQueue
from messenger_tui.relay.send_order import SendGate
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.store import InsertOutcome, InsertResult, NewEnvelope, StoreUnavailable
from messenger_tui.relay.wakeup import Wakeup

CLOSE_POLICY: Final = 1008
#: Sends awaiting their commit before the session stops reading from the client.
MAX_PENDING_INSERTS: Final = 1024
#: Envelope bytes awaiting their commit before the session stops reading from the client.
MAX_PENDING_BYTES: Final = 4 * 1024 * 1024
#: Sends refused for a full request quota before the connection is closed (1008): once a
#: stranger's requests are refused, everything more it sends is pure cost to the relay.
MAX_QUOTA_REFUSALS: Final = 20
_REFUSALS: Final = {
    InsertOutcome.MAILBOX_FULL: "the recipient's mailbox is full",
    InsertOutcome.REQUESTS_FULL: (
        "the recipient's message requests are full (you are not among its contacts: it has "
        "not given you its delivery secret); retry later"
    ),
    InsertOutcome.SENDER_REQUESTS_FULL: (
        "you have too many unread message requests waiting for this recipient; retry after "
        "it reads them"
    ),
}


class SessionSends(ABC):
    """Send handlers the session dispatches to; the session provides the state declared
    below, this part owns the send gate, the commit backlog and the quota-refusal count."""

    _s: RelayServices
    _config: RelayConfig
    _frames: FrameQueue
    _label: str
    _resume: Wakeup

    def __init__(self) -> None:
        super().__init__()
        self._pending_inserts = 0
        self._pending_bytes = 0
        self._quota_refusals = 0
        #: Refuses the sends that follow a send refused for now (see relay/send_order.py).
        self._send_gate = SendGate()

    @property
    @abstractmethod
    def identity(self) -> bytes:
        """The authenticated identity (the session's)."""

    @abstractmethod
    def _error(self, code: str, message: str, ref: int | bytes | None = None) -> None:
        """Queue an Error frame (the session's)."""

    @abstractmethod
    def _close_soon(self, code: int, reason: str) -> None:
        """Close the connection in a task of its own (the session's)."""

    def _sends_backlogged(self) -> bool:
        """Whether so many sends await their commit that the session must stop reading."""
        return (
            self._pending_inserts >= MAX_PENDING_INSERTS or self._pending_bytes >= MAX_PENDING_BYTES
        )

    def _on_send(self, frame: wire.Send, allowed: bool | None = None) -> None:
        """``allowed``: the shared (several nodes) send limit's answer; None: ask the local
        limiter."""
        if len(frame.id) != wire.MESSAGE_ID_LEN:
            self._error(ErrorCode.BAD_REQUEST, "message id must be 16 bytes", frame.id)
        elif len(frame.to) != wire.KEY_LEN:
            self._error(ErrorCode.BAD_REQUEST, "recipient must be a 32-byte identity", frame.id)
        elif len(frame.body) > self._config.max_envelope:
            self._error(
                ErrorCode.TOO_LARGE,
                f"envelope is {len(frame.body)} bytes, the limit is {self._config.max_envelope}",
                frame.id,
            )
        elif (held := self._send_gate.admit(frame.id)) is not None:
            self._error(
                held, "an earlier message on this connection was refused; resend in order", frame.id
            )
        elif not (self._s.limits.send.allow(self.identity) if allowed is None else allowed):
            self._send_gate.refused(frame.id, ErrorCode.RATE_LIMITED)
            self._error(ErrorCode.RATE_LIMITED, "too many messages; retry later", frame.id)
        else:
            self._pending_inserts += 1
            self._pending_bytes += len(frame.body)
            self._s.mailboxes.submit(
                NewEnvelope(frame.to, self.identity, frame.id, frame.body, frame.access),
                self._insert_done,
            )

    def _insert_done(self, envelope: NewEnvelope, result: InsertResult | None) -> None:
        self._committed(1, len(envelope.body))
        if result is None:
            self._send_gate.refused(envelope.msg_id, ErrorCode.INTERNAL)
            self._error(ErrorCode.INTERNAL, "relay storage fault; retry", envelope.msg_id)
        elif result.outcome in _REFUSALS:
            self._send_gate.refused(envelope.msg_id, ErrorCode.MAILBOX_FULL)
            self._error(ErrorCode.MAILBOX_FULL, _REFUSALS[result.outcome], envelope.msg_id)
            if result.request:
                self._request_refused()
        else:
            self._frames.put(
                wire.Stored(id=envelope.msg_id, to=envelope.recipient, request=result.request)
            )

    async def _resolve_short(self, frame: wire.SendMulti) -> fanout.ShortSend | None:
        """A short send's long form; None when it was refused or answered already (no
        reference granted: nothing to store)."""
        refusal = fanout.check_short(frame)
        if refusal is not None:
            self._error(refusal.code, refusal.message, frame.id)
            return None
        assert frame.cred is not None
        try:
            grantees = await self._s.store.grantees(self.identity, grant_verifier(frame.cred))
        except StoreUnavailable:
            self._error(ErrorCode.INTERNAL, "relay storage unavailable; retry", frame.id)
            return None
        short = fanout.resolve_short(frame, grantees)
        if not short.frame.to:
            self._frames.put(wire.StoredMulti(id=frame.id, results=short.answer([])))
            return None
        return short

    def _on_send_multi(
        self,
        frame: wire.SendMulti,
        allowed: bool | None = None,
        short: fanout.ShortSend | None = None,
    ) -> None:
        """One upload for many recipients (relay/fanout.py has the rules); ``allowed`` as in
        :meth:`_on_send`; ``short``: the frame is a resolved short send (answered by
        reference)."""
        refusal = fanout.check_send_multi(frame, self._config.max_envelope)
        limiter = self._s.limits.send
        if refusal is not None:
            self._error(refusal.code, refusal.message, frame.id)
        elif (held := self._send_gate.admit(frame.id)) is not None:
            self._error(
                held, "an earlier message on this connection was refused; resend in order", frame.id
            )
        elif not (
            limiter.allow(self.identity, fanout.rate_cost(len(frame.to), limiter.limit.burst))
            if allowed is None
            else allowed
        ):
            self._send_gate.refused(frame.id, ErrorCode.RATE_LIMITED)
            self._error(ErrorCode.RATE_LIMITED, "too many messages; retry later", frame.id)
        else:
            self._pending_inserts += len(frame.to)
            self._pending_bytes += fanout.upload_size(frame)
            done = self._multi_done
            if short is not None:

                def done(
                    frame: wire.SendMulti,
                    outcomes: list[wire.MultiOutcome],
                    refused_requests: int,
                    short: fanout.ShortSend = short,
                ) -> None:
                    self._multi_done(frame, short.answer(outcomes), refused_requests)

            results = fanout.MultiResults(frame, done)
            granted = short is not None
            for envelope in fanout.envelopes(frame, self.identity, granted=granted):
                self._s.mailboxes.submit(envelope, results.done)

    def _multi_done(
        self, frame: wire.SendMulti, outcomes: list[wire.MultiOutcome], refused_requests: int
    ) -> None:
        self._committed(len(frame.to), fanout.upload_size(frame))
        # A refused recipient does not close the send gate: it must not hold up the group's
        # other members or later messages (the client retries that recipient; docs/protocol.md).
        if refused_requests:  # one strike per frame, however many strangers it named
            self._request_refused()
        self._frames.put(wire.StoredMulti(id=frame.id, results=outcomes))

    def _committed(self, inserts: int, nbytes: int) -> None:
        """``inserts`` envelopes of ``nbytes`` left the backlog: resume reading if under."""
        self._pending_inserts -= inserts
        self._pending_bytes -= nbytes
        if self._pending_inserts < MAX_PENDING_INSERTS and self._pending_bytes < MAX_PENDING_BYTES:
            self._resume.set()

    def _request_refused(self) -> None:
        """One strike for a message request refused for a full quota."""
        self._quota_refusals += 1
        if self._quota_refusals == MAX_QUOTA_REFUSALS:
            self._s.log.info("%s: closed after refused message requests", self._label)
            self._close_soon(CLOSE_POLICY, "too many refused message requests")
