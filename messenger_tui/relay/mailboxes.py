"""Mailboxes: group-committed inserts and acks in front of a :class:`MailboxStore`.

Sessions call :meth:`Mailboxes.submit` for every Send and :meth:`Mailboxes.ack` for every
Ack; neither blocks. Everything submitted since the last transaction (at least everything that
arrived during one event-loop turn, at most ``MAX_BATCH`` envelopes) goes into the next one,
together with the pending acks, so one commit serves many envelopes. After the commit, each
submitter's ``done`` callback runs with the durable result (the session then sends
``Stored``), every newly stored envelope is handed to ``on_stored`` (the server routes it to
the recipient's live delivery pusher), then ``on_batch_end`` runs once.

Start with :meth:`start`, stop with :meth:`stop` (which commits what is pending first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final

from messenger_tui.relay.clock import Clock
from messenger_tui.relay.quotas import MailboxQuota
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    MailboxStore,
    NewEnvelope,
    StoredEnvelope,
    StoreUnavailable,
)

#: Called once per submitted envelope with the committed result, or None if the store failed
#: (nothing was stored; the sender may retry).
InsertDone = Callable[[NewEnvelope, InsertResult | None], None]

MAX_BATCH: Final = 1024

log = logging.getLogger(__name__)


class Mailboxes:
    """Batching front of the mailbox store. See the module docstring."""

    def __init__(
        self,
        store: MailboxStore,
        *,
        clock: Clock,
        ttl_ms: int,
        mailbox_limit: int,
        quota: MailboxQuota | None = None,
        on_stored: Callable[[StoredEnvelope], None],
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._limit = mailbox_limit
        self._quota = quota
        self._on_stored = on_stored
        self._on_batch_end = on_batch_end
        self._inserts: list[NewEnvelope] = []
        self._callbacks: list[InsertDone] = []
        self._acks: dict[bytes, list[bytes]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        #: Totals since start (for logs and benchmarks).
        self.commits = 0
        self.stored = 0
        self.duplicates = 0
        self.refused_full = 0
        self.refused_requests = 0

    def start(self) -> None:
        """Start the committing task (call once, from the event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="relay-mailbox-commits"
            )

    async def stop(self) -> None:
        """Commit everything submitted so far, then stop the committing task."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def flush(self) -> None:
        """Return once everything submitted before this call has been committed."""
        while not self._idle.is_set():
            await self._idle.wait()

    def submit(self, envelope: NewEnvelope, done: InsertDone) -> None:
        """Queue ``envelope`` for the next transaction; ``done`` runs after the commit."""
        self._inserts.append(envelope)
        self._callbacks.append(done)
        self._kick()

    def ack(self, recipient: bytes, msg_ids: Sequence[bytes]) -> None:
        """Queue the deletion of ``msg_ids`` from ``recipient``'s own mailbox (only)."""
        if msg_ids:
            self._acks.setdefault(recipient, []).extend(msg_ids)
            self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._inserts or self._acks:
                await self._commit_one_batch()
            if not self._wake.is_set():
                self._idle.set()

    async def _commit_one_batch(self) -> None:
        cut = MAX_BATCH
        pending = self._inserts
        # Never split one multi-recipient upload: its references share one body row per
        # transaction (so a batch may exceed MAX_BATCH by one upload's recipients).
        while 0 < cut < len(pending) and (
            pending[cut].upload is not None and pending[cut].upload is pending[cut - 1].upload
        ):
            cut += 1
        inserts = pending[:cut]
        callbacks = self._callbacks[:cut]
        del self._inserts[:cut]
        del self._callbacks[:cut]
        acks = [AckRequest(recipient, ids) for recipient, ids in self._acks.items()]
        self._acks = {}
        try:
            results: list[InsertResult] | None = await self.store.write(
                inserts,
                acks,
                now_ms=self._clock(),
                ttl_ms=self._ttl_ms,
                mailbox_limit=self._limit,
                quota=self._quota,
            )
        except StoreUnavailable as exc:  # Redis down: one line; the senders get an error
            log.error(
                "mailbox commit failed (%d envelopes refused, %d acks dropped): %s",
                len(inserts),
                sum(len(a.msg_ids) for a in acks),
                exc,
            )
            results = None
        except Exception:
            log.exception(
                "mailbox commit failed (%d envelopes refused, %d acks dropped)",
                len(inserts),
                sum(len(a.msg_ids) for a in acks),
            )
            results = None
        self.commits += 1
        for index, (envelope, done) in enumerate(zip(inserts, callbacks)):
            result = None if results is None else results[index]
            try:
                done(envelope, result)
            except Exception:
                log.exception("insert callback failed")
            if result is None:
                continue
            if result.outcome is InsertOutcome.STORED:
                self.stored += 1
                assert result.envelope is not None
                try:
                    self._on_stored(result.envelope)
                except Exception:
                    log.exception("routing a stored envelope failed")
            elif result.outcome is InsertOutcome.DUPLICATE:
                self.duplicates += 1
            elif result.outcome is InsertOutcome.MAILBOX_FULL:
                self.refused_full += 1
            else:
                self.refused_requests += 1
        if self._on_batch_end is not None:
            try:
                self._on_batch_end()
            except Exception:
                log.exception("finishing a commit batch failed")
