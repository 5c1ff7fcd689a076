"""Sending group messages: the group outbox uploaded once per message (``SendMulti``).

Each row of the group outbox is a group message sealed once with our sender key (its bytes
never change, so a retry is byte-identical and the relay's per-recipient idempotency by
message id makes it harmless) and the recipients the relay has not stored it for yet.

Rules:

1. A recipient is included only once no pairwise outbox row to it queued before the group
   message (``after_outbox_seq``) is waiting: its copy of our sender key, and the membership
   change that made it a member, reach its mailbox first. A recipient with a pairwise row
   stuck (no published keys, blocked) waits; the others are not held up.
2. One ``SendMulti`` per row names every ready recipient; the relay answers each recipient
   (``StoredMulti``). Stored ones are crossed off; refused ones (a full mailbox, a quota)
   stay for the next pass, after :data:`RETRY_AFTER_S`, as after a refusal of the whole
   frame (rate limit).
3. The row's message is ``sent`` once the relay stored it for every recipient; then the
   row goes. A recipient that leaves the group meanwhile is crossed off
   (:meth:`~messenger_tui.storage.groups.Groups.drop_recipient`).
4. While rows wait, the drain runs again every :data:`POLL_S` (the pairwise rows it waits
   for are stored by :class:`~messenger_tui.app.sender.OutboxSender`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.group_book import GroupBook
from messenger_tui.core import wire
from messenger_tui.storage.groups import GroupOutboxRow
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import NotConnected, RelayRequestError, TransportError

log = logging.getLogger(__name__)

#: Pause after the relay refused a whole group message (rate limited, too large, fault).
RETRY_AFTER_S = 1.0
#: How often the drain looks again while rows wait for their pairwise rows.
POLL_S = 0.2
#: Group outbox rows uploaded per pass (each is one frame in flight).
PAGE = 64


class GroupSender:
    def __init__(
        self,
        store: Store,
        client: RelayClient,
        book: GroupBook,
        emit: Callable[[ev.Event], None],
    ) -> None:
        self._store = store
        self._client = client
        self._book = book
        self._emit = emit
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    def waiting(self) -> int:
        return self._store.groups.outbox_count()

    async def run(self) -> None:
        """Drain whenever woken (and every POLL_S while rows wait); runs until cancelled."""
        while True:
            timeout = POLL_S if self.waiting() else None
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if not self._client.connected:
                continue
            try:
                if await self._drain():
                    await asyncio.sleep(RETRY_AFTER_S)  # a recipient was refused for now
            except (NotConnected, TransportError):
                continue
            except RelayRequestError as exc:
                log.warning("relay refused a group message: %s", exc.code)
                await asyncio.sleep(RETRY_AFTER_S)
            except Exception:
                log.exception("group outbox drain failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _drain(self) -> bool:
        """One pass; True if the relay refused some recipient (retry after a pause)."""
        rows = self._store.groups.pending_sends(PAGE)
        futures: list[tuple[GroupOutboxRow, asyncio.Future[wire.StoredMulti]]] = []
        for row in rows:
            ready = [
                identity
                for identity in row.recipients
                if not self._store.groups.pairwise_waiting(identity, row.after_outbox_seq)
            ]
            if not ready:
                continue
            access = self._store.groups.delivery_access(ready)
            recipients = [wire.MultiRecipient(to=to, access=access[to]) for to in ready]
            futures.append((row, self._client.submit_multi(row.envelope_id, row.body, recipients)))
        refused = False
        for row, future in futures:
            answer = await future
            refused = self._stored(row, answer) or refused
        return refused

    def _stored(self, row: GroupOutboxRow, answer: wire.StoredMulti) -> bool:
        stored = [result.to for result in answer.results if result.code is None]
        refused = [result.code for result in answer.results if result.code is not None]
        if refused:
            log.info("group message refused for %d recipients for now", len(refused))
        message = None
        with self._store.db.transaction():
            done = self._store.groups.stored_for(row.seq, stored)
            if (
                done
                and row.message_row is not None
                and self._store.messages.advance_outgoing_row(row.message_row, "sent")
            ):
                message = self._store.groups.message(row.message_row)
        if message is not None:
            group_row = self._store.groups.by_id(message.group_row)
            if group_row is not None:
                self._emit(
                    ev.GroupMessageStateChanged(
                        self._book.model(group_row), self._book.message_model(message)
                    )
                )
        return bool(refused)
