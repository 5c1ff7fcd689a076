"""Shared bodies of multi-recipient envelopes in the SQLite relay store.

A ``SendMulti`` to N recipients is stored as ONE row of ``shared_bodies`` (the body, a count
of the references to it, its expiry) and N rows of ``envelopes`` that reference it by
``body_id``, each holding only its recipient's header in ``envelopes.body``. This is the
shape of Signal-Server's shared multi-recipient payload (one Redis hash holding the payload
and each recipient's view, a recipient's field removed when it acknowledges, the hash
when none is left or at its expiry), on SQL with a reference count:

* insert: the first stored reference of an upload in a transaction creates the body row;
  the count is set to the references stored (refused and duplicate recipients add none);
* ack or purge of a reference: the count goes down, the body row goes at zero;
* TTL: every reference of a body expires with it (same transaction, same expiry); the body
  purge also drops bodies at their expiry even if an expired reference was left behind
  (expired references are never fetched, and releasing a body already gone is a no-op).

Everything here runs inside the caller's transaction on the store's only writing
connection (:class:`messenger_tui.relay.sqlite_store.SqliteStore`), which keeps the counts
exact. The 1:1 path has ``body_id`` NULL and never touches this table.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Final

from messenger_tui.relay.store import SharedUpload

SHARED_BODIES_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS shared_bodies (
    body_id INTEGER PRIMARY KEY,
    refs INTEGER NOT NULL,            -- envelopes rows with this body_id
    expires_at_ms INTEGER NOT NULL,   -- the same as its references'
    body BLOB NOT NULL                -- opaque end-to-end ciphertext, stored once
);
CREATE INDEX IF NOT EXISTS shared_bodies_by_expiry ON shared_bodies (expires_at_ms);
"""

#: Schema 2 -> 3: envelopes get ``body_id`` (before the body, so reading it never walks the
#: body's overflow pages); run with the current schema script in between (see sqlite_store).
UPGRADE_2_TO_3_BEFORE: Final = (
    "ALTER TABLE envelopes RENAME TO envelopes_v2",
    "DROP INDEX IF EXISTS envelopes_by_key",
    "DROP INDEX IF EXISTS envelopes_by_recipient",
)
UPGRADE_2_TO_3_AFTER: Final = (
    "INSERT INTO envelopes (seq, recipient, sender, msg_id, request, size, stored_at_ms, "
    "expires_at_ms, body) SELECT seq, recipient, sender, msg_id, request, size, stored_at_ms, "
    "expires_at_ms, body FROM envelopes_v2",
    "DROP TABLE envelopes_v2",
)

#: Columns of a fetched envelope, the shared body (NULL for 1:1) last.
SELECT_ENVELOPE: Final = (
    "SELECT e.seq, e.recipient, e.sender, e.msg_id, e.body, e.stored_at_ms, e.body_id, b.body "
    "FROM envelopes e LEFT JOIN shared_bodies b ON b.body_id = e.body_id "
)


class SharedBodyWriter:
    """The body rows of one insert transaction: :meth:`reference` per stored multi-recipient
    envelope, then :meth:`finish` once before the commit."""

    def __init__(self, db: sqlite3.Connection, expires_at_ms: int) -> None:
        self._db = db
        self._expires = expires_at_ms
        self._ids: dict[SharedUpload, int] = {}  # by identity; this transaction's only
        self._refs: Counter[int] = Counter()

    def reference(self, upload: SharedUpload, body: bytes) -> int:
        """The body id for one more stored reference to ``upload``'s ``body``."""
        body_id = self._ids.get(upload)
        if body_id is None:
            (body_id,) = self._db.execute(
                "INSERT INTO shared_bodies (refs, expires_at_ms, body) VALUES (0, ?, ?) "
                "RETURNING body_id",
                (self._expires, body),
            ).fetchone()
            self._ids[upload] = body_id
        self._refs[body_id] += 1
        return int(body_id)

    def finish(self) -> None:
        """Write the reference counts."""
        if self._refs:
            self._db.executemany(
                "UPDATE shared_bodies SET refs = refs + ? WHERE body_id = ?",
                [(n, body_id) for body_id, n in self._refs.items()],
            )


def release(db: sqlite3.Connection, body_ids: Iterable[int | None]) -> None:
    """Drop one reference per id (None: a 1:1 envelope, skipped); delete bodies left with
    none. A body already gone (purged at its TTL) is skipped."""
    counts = Counter(body_id for body_id in body_ids if body_id is not None)
    if not counts:
        return
    db.executemany(
        "UPDATE shared_bodies SET refs = refs - ? WHERE body_id = ?",
        [(n, body_id) for body_id, n in counts.items()],
    )
    db.executemany(
        "DELETE FROM shared_bodies WHERE body_id = ? AND refs <= 0",
        [(body_id,) for body_id in counts],
    )


def purge_expired_bodies(db: sqlite3.Connection, now_ms: int) -> int:
    """Delete bodies whose expiry is at or before ``now_ms`` (their references expired with
    them); return how many. Runs inside the caller's transaction."""
    cur = db.execute("DELETE FROM shared_bodies WHERE expires_at_ms <= ?", (now_ms,))
    return max(cur.rowcount, 0)
