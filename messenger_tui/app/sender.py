"""Sending: drain the outbox to the relay, in order, sealing each row exactly once.

Rows are sealed in batches (one transaction saves the sealed bodies and the advanced ratchet
states together), submitted pipelined, and removed when the relay answers Stored (answers of
one event-loop turn are committed together). A sealed row is resent byte-identical after a
reconnect, so a retry never advances the ratchet or duplicates a message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.rows import contact_model
from messenger_tui.app.session_book import SessionBook
from messenger_tui.core import wire
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto import session as cs
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import CryptoError
from messenger_tui.core.turns import OncePerTurn
from messenger_tui.storage.outbox import OutboxRow
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import NotConnected, RelayRequestError, TransportError

log = logging.getLogger(__name__)

#: Envelopes in flight to the relay at once (the relay answers one connection in order).
MAX_IN_FLIGHT = 512
#: Outbox rows read (and sealed) per pass.
PAGE = 500
#: After the relay refuses an envelope for now (rate limit, full mailbox, fault): pause
#: submitting until every envelope in flight was answered (the relay refuses the ones behind
#: the refused one: relay/send_order.py) and at least this long, then resend from the oldest
#: unsent row, so the conversation stays in order.
RETRY_AFTER_S = 1.0


def prekey_bundle(frame: wire.Bundle) -> pk.PrekeyBundle:
    """The crypto layer's view of a Bundle frame (initiate_session verifies its signature)."""
    return pk.PrekeyBundle(
        identity=frame.identity,
        spk_id=frame.spk_id,
        spk=frame.spk,
        spk_sig=frame.spk_sig,
        opk_id=frame.opk_id,
        opk=frame.opk,
    )


class OutboxSender:
    """Call :meth:`wake` after queueing; :meth:`reset` when a connection starts or ends."""

    def __init__(
        self,
        store: Store,
        identity: IdentityKeyPair,
        client: RelayClient,
        directory: ContactDirectory,
        now_ms: Callable[[], int],
        emit: Callable[[ev.Event], None],
        outbox_changed: Callable[[], None],
    ) -> None:
        self._store = store
        self._identity = identity
        self._client = client
        self._directory = directory
        self._now_ms = now_ms
        self._emit = emit
        self._outbox_changed = outbox_changed
        self._wakeup = asyncio.Event()
        self._submitted: set[int] = set()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._bundle_errors: dict[bytes, str] = {}
        self._stored: list[OutboxRow] = []
        self._stored_soon = OncePerTurn(self._flush_stored, asyncio.get_running_loop)
        self._paused_until = 0.0
        #: Envelopes submitted and not answered yet.
        self._outstanding = 0
        #: A refusal came; no submitting until every envelope in flight was answered.
        self._refused = False

    def wake(self) -> None:
        self._wakeup.set()

    def reset(self) -> None:
        """A new connection: everything not yet Stored is submitted again."""
        self._submitted.clear()
        self._refused = False  # the old connection's envelopes all fail (NotConnected)

    def bundle_problem(self, identity: bytes) -> str | None:
        return self._bundle_errors.get(identity)

    async def run(self) -> None:
        """Drain whenever woken and connected; runs until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._client.connected:
                continue
            try:
                await self._drain()
            except (NotConnected, TransportError):
                continue  # the next connection wakes us again
            except Exception:
                log.exception("outbox drain failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                self._wakeup.set()

    def _paused(self) -> bool:
        return self._refused or asyncio.get_running_loop().time() < self._paused_until

    async def _drain(self) -> None:
        after = 0
        stalled: set[bytes] = set()  # recipients whose keys we could not get this pass
        access: dict[bytes, bytes | None] = {}  # recipient -> its delivery secret, this pass
        while self._client.connected and not self._paused():
            page = self._store.outbox.pending(after_seq=after, limit=PAGE)
            if not page:
                return
            after = page[-1].seq
            rows = [
                r
                for r in page
                if r.seq not in self._submitted
                and r.recipient not in stalled
                and self._may_send_to(r.recipient)
            ]
            for recipient in dict.fromkeys(r.recipient for r in rows if r.body is None):
                if self._store.sessions.active(recipient) is None and not await self._start_session(
                    recipient
                ):
                    stalled.add(recipient)
            bodies = self._seal([r for r in rows if r.recipient not in stalled])
            for row in rows:
                body = bodies.get(row.seq)
                if body is None or row.seq in self._submitted:
                    continue
                await self._in_flight.acquire()
                if self._paused():
                    self._in_flight.release()
                    return
                if row.recipient not in access:
                    access[row.recipient] = self._store.contacts.delivery_access(row.recipient)
                try:
                    future = self._client.submit_envelope(
                        row.envelope_id, row.recipient, body, access[row.recipient]
                    )
                except BaseException:
                    self._in_flight.release()
                    raise
                self._submitted.add(row.seq)
                self._outstanding += 1
                future.add_done_callback(functools.partial(self._on_stored, row))

    def _may_send_to(self, recipient: bytes) -> bool:
        row = self._directory.by_identity(recipient)
        return row is None or not (row.key_changed or row.blocked)

    async def ensure_session(self, recipient: bytes) -> bool:
        """A session to seal ephemeral frames with (starting one from the recipient's prekey
        bundle when there is none); False, with the reason in :meth:`bundle_problem`, when
        none can be started."""
        if self._store.sessions.active(recipient) is not None:
            return True
        return await self._start_session(recipient)

    async def _start_session(self, recipient: bytes) -> bool:
        """Fetch the recipient's prekey bundle and start a session (X3DH)."""
        try:
            bundle = await self._client.fetch_bundle(recipient)
        except RelayRequestError as exc:
            self._bundle_errors[recipient] = (
                "they have not published keys on this relay yet (have they run "
                "`messenger-tui init` with this relay and connected once?)"
                if exc.code == wire.ErrorCode.NOT_FOUND
                else str(exc)
            )
            return False
        if self._store.sessions.active(recipient) is not None:
            return True  # their first message started one while we waited
        try:
            session = cs.initiate_session(self._identity, prekey_bundle(bundle))
        except CryptoError as exc:
            self._bundle_errors[recipient] = f"their published keys are invalid: {exc}"
            return False
        with self._store.db.transaction():
            book = SessionBook(self._store.sessions, self._now_ms())
            book.put(recipient, session)
            book.flush()
        self._bundle_errors.pop(recipient, None)
        return True

    def _seal(self, rows: list[OutboxRow]) -> dict[int, bytes]:
        """Bodies for ``rows``, sealing the unsealed ones in one transaction."""
        bodies: dict[int, bytes] = {}
        with self._store.db.transaction():
            book = SessionBook(self._store.sessions, self._now_ms())
            for row in rows:
                if row.body is not None:
                    bodies[row.seq] = row.body
                    continue
                session = book.active(row.recipient)
                if session is None:
                    continue
                new, body = cs.encrypt(session, row.payload)
                if not self._store.outbox.seal(row.seq, body):
                    continue  # the row went away (contact deleted) while we awaited
                book.put(row.recipient, new)
                bodies[row.seq] = body
            book.flush()
        return bodies

    def seal_ephemeral(self, recipient: bytes, plaintext: bytes) -> bytes | None:
        """Seal one ephemeral payload (typing) with the active session, or None if none."""
        with self._store.db.transaction():
            book = SessionBook(self._store.sessions, self._now_ms())
            session = book.active(recipient)
            if session is None:
                return None
            new, body = cs.encrypt(session, plaintext)
            book.put(recipient, new)
            book.flush()
        return body

    def _on_stored(self, row: OutboxRow, future: asyncio.Future[wire.Stored]) -> None:
        self._in_flight.release()
        self._outstanding -= 1
        try:
            self._answered(row, future)
        finally:
            if self._refused and self._outstanding <= 0:
                # Every envelope behind the refused one was answered: resend in order after
                # the pause.
                self._refused = False
                loop = asyncio.get_running_loop()
                loop.call_later(max(0.0, self._paused_until - loop.time()), self._wakeup.set)

    def _answered(self, row: OutboxRow, future: asyncio.Future[wire.Stored]) -> None:
        if future.cancelled():
            self._submitted.discard(row.seq)
            return
        exc = future.exception()
        if exc is None:
            self._stored.append(row)
            self._stored_soon.request()
            return
        self._submitted.discard(row.seq)
        if isinstance(exc, RelayRequestError) and exc.code == wire.ErrorCode.TOO_LARGE:
            self._fail(row, str(exc))
        elif isinstance(exc, RelayRequestError) and not self._refused:
            # Rate limited, mailbox full, relay fault: stop submitting (the relay refuses what
            # is already in flight behind this one too) and, once all of it was answered and
            # the pause is over, resend from the oldest unsent row.
            self._refused = True
            self._paused_until = asyncio.get_running_loop().time() + RETRY_AFTER_S

    def _flush_stored(self) -> None:
        """Commit the Stored answers of this event-loop turn together."""
        rows, self._stored = self._stored, []
        events: list[ev.Event] = []
        with self._store.db.transaction():
            for row in rows:
                self._store.outbox.remove(row.seq)
                if row.message_row is None:
                    continue
                if self._store.messages.advance_outgoing_row(row.message_row, "sent"):
                    contact = self._directory.by_identity(row.recipient)
                    if contact is not None:
                        events.append(
                            ev.MessageStateChanged(contact_model(contact), row.message_row, "sent")
                        )
        for row in rows:
            self._submitted.discard(row.seq)
        for event in events:
            self._emit(event)
        self._outbox_changed()

    def _fail(self, row: OutboxRow, reason: str) -> None:
        with self._store.db.transaction():
            self._store.outbox.remove(row.seq)
            if row.message_row is not None:
                self._store.messages.set_state(row.message_row, "error")
        log.warning("relay refused an envelope: %s", reason)
