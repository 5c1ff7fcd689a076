"""The SQLite relay store's schema and its upgrades (see sqlite_store.py)."""

from __future__ import annotations

from typing import Final

from messenger_tui.relay import fanout_store, group_grants

SCHEMA_VERSION: Final = 3

SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS envelopes (
    seq INTEGER PRIMARY KEY,          -- assigned by the store, increasing (see _next_seq)
    recipient BLOB NOT NULL,
    sender BLOB NOT NULL,
    msg_id BLOB NOT NULL,
    request INTEGER NOT NULL,         -- 1: a message request (stranger quota), 0: a contact's
    size INTEGER NOT NULL,            -- length(body), for the byte quotas
    stored_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    body_id INTEGER,                  -- NULL: 1:1; else a shared_bodies row (fanout_store)
    body BLOB NOT NULL                -- opaque end-to-end ciphertext (a multi-recipient
                                      -- envelope: its header); last, so reading the
                                      -- other columns never walks its overflow pages
);
-- (recipient, msg_id, sender) is unique: enforced by SqliteStore._insert_all, which looks a
-- key up in this index alone (no table row, no body); acks delete by its prefix.
CREATE INDEX IF NOT EXISTS envelopes_by_key ON envelopes (recipient, msg_id, sender);
CREATE INDEX IF NOT EXISTS envelopes_by_recipient ON envelopes (recipient, seq);
CREATE TABLE IF NOT EXISTS signed_prekeys (
    identity BLOB PRIMARY KEY,
    spk_id INTEGER NOT NULL,
    spk BLOB NOT NULL,
    spk_sig BLOB NOT NULL,
    published_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS one_time_prekeys (
    identity BLOB NOT NULL,
    opk_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY (identity, opk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivery_verifiers (
    identity BLOB PRIMARY KEY,
    verifier BLOB NOT NULL,           -- SHA-256 of the delivery secret (core/delivery_access)
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identities (
    identity BLOB PRIMARY KEY,        -- every identity that authenticated (new-identity limit)
    first_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""
    + fanout_store.SHARED_BODIES_SCHEMA
    + group_grants.GRANTS_SCHEMA
)

#: Schema 1 -> 3 in one go (the current schema script makes the v3 table).
#: Schema 1 -> 2: envelopes get their quota class and size (body moved last), the msg_id
#: index becomes the (recipient, msg_id, sender) key, and the identities that published
#: prekeys count as already seen.
UPGRADE_1_TO_2: Final = (
    "ALTER TABLE envelopes RENAME TO envelopes_v1",
    "DROP INDEX IF EXISTS envelopes_by_msg_id",
    "DROP INDEX IF EXISTS envelopes_by_recipient",
    SCHEMA,
    "INSERT INTO envelopes (seq, recipient, sender, msg_id, request, size, stored_at_ms, "
    "expires_at_ms, body) SELECT seq, recipient, sender, msg_id, 0, length(body), stored_at_ms, "
    "expires_at_ms, body FROM envelopes_v1",
    "DROP TABLE envelopes_v1",
    "INSERT OR IGNORE INTO identities (identity, first_seen_ms) "
    "SELECT identity, published_at_ms FROM signed_prekeys",
)

#: Schema 2 -> 3: envelopes get ``body_id`` for multi-recipient envelopes (fanout_store).
UPGRADE_2_TO_3: Final = (
    *fanout_store.UPGRADE_2_TO_3_BEFORE,
    SCHEMA,
    *fanout_store.UPGRADE_2_TO_3_AFTER,
)
