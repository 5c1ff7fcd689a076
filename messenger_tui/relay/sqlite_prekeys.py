"""The prekey directory's part of the SQLite relay store (sqlite_store.py): signed prekeys
replaced atomically, one-time prekeys handed out once. Functions over the store's connection,
called on the event-loop thread like the rest of the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from messenger_tui.relay.store import (
    PrekeyStatus,
    StoredOneTimePrekey,
    StoredPrekeyBundle,
    StoredSignedPrekey,
)


def put_prekeys(
    db: sqlite3.Connection,
    identity: bytes,
    signed: StoredSignedPrekey,
    one_time: Sequence[StoredOneTimePrekey],
    max_one_time: int,
    now_ms: int,
) -> int:
    """Replace the signed prekey, add one-time prekeys up to ``max_one_time`` (one
    transaction); how many one-time prekeys are held now."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT INTO signed_prekeys (identity, spk_id, spk, spk_sig, published_at_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (identity) DO UPDATE SET "
            "spk_id=excluded.spk_id, spk=excluded.spk, spk_sig=excluded.spk_sig, "
            "published_at_ms=excluded.published_at_ms",
            (identity, signed.spk_id, signed.spk, signed.spk_sig, now_ms),
        )
        held = opk_count(db, identity)
        for opk in one_time:
            if held >= max_one_time:
                break
            cur = db.execute(
                "INSERT INTO one_time_prekeys (identity, opk_id, key) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (identity, opk.opk_id, opk.key),
            )
            held += cur.rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return held


def opk_count(db: sqlite3.Connection, identity: bytes) -> int:
    """One-time prekeys ``identity`` holds."""
    (n,) = db.execute(
        "SELECT COUNT(*) FROM one_time_prekeys WHERE identity=?", (identity,)
    ).fetchone()
    return int(n)


def take_bundle(
    db: sqlite3.Connection, identity: bytes, with_one_time: bool
) -> StoredPrekeyBundle | None:
    """The signed prekey and (``with_one_time``) one one-time prekey, removed as it is
    handed out (one transaction); None when nothing was published."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "SELECT spk_id, spk, spk_sig FROM signed_prekeys WHERE identity=?", (identity,)
        ).fetchone()
        if row is None:
            db.execute("ROLLBACK")
            return None
        signed = StoredSignedPrekey(row[0], row[1], row[2])
        opk_row = None
        if with_one_time:
            opk_row = db.execute(
                "SELECT opk_id, key FROM one_time_prekeys WHERE identity=? ORDER BY opk_id LIMIT 1",
                (identity,),
            ).fetchone()
        one_time = None
        if opk_row is not None:
            one_time = StoredOneTimePrekey(opk_row[0], opk_row[1])
            db.execute(
                "DELETE FROM one_time_prekeys WHERE identity=? AND opk_id=?",
                (identity, one_time.opk_id),
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return StoredPrekeyBundle(identity, signed, one_time)


def prekey_status(db: sqlite3.Connection, identity: bytes) -> PrekeyStatus:
    """One-time prekeys held and the signed prekey's id (None: none published)."""
    row = db.execute("SELECT spk_id FROM signed_prekeys WHERE identity=?", (identity,)).fetchone()
    return PrekeyStatus(opk_count(db, identity), None if row is None else int(row[0]))
