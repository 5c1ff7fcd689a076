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
5. The upload is in the short fan-out form when we hold a sender key in the group: our send
   credential and an 8-byte reference per recipient (core/groups/send_credential.py). The
   recipients the relay answers ``not_granted`` for (their grant of our current key is not
   registered yet, or they granted none) are sent the same message at once in the long
   form (identity and delivery secret); nothing waits on a grant.
6. Each wake then brings our own grants up to date (:class:`~.group_grants.GroupGrants`),
   and an idle sender wakes every :data:`GRANTS_POLL_S` to do so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from messenger_tui.app import events as ev
from messenger_tui.app.group_book import GroupBook
from messenger_tui.app.group_grants import GroupGrants, sending_credential
from messenger_tui.core import wire
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.storage.groups import GroupOutboxRow
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import NotConnected, RelayRequestError, TransportError

log = logging.getLogger(__name__)

#: Pause after the relay refused a whole group message (rate limited, too large, fault).
RETRY_AFTER_S = 1.0
#: How often the drain looks again while rows wait for their pairwise rows.
POLL_S = 0.2
#: How often an idle sender looks whether our group send grants changed (a sender key came
#: or went; the check is an integer comparison until they did).
GRANTS_POLL_S = 1.0
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
        self.grants = GroupGrants(store, client)
        #: group row -> (its sending key blob, our send credential of it)
        self._credentials: dict[int, tuple[bytes, bytes]] = {}
        self._short_form = True  # False after a relay refused the short form
        #: Recipients named by reference (short form) and by identity (long form) so far.
        self.named_short = 0
        self.named_long = 0

    def wake(self) -> None:
        self._wakeup.set()

    def waiting(self) -> int:
        return self._store.groups.outbox_count()

    async def run(self) -> None:
        """Drain whenever woken (and every POLL_S while rows wait); runs until cancelled."""
        while True:
            timeout = POLL_S if self.waiting() else GRANTS_POLL_S
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if not self._client.connected:
                continue
            try:
                refused = await self._drain()
                await self.grants.sync()  # after the upload: it must not delay a message
                if refused:
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
        futures: list[tuple[GroupOutboxRow, dict[bytes, bytes], asyncio.Future[wire.StoredMulti]]]
        futures = []
        for row in rows:
            ready = [
                identity
                for identity in row.recipients
                if not self._store.groups.pairwise_waiting(identity, row.after_outbox_seq)
            ]
            if not ready:
                continue
            credential = self.credential(row.group_row) if self._short_form else None
            if credential is None:
                futures.append((row, {}, self._submit_long(row, ready)))
            else:
                by_ref = {sc.recipient_ref(credential, to): to for to in ready}
                refs = b"".join(by_ref)
                self.named_short += len(by_ref)
                short = self._client.submit_short(row.envelope_id, row.body, credential, refs)
                futures.append((row, by_ref, short))
        refused = False
        for row, by_ref, future in futures:
            if by_ref:
                try:
                    answer = await self._complete_short(row, by_ref, await future)
                except RelayRequestError as exc:
                    if exc.code != wire.ErrorCode.BAD_REQUEST:
                        raise
                    # A relay without the short form: the long form from now on.
                    log.warning("relay refused a short group send; using the long form")
                    self._short_form = False
                    answer = await self._submit_long(row, list(by_ref.values()))
            else:
                answer = await future
            refused = self._stored(row, answer) or refused
        return refused

    def credential(self, group_row: int) -> bytes | None:
        """Our send credential in this group (None: no sender key yet: the long form)."""
        row = self._store.groups.by_id(group_row)
        if row is None or row.sending_key is None:
            return None
        cached = self._credentials.get(group_row)
        if cached is not None and cached[0] == row.sending_key:
            return cached[1]
        sending = self._book.sending_key(row)
        if sending is None:
            return None
        credential = sending_credential(sending)
        self._credentials[group_row] = (row.sending_key, credential)
        return credential

    def _submit_long(
        self, row: GroupOutboxRow, recipients: list[bytes]
    ) -> asyncio.Future[wire.StoredMulti]:
        self.named_long += len(recipients)
        access = self._store.groups.delivery_access(recipients)
        to = [wire.MultiRecipient(to=identity, access=access[identity]) for identity in recipients]
        return self._client.submit_multi(row.envelope_id, row.body, to)

    async def _complete_short(
        self, row: GroupOutboxRow, by_ref: dict[bytes, bytes], answer: wire.StoredMulti
    ) -> wire.StoredMulti:
        """A short send's answer by identity; the ``not_granted`` recipients sent in the long
        form now, their outcomes merged in."""
        results: list[wire.MultiOutcome] = []
        ungranted: list[bytes] = []
        for outcome in answer.results:
            identity = by_ref.get(outcome.to)
            if identity is None:
                continue
            if outcome.code == wire.ErrorCode.NOT_GRANTED:
                ungranted.append(identity)
            else:
                results.append(msgspec.structs.replace(outcome, to=identity))
        if ungranted:
            log.debug("short group send: %d recipients in the long form", len(ungranted))
            long = await self._submit_long(row, ungranted)
            results.extend(long.results)
        return wire.StoredMulti(id=answer.id, results=results)

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
