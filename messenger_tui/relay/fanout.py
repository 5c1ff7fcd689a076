"""Multi-recipient sends (``SendMulti``): checks, rate cost and per-recipient results (sans-I/O).

The session (:meth:`messenger_tui.relay.session_sends.SessionSends._on_send_multi`) checks the
frame with :func:`check_send_multi`, spends :func:`rate_cost` tokens of the sender's send
bucket, submits :func:`envelopes` (one per recipient, sharing one
:class:`~messenger_tui.relay.store.SharedUpload`, so the store keeps one body) to the
mailboxes, and hands each committed result to a :class:`MultiResults`, which calls back once
with the whole answer when the last recipient's result is in.

Rules (docs/protocol.md, "Multi-recipient send"):

- the whole frame is refused (one ``Error`` with ref ``id``, nothing stored) for a bad id,
  no recipient or more than :data:`~messenger_tui.core.wire.MAX_MULTI_RECIPIENTS`, a
  recipient that is not a 32-byte identity or is named twice, a header over
  :data:`~messenger_tui.core.wire.MAX_MULTI_HEADER`, a body over the relay's envelope limit,
  and a rate-limited sender;
- otherwise each recipient is decided alone, exactly as a ``Send`` to it would be
  (idempotent by (recipient, sender, id); its own contact or request quota, counting the
  shared body's full size against it), and the answer is one ``StoredMulti`` listing each;
- the short form (``cred`` set, ``to`` empty, ``refs`` the 8-byte references) is checked by
  :func:`check_short` (the same bounds on the reference count, no reference twice, a
  32-byte credential), then :func:`resolve_short` turns it into the long form for the
  recipients whose grant (relay/group_grants.py) holds the credential's verifier for this
  sender, marked ``granted`` (a contact's envelope); each reference no grant resolves is
  answered ``not_granted``, and :meth:`ShortSend.answer` maps the answer back to references;
- the rate cost is one token per recipient (a delivery costs the same as a 1:1 send), capped
  at the bucket's burst so a full group stays sendable under a small configured burst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from messenger_tui.core import wire
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.relay.store import InsertOutcome, InsertResult, NewEnvelope, SharedUpload


@dataclass(frozen=True, slots=True)
class MultiSendRefusal:
    """Why a whole ``SendMulti`` is refused."""

    code: str
    message: str


def check_send_multi(frame: wire.SendMulti, max_envelope: int) -> MultiSendRefusal | None:
    """None when the frame may be stored, else the whole frame's refusal."""
    bad = wire.ErrorCode.BAD_REQUEST
    if len(frame.id) != wire.MESSAGE_ID_LEN:
        return MultiSendRefusal(bad, "message id must be 16 bytes")
    count = len(frame.to)
    if not 1 <= count <= wire.MAX_MULTI_RECIPIENTS:
        return MultiSendRefusal(
            bad,
            f"a multi-recipient send names 1 to {wire.MAX_MULTI_RECIPIENTS} "
            f"recipients, got {count}",
        )
    if any(len(r.to) != wire.KEY_LEN for r in frame.to):
        return MultiSendRefusal(bad, "recipients must be 32-byte identities")
    if len({r.to for r in frame.to}) != count:
        return MultiSendRefusal(bad, "a recipient is named twice")
    if any(len(r.header) > wire.MAX_MULTI_HEADER for r in frame.to):
        return MultiSendRefusal(bad, f"a recipient header is over {wire.MAX_MULTI_HEADER} bytes")
    if len(frame.body) > max_envelope:
        return MultiSendRefusal(
            wire.ErrorCode.TOO_LARGE,
            f"envelope is {len(frame.body)} bytes, the limit is {max_envelope}",
        )
    return None


def check_short(frame: wire.SendMulti) -> MultiSendRefusal | None:
    """None when a short-form frame is well formed, else its refusal."""
    bad = wire.ErrorCode.BAD_REQUEST
    if frame.cred is None or len(frame.cred) != sc.CREDENTIAL_LEN:
        return MultiSendRefusal(bad, f"a send credential is {sc.CREDENTIAL_LEN} bytes")
    if frame.to:
        return MultiSendRefusal(bad, "a short send names its recipients by reference only")
    try:
        refs = sc.split_refs(frame.refs)
    except ValueError as exc:
        return MultiSendRefusal(bad, str(exc))
    if not 1 <= len(refs) <= wire.MAX_MULTI_RECIPIENTS:
        return MultiSendRefusal(
            bad,
            f"a multi-recipient send names 1 to {wire.MAX_MULTI_RECIPIENTS} "
            f"recipients, got {len(refs)}",
        )
    if len(set(refs)) != len(refs):
        return MultiSendRefusal(bad, "a recipient is named twice")
    return None


@dataclass(frozen=True, slots=True)
class ShortSend:
    """A short send resolved: ``frame`` the long form for the granted recipients (empty
    ``to`` when none), ``ref_of`` each one's reference, ``unresolved`` the others."""

    frame: wire.SendMulti
    ref_of: dict[bytes, bytes]
    unresolved: list[bytes]

    def answer(self, outcomes: list[wire.MultiOutcome]) -> list[wire.MultiOutcome]:
        """The long form's outcomes by reference, then ``not_granted`` for the others."""
        mapped = [
            wire.MultiOutcome(to=self.ref_of[o.to], code=o.code, request=o.request)
            for o in outcomes
        ]
        return mapped + [
            wire.MultiOutcome(to=ref, code=wire.ErrorCode.NOT_GRANTED) for ref in self.unresolved
        ]


def resolve_short(frame: wire.SendMulti, grantees: list[bytes]) -> ShortSend:
    """Resolve a checked short frame's references against ``grantees`` (the identities
    granting this sender the verifier of ``frame.cred``)."""
    assert frame.cred is not None
    by_ref = {sc.recipient_ref(frame.cred, g): g for g in grantees}
    to: list[wire.MultiRecipient] = []
    ref_of: dict[bytes, bytes] = {}
    unresolved: list[bytes] = []
    for ref in sc.split_refs(frame.refs):
        recipient = by_ref.get(ref)
        if recipient is None:
            unresolved.append(ref)
        else:
            to.append(wire.MultiRecipient(to=recipient))
            ref_of[recipient] = ref
    long = wire.SendMulti(id=frame.id, body=frame.body, to=to)
    return ShortSend(long, ref_of, unresolved)


def rate_cost(recipients: int, burst: int) -> float:
    """Send-bucket tokens one ``SendMulti`` costs: one per recipient, at most the burst."""
    return float(min(recipients, burst))


def upload_size(frame: wire.SendMulti) -> int:
    """Bytes the frame holds in memory until its commit (the body once, every header)."""
    return len(frame.body) + sum(len(r.header) for r in frame.to)


def envelopes(frame: wire.SendMulti, sender: bytes, *, granted: bool = False) -> list[NewEnvelope]:
    """One envelope per recipient, in the frame's order, sharing one upload (``granted``:
    the recipients were resolved from their grants, :func:`resolve_short`)."""
    upload = SharedUpload()
    return [
        NewEnvelope(r.to, sender, frame.id, frame.body, r.access, r.header, upload, granted)
        for r in frame.to
    ]


def outcome_code(result: InsertResult | None) -> str | None:
    """A recipient's ``MultiOutcome.code``: None when stored (or a duplicate)."""
    if result is None:
        return wire.ErrorCode.INTERNAL
    if result.outcome in (InsertOutcome.STORED, InsertOutcome.DUPLICATE):
        return None
    return wire.ErrorCode.MAILBOX_FULL


class MultiResults:
    """Collects the committed result of every recipient of one ``SendMulti``; calls
    ``on_complete(frame, outcomes, refused_requests)`` once, after the last one."""

    __slots__ = ("_frame", "_index", "_missing", "_on_complete", "_outcomes", "_refused_requests")

    def __init__(
        self,
        frame: wire.SendMulti,
        on_complete: Callable[[wire.SendMulti, list[wire.MultiOutcome], int], None],
    ) -> None:
        self._frame = frame
        self._on_complete = on_complete
        self._index = {r.to: i for i, r in enumerate(frame.to)}
        self._outcomes: list[wire.MultiOutcome | None] = [None] * len(frame.to)
        self._missing = len(frame.to)
        self._refused_requests = 0

    def done(self, envelope: NewEnvelope, result: InsertResult | None) -> None:
        """The mailboxes' per-envelope callback."""
        code = outcome_code(result)
        request = result is not None and result.request
        if code == wire.ErrorCode.MAILBOX_FULL and request:
            self._refused_requests += 1
        self._outcomes[self._index[envelope.recipient]] = wire.MultiOutcome(
            to=envelope.recipient, code=code, request=request
        )
        self._missing -= 1
        if self._missing == 0:
            outcomes = [o for o in self._outcomes if o is not None]
            self._on_complete(self._frame, outcomes, self._refused_requests)
