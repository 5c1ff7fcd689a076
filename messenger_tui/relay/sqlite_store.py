"""SQLite backend of the relay store (the embedded default).

One database file (``relay.db`` in the data directory) in WAL mode. Queries run inline on the
event-loop thread: with group commit a transaction of a few hundred envelopes takes a few
milliseconds, and running it inline measured clearly faster than handing every call to a
worker thread (thread hops and GIL hand-offs cost more than they save). The slow part of WAL
mode, checkpointing the WAL into the database with its fsyncs, runs on a separate thread with
its own connection (:class:`WalCheckpointer`), so the loop never waits for the disk. Everything
the loop does is serialized, so a fetch issued after a write sees that write.

Durability: ``synchronous=NORMAL`` (the default here) makes a committed transaction survive a
killed relay process (the WAL is in the OS page cache) but not a power loss or kernel crash;
``synchronous=FULL`` (``durable_fsync=True``) also fsyncs the WAL on every commit.

Open with ``await SqliteStore.open(path)``, close with ``await store.close()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from messenger_tui.core.delivery_access import access_matches
from messenger_tui.relay import fanout_store, group_grants, sqlite_prekeys
from messenger_tui.relay.fanout_store import SharedBodyWriter
from messenger_tui.relay.quotas import MailboxQuota, MailboxUsage, admit
from messenger_tui.relay.sqlite_checkpointer import CHECKPOINT_INTERVAL_S, WalCheckpointer
from messenger_tui.relay.sqlite_schema import (
    SCHEMA,
    SCHEMA_VERSION,
    UPGRADE_1_TO_2,
    UPGRADE_2_TO_3,
)
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    NewEnvelope,
    PrekeyStatus,
    StoredEnvelope,
    StoredOneTimePrekey,
    StoredPrekeyBundle,
    StoredSignedPrekey,
)

DB_FILE: Final = "relay.db"
_MAX_CACHED_COUNTS: Final = 100_000
_PURGE_CHUNK: Final = 2_000
_MAX_CACHED_VERIFIERS: Final = 100_000

_INSERT: Final = (
    "INSERT INTO envelopes (seq, recipient, sender, msg_id, request, size, stored_at_ms, "
    "expires_at_ms, body_id, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Keys (or acked ids) looked up per statement: 3 parameters a key, under SQLite's limit.
_LOOKUP_CHUNK: Final = 256

log = logging.getLogger(__name__)


class SqliteStore:
    """:class:`~messenger_tui.relay.store.RelayStore` on one SQLite file. See module doc."""

    def __init__(self, path: Path, *, durable_fsync: bool = False) -> None:
        """Do not call directly: use :meth:`open`, which also creates the schema."""
        self.path = path
        self._durable_fsync = durable_fsync
        self._db: sqlite3.Connection | None = None
        self._checkpointer: WalCheckpointer | None = None
        # Next seq to assign: max(seq) + 1 at open, then only increasing. A seq freed by an
        # ack is never reused while this process runs, and delivery cursors live only as long
        # as a connection, so "after cursor" stays exact.
        self._next_seq = 1
        # recipient -> what its mailbox holds by quota class (expired-but-unpurged included);
        # exact because this store is the only writer (the data directory is locked).
        self._usage: dict[bytes, MailboxUsage] = {}
        # recipient -> its delivery verifier (None: registered none), loaded on first use.
        self._verifiers: dict[bytes, bytes | None] = {}

    @classmethod
    async def open(cls, path: Path, *, durable_fsync: bool = False) -> SqliteStore:
        """Open (creating if needed) the database at ``path``."""
        store = cls(path, durable_fsync=durable_fsync)
        store._open_sync()
        store._checkpointer = WalCheckpointer(path, CHECKPOINT_INTERVAL_S)
        store._checkpointer.start()
        return store

    async def close(self) -> None:
        """Checkpoint and close the database. Idempotent."""
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        db, self._db = self._db, None
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the relay store is closed")
        return self._db

    # ------------------------------------------------------------------ synchronous core

    def _open_sync(self) -> None:
        if not self.path.exists():  # 0600 from the start; SQLite gives -wal/-shm the same mode
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA wal_autocheckpoint=20000")  # backstop; see WalCheckpointer
            db.execute("PRAGMA journal_size_limit=67108864")
            db.execute(f"PRAGMA synchronous={'FULL' if self._durable_fsync else 'NORMAL'}")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA temp_store=MEMORY")
            db.execute("PRAGMA cache_size=-16000")  # 16 MB page cache
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {version}; this relay knows up to "
                    f"{SCHEMA_VERSION}: run a newer relay"
                )
            if version in (1, 2):
                db.executescript(
                    "BEGIN IMMEDIATE;\n"
                    + ";\n".join(UPGRADE_1_TO_2 if version == 1 else UPGRADE_2_TO_3)
                    + f";\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
                )
            else:
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self._db = db
        self._next_seq = self._max_seq() + 1

    def _held(self, recipient: bytes) -> MailboxUsage:
        usage = self._usage.get(recipient)
        if usage is None:
            usage = MailboxUsage()
            for sender, request, count, size in self._conn.execute(
                "SELECT sender, request, COUNT(*), SUM(size) FROM envelopes "
                "INDEXED BY envelopes_by_recipient WHERE recipient=? GROUP BY sender, request",
                (recipient,),
            ):
                usage.add(request=bool(request), sender=sender, size=int(size), count=int(count))
            self._usage[recipient] = usage
        return usage

    def _verifier(self, recipient: bytes) -> bytes | None:
        if recipient in self._verifiers:
            return self._verifiers[recipient]
        if len(self._verifiers) >= _MAX_CACHED_VERIFIERS:
            self._verifiers.clear()
        row = self._conn.execute(
            "SELECT verifier FROM delivery_verifiers WHERE identity=?", (recipient,)
        ).fetchone()
        verifier = None if row is None else bytes(row[0])
        self._verifiers[recipient] = verifier
        return verifier

    def _write_sync(
        self,
        inserts: Sequence[NewEnvelope],
        acks: Sequence[AckRequest],
        now_ms: int,
        ttl_ms: int,
        quota: MailboxQuota,
    ) -> list[InsertResult]:
        db = self._conn
        if len(self._usage) >= _MAX_CACHED_COUNTS:
            self._usage.clear()
        db.execute("BEGIN IMMEDIATE")
        try:
            results = self._insert_all(inserts, now_ms, now_ms + ttl_ms, quota)
            released: list[int | None] = []
            for ack in acks:
                usage = self._usage.get(ack.recipient)
                ids = list(ack.msg_ids)
                for start in range(0, len(ids), _LOOKUP_CHUNK):
                    chunk = ids[start : start + _LOOKUP_CHUNK]
                    for sender, request, size, body_id in db.execute(
                        "DELETE FROM envelopes INDEXED BY envelopes_by_key "
                        f"WHERE recipient=? AND msg_id IN ({','.join('?' * len(chunk))}) "
                        "RETURNING sender, request, size, body_id",
                        (ack.recipient, *chunk),
                    ).fetchall():
                        released.append(body_id)
                        if usage is not None:
                            usage.remove(request=bool(request), sender=sender, size=int(size))
            fanout_store.release(db, released)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._usage.clear()
            self._next_seq = self._max_seq() + 1
            raise
        return results

    def _find_keys(self, inserts: Sequence[NewEnvelope]) -> dict[tuple[bytes, bytes, bytes], int]:
        """The seq of every envelope already stored under an insert's exact (recipient,
        msg_id, sender) key: a few statements per batch, each a join of the keys (a VALUES
        list) against the key index, one indexed search per key; no table row, no body and
        no other mailbox's rows are read."""
        found: dict[tuple[bytes, bytes, bytes], int] = {}
        for start in range(0, len(inserts), _LOOKUP_CHUNK):
            chunk = inserts[start : start + _LOOKUP_CHUNK]
            params: list[bytes] = []
            for env in chunk:
                params += (env.recipient, env.msg_id, env.sender)
            rows = self._conn.execute(
                "SELECT e.seq, e.recipient, e.msg_id, e.sender "
                f"FROM (VALUES {','.join(['(?,?,?)'] * len(chunk))}) AS k "
                "CROSS JOIN envelopes AS e INDEXED BY envelopes_by_key "
                "ON e.recipient = k.column1 AND e.msg_id = k.column2 AND e.sender = k.column3",
                params,
            ).fetchall()
            for seq, recipient, msg_id, sender in rows:
                found[(bytes(recipient), bytes(msg_id), bytes(sender))] = int(seq)
        return found

    def _insert_all(
        self, inserts: Sequence[NewEnvelope], now_ms: int, expires: int, quota: MailboxQuota
    ) -> list[InsertResult]:
        """Insert inside the caller's transaction; one result per envelope.

        Idempotency is checked here rather than by a UNIQUE constraint (this store is the
        database's only writer, with one writing thread): one lookup of the exact
        (recipient, msg_id, sender) key in its index per envelope, which reads neither the
        table nor any body, so rows other senders stored under the same id cost nothing.
        Only a duplicate's own row is read (the contract returns the original).
        """
        db = self._conn
        batch: dict[tuple[bytes, bytes, bytes], StoredEnvelope] = {}
        results: list[InsertResult] = []
        new_rows: list[tuple[int, bytes, bytes, bytes, int, int, int, int, int | None, bytes]] = []
        bodies = SharedBodyWriter(db, expires)
        stored_before = self._find_keys(inserts)
        for env in inserts:
            key = (env.recipient, env.msg_id, env.sender)
            verifier = self._verifier(env.recipient)
            # A recipient that registered no verifier (an older client) has one quota: all
            # of its envelopes count as a contact's, as before delivery access existed.
            request = (
                not env.granted
                and verifier is not None
                and not access_matches(verifier, env.access)
            )
            old = batch.get(key)
            if old is None and key in stored_before:
                old = self._row_by_seq(stored_before[key])
            if old is not None:
                results.append(InsertResult(InsertOutcome.DUPLICATE, old, request))
                continue
            usage = self._held(env.recipient)
            size = env.size
            outcome = admit(usage, quota, request=request, sender=env.sender, size=size)
            if outcome is not InsertOutcome.STORED:
                results.append(InsertResult(outcome, None, request))
                continue
            seq = self._next_seq
            self._next_seq += 1
            usage.add(request=request, sender=env.sender, size=size)
            new = StoredEnvelope(
                seq, env.recipient, env.sender, env.msg_id, env.body, now_ms, env.header
            )
            batch[key] = new
            row = (seq, env.recipient, env.sender, env.msg_id, int(request), size, now_ms, expires)
            if env.upload is None:
                new_rows.append((*row, None, env.body))
            else:  # a reference to the upload's one body row, holding only its header
                body_id = bodies.reference(env.upload, env.body)
                new_rows.append((*row, body_id, env.header or b""))
            results.append(InsertResult(InsertOutcome.STORED, new, request))
        if new_rows:
            db.executemany(_INSERT, new_rows)
        bodies.finish()
        return results

    def _row_by_seq(self, seq: int) -> StoredEnvelope:
        row = self._conn.execute(fanout_store.SELECT_ENVELOPE + "WHERE e.seq=?", (seq,)).fetchone()
        return _envelope(row)

    def _max_seq(self) -> int:
        (max_seq,) = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM envelopes").fetchone()
        return int(max_seq)

    def _fetch_after_sync(
        self, recipient: bytes, after_seq: int, limit: int, now_ms: int
    ) -> list[StoredEnvelope]:
        rows = self._conn.execute(
            fanout_store.SELECT_ENVELOPE
            + "WHERE e.recipient=? AND e.seq>? AND e.expires_at_ms>? ORDER BY e.seq LIMIT ?",
            (recipient, after_seq, now_ms, limit),
        ).fetchall()
        # A reference whose body is gone is expired (bodies go at their TTL): skip it.
        return [_envelope(r) for r in rows if r[6] is None or r[7] is not None]

    def _count_sync(self, recipient: bytes, now_ms: int) -> int:
        (n,) = self._conn.execute(
            "SELECT COUNT(*) FROM envelopes WHERE recipient=? AND expires_at_ms>?",
            (recipient, now_ms),
        ).fetchone()
        return int(n)

    def _purge_chunk_sync(self, now_ms: int, after: int) -> tuple[int, int | None]:
        """Delete the expired rows among the next chunk after seq ``after``; return how many
        and where to continue (None: reached an unexpired row or the end)."""
        db = self._conn
        rows = db.execute(
            "SELECT seq, expires_at_ms, body_id FROM envelopes WHERE seq>? ORDER BY seq LIMIT ?",
            (after, _PURGE_CHUNK),
        ).fetchall()
        expired = [(seq,) for seq, expires, _ in rows if expires <= now_ms]
        if expired:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM envelopes WHERE seq=?", expired)
                fanout_store.release(db, [b for _, expires, b in rows if expires <= now_ms])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                self._usage.clear()
        if len(expired) < len(rows) or len(rows) < _PURGE_CHUNK:
            return len(expired), None
        return len(expired), int(rows[-1][0])

    # ------------------------------------------------------------------ async interface

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
        """See :meth:`messenger_tui.relay.store.MailboxStore.write`."""
        limits = replace(quota or MailboxQuota(), contact_count=mailbox_limit)
        return self._write_sync(inserts, acks, now_ms, ttl_ms, limits)

    async def fetch_after(
        self, recipient: bytes, after_seq: int, limit: int, *, now_ms: int
    ) -> list[StoredEnvelope]:
        """See :meth:`messenger_tui.relay.store.MailboxStore.fetch_after`."""
        return self._fetch_after_sync(recipient, after_seq, limit, now_ms)

    async def count(self, recipient: bytes, *, now_ms: int) -> int:
        """See :meth:`messenger_tui.relay.store.MailboxStore.count`."""
        return self._count_sync(recipient, now_ms)

    async def purge_expired(self, *, now_ms: int) -> int:
        """See :meth:`messenger_tui.relay.store.MailboxStore.purge_expired`.

        Every envelope gets the same TTL, so expiry follows seq order (up to wall-clock steps
        backwards): walk from the oldest row in chunks, yielding to the event loop between
        them, and stop at the first chunk holding an unexpired row. No expiry index is needed
        (one less index write per insert); a row left behind by a clock step or a shortened
        TTL is still never delivered (fetches filter on expiry) and goes with a later purge.
        """
        purged = 0
        after: int | None = 0
        while after is not None:
            count, after = self._purge_chunk_sync(now_ms, after)
            purged += count
            await asyncio.sleep(0)
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            fanout_store.purge_expired_bodies(db, now_ms)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return purged

    async def put_prekeys(
        self,
        identity: bytes,
        signed: StoredSignedPrekey,
        one_time: Sequence[StoredOneTimePrekey],
        *,
        max_one_time: int,
        now_ms: int,
    ) -> int:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.put_prekeys`."""
        return sqlite_prekeys.put_prekeys(
            self._conn, identity, signed, one_time, max_one_time, now_ms
        )

    async def take_bundle(
        self, identity: bytes, *, one_time: bool = True
    ) -> StoredPrekeyBundle | None:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.take_bundle`."""
        return sqlite_prekeys.take_bundle(self._conn, identity, one_time)

    async def prekey_status(self, identity: bytes) -> PrekeyStatus:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.prekey_status`."""
        return sqlite_prekeys.prekey_status(self._conn, identity)

    async def set_delivery_verifier(self, identity: bytes, verifier: bytes, *, now_ms: int) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.set_delivery_verifier`."""
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO delivery_verifiers (identity, verifier, updated_at_ms) "
                "VALUES (?, ?, ?) ON CONFLICT (identity) DO UPDATE SET "
                "verifier=excluded.verifier, updated_at_ms=excluded.updated_at_ms",
                (identity, verifier, now_ms),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._verifiers.pop(identity, None)
            raise
        self._verifiers[identity] = verifier

    async def set_group_grants(
        self, identity: bytes, grants: Sequence[tuple[bytes, bytes]], *, now_ms: int
    ) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.set_group_grants`."""
        group_grants.sqlite_set(self._conn, identity, grants)

    async def grantees(self, sender: bytes, verifier: bytes) -> list[bytes]:
        """See :meth:`messenger_tui.relay.store.AccessStore.grantees`."""
        return group_grants.sqlite_grantees(self._conn, sender, verifier)

    async def identity_known(self, identity: bytes) -> bool:
        """See :meth:`messenger_tui.relay.store.AccessStore.identity_known`."""
        row = self._conn.execute(
            "SELECT 1 FROM identities WHERE identity=?", (identity,)
        ).fetchone()
        return row is not None

    async def record_identity(self, identity: bytes, *, now_ms: int) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.record_identity`."""
        self._conn.execute(
            "INSERT OR IGNORE INTO identities (identity, first_seen_ms) VALUES (?, ?)",
            (identity, now_ms),
        )


def _envelope(row: tuple[object, ...]) -> StoredEnvelope:
    """A :data:`fanout_store.SELECT_ENVELOPE` row as an envelope (a multi-recipient one: the
    shared body as ``body``, the row's own bytes as ``header``)."""
    seq, recipient, sender, msg_id, own, stored_at_ms, body_id, shared = row
    assert isinstance(seq, int) and isinstance(stored_at_ms, int)
    assert isinstance(recipient, bytes) and isinstance(sender, bytes)
    assert isinstance(msg_id, bytes) and isinstance(own, bytes)
    if body_id is None:
        return StoredEnvelope(seq, recipient, sender, msg_id, own, stored_at_ms)
    assert isinstance(shared, bytes)
    return StoredEnvelope(seq, recipient, sender, msg_id, shared, stored_at_ms, own)
