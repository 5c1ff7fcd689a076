"""The relay's storage interface: mailboxes and the prekey directory.

Domain code (``mailboxes``, ``delivery``, ``prekey_directory``) talks only to these
:class:`typing.Protocol` classes, so another backend (Redis for several relay nodes) can slot
in. Every backend must keep the semantics written on each method; the SQLite backend in
:mod:`messenger_tui.relay.sqlite_store` is the reference, and ``tests/relay`` runs against it.
All methods are ``async`` so a networked backend fits; callers must ``await`` them from the
event loop and must call :meth:`RelayStore.close` before exiting.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from messenger_tui.relay.quotas import MailboxQuota


class StoreUnavailable(Exception):
    """A networked backend cannot be reached or refused the operation (Redis down, out of
    memory); ``str(exc)`` says why in one line. Nothing of a failed write is reported
    stored; callers answer with an error (the client retries) and the backend reconnects
    on the next call."""


class SharedUpload:
    """Identity token of one multi-recipient upload (a ``SendMulti``): the envelopes of one
    write that carry the same token share one stored body. Compared by identity only."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class NewEnvelope:
    """An envelope a sender asks the relay to store for ``recipient``. ``access`` is the
    delivery secret the sender presented (None: a message request, see
    :mod:`messenger_tui.core.delivery_access`).

    A multi-recipient envelope has ``upload`` set (the same object for every recipient of
    one upload, all with the same ``body``) and ``header`` its recipient's own header
    (bytes, possibly empty); a 1:1 envelope has both None."""

    recipient: bytes
    sender: bytes
    msg_id: bytes
    body: bytes
    access: bytes | None = None
    header: bytes | None = None
    upload: SharedUpload | None = None
    #: Reached the recipient through its group send grant (a short ``SendMulti``): counts
    #: as a contact's envelope, as a matching ``access`` would.
    granted: bool = False

    @property
    def size(self) -> int:
        """Bytes this envelope costs its recipient's quota (the shared body counts fully
        for each recipient, as each would pay for it alone)."""
        return len(self.body) + (0 if self.header is None else len(self.header))


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """An envelope as held in a mailbox. ``seq`` is its position: strictly increasing in
    insertion order within its recipient's mailbox (the SQLite store: across the whole
    store) and never reused while the relay runs (delivery cursors live only as long as a
    connection), so "after cursor" is exact."""

    seq: int
    recipient: bytes
    sender: bytes
    msg_id: bytes
    body: bytes
    stored_at_ms: int
    #: None for a 1:1 envelope; this recipient's header for a multi-recipient one, whose
    #: ``body`` is then the shared body.
    header: bytes | None = None


class InsertOutcome(enum.Enum):
    """What an insert did."""

    STORED = "stored"  # new row, committed
    DUPLICATE = "duplicate"  # (recipient, sender, msg_id) was already there; kept as it was
    MAILBOX_FULL = "mailbox_full"  # refused: the recipient's contact quota is at its bound
    REQUESTS_FULL = "requests_full"  # refused: the recipient's message-request quota is full
    #: refused: this sender's message requests to this recipient are at their bound
    SENDER_REQUESTS_FULL = "sender_requests_full"


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Result of one insert. ``envelope`` is the stored row for STORED and DUPLICATE (the
    original row for a duplicate), ``None`` for a refusal. ``request`` tells whether the
    envelope went (or would have gone) to the message-request quota."""

    outcome: InsertOutcome
    envelope: StoredEnvelope | None
    request: bool = False


@dataclass(frozen=True, slots=True)
class AckRequest:
    """Delete these message ids from ``recipient``'s own mailbox (and nobody else's)."""

    recipient: bytes
    msg_ids: Sequence[bytes]


@dataclass(frozen=True, slots=True)
class StoredSignedPrekey:
    """An identity's current signed prekey, as published (the signature already verified)."""

    spk_id: int
    spk: bytes
    spk_sig: bytes


@dataclass(frozen=True, slots=True)
class StoredOneTimePrekey:
    """One X25519 one-time prekey."""

    opk_id: int
    key: bytes


@dataclass(frozen=True, slots=True)
class StoredPrekeyBundle:
    """What a fetch hands out: the signed prekey and at most one one-time prekey."""

    identity: bytes
    signed: StoredSignedPrekey
    one_time: StoredOneTimePrekey | None


@dataclass(frozen=True, slots=True)
class PrekeyStatus:
    """What the directory holds for one identity."""

    one_time_remaining: int
    signed_prekey_id: int | None


class MailboxStore(Protocol):
    """Per-recipient queues of envelopes."""

    async def write(
        self,
        inserts: Sequence[NewEnvelope],
        acks: Sequence[AckRequest],
        *,
        now_ms: int,
        ttl_ms: int,
        mailbox_limit: int,
        quota: MailboxQuota | None = None,
    ) -> list[InsertResult]:
        """Apply inserts and acks in ONE durable transaction; return one result per insert.

        Inserts are idempotent by (recipient, sender, msg_id): a duplicate keeps its original
        position, body and time and reports DUPLICATE (even when the mailbox is full); the
        lookup must not read other mailboxes' rows or any body but the duplicate's. A new
        envelope is a contact envelope when its ``access`` matches the recipient's delivery
        verifier, else a request; it must fit its class's budget in ``quota``
        (:func:`messenger_tui.relay.quotas.admit`; ``mailbox_limit`` replaces
        ``quota.contact_count``; None: the default quota). It gets ``seq`` greater than every
        seq ever assigned and expires at ``now_ms + ttl_ms``. An ack deletes only rows of its
        own ``recipient``.

        Multi-recipient envelopes (``upload`` set) are decided per recipient like the others
        (idempotency, quotas with :attr:`NewEnvelope.size`), but the envelopes of one
        ``upload`` that are stored hold ONE copy of the body between them: each is a
        reference to it plus its own header. An ack deletes the reference, and the body goes
        with its last reference (or at its TTL, the same as its references').

        When this returns, every result is durable (survives a process kill); on an
        exception nothing of the batch was applied (a networked backend with no transaction
        across recipients, Redis Cluster, may have applied some recipients' part: the
        sender's resend of those then reports DUPLICATE).
        """
        ...

    async def fetch_after(
        self, recipient: bytes, after_seq: int, limit: int, *, now_ms: int
    ) -> list[StoredEnvelope]:
        """Up to ``limit`` unexpired envelopes of ``recipient`` with seq > ``after_seq``,
        oldest first."""
        ...

    async def count(self, recipient: bytes, *, now_ms: int) -> int:
        """Unexpired envelopes waiting in ``recipient``'s mailbox."""
        ...

    async def purge_expired(self, *, now_ms: int) -> int:
        """Delete envelopes whose expiry is at or before ``now_ms``; return how many.

        A backend may leave some expired rows for a later purge (the SQLite one stops at the
        first unexpired envelope in storage order); expired rows are never fetched or counted.
        """
        ...


class PrekeyStore(Protocol):
    """The prekey directory."""

    async def put_prekeys(
        self,
        identity: bytes,
        signed: StoredSignedPrekey,
        one_time: Sequence[StoredOneTimePrekey],
        *,
        max_one_time: int,
        now_ms: int,
    ) -> int:
        """Replace ``identity``'s signed prekey and add one-time prekeys, keeping at most
        ``max_one_time`` (extra ones are dropped, in the order given; an id already held is
        kept as it was). Atomic. Return the one-time prekeys now held."""
        ...

    async def take_bundle(
        self, identity: bytes, *, one_time: bool = True
    ) -> StoredPrekeyBundle | None:
        """Return the bundle with the lowest-id one-time prekey, deleting that prekey in the
        same transaction (so each is handed out exactly once), or without one when none is
        left or ``one_time`` is False (the fetch is over its budget: a signed-prekey-only
        bundle, which X3DH allows). ``None`` when the identity never published a signed
        prekey."""
        ...

    async def prekey_status(self, identity: bytes) -> PrekeyStatus:
        """How many one-time prekeys are held and which signed prekey id."""
        ...


class AccessStore(Protocol):
    """Delivery verifiers and the identities the relay has seen."""

    async def set_delivery_verifier(self, identity: bytes, verifier: bytes, *, now_ms: int) -> None:
        """Register (or rotate to) ``identity``'s delivery verifier; durable on return.
        Envelopes already stored keep their class."""
        ...

    async def identity_known(self, identity: bytes) -> bool:
        """Whether the relay has seen ``identity`` authenticate before."""
        ...

    async def set_group_grants(
        self, identity: bytes, grants: Sequence[tuple[bytes, bytes]], *, now_ms: int
    ) -> None:
        """Replace ``identity``'s group send grants with ``grants`` ((sender, verifier)
        pairs, already checked and bounded by the caller); durable on return."""
        ...

    async def grantees(self, sender: bytes, verifier: bytes) -> list[bytes]:
        """The identities whose current grants hold (``sender``, ``verifier``)."""
        ...

    async def record_identity(self, identity: bytes, *, now_ms: int) -> None:
        """Remember that ``identity`` authenticated (its first sight; idempotent)."""
        ...


class RelayStore(MailboxStore, PrekeyStore, AccessStore, Protocol):
    """A complete backend: open it with the backend's own constructor, ``close()`` it last."""

    async def close(self) -> None:
        """Finish pending work and release the backend; the store is unusable afterwards."""
        ...
