"""Multi-recipient envelopes in the relay store (each backend): one stored body, per-recipient
references, idempotency per recipient, ack and TTL release, quotas per recipient (asserted on
the SQLite file or the Redis keys themselves)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from messenger_tui.core.delivery_access import delivery_verifier
from messenger_tui.relay.quotas import MailboxQuota
from messenger_tui.relay.sqlite_schema import SCHEMA_VERSION
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    NewEnvelope,
    RelayStore,
    SharedUpload,
)
from tests.relay.conftest import shared_body_rows

TTL = 1_000_000
LIMIT = 1_000
SENDER = bytes([1]) * 32
BODY = os.urandom(3000)


def members(n: int, start: int = 10) -> list[bytes]:
    return [(start + i).to_bytes(4, "big") * 8 for i in range(n)]


def upload(
    recipients: list[bytes],
    msg_id: bytes,
    body: bytes = BODY,
    *,
    headers: dict[bytes, bytes] | None = None,
    access: dict[bytes, bytes] | None = None,
) -> list[NewEnvelope]:
    token = SharedUpload()
    headers = headers or {}
    access = access or {}
    return [
        NewEnvelope(r, SENDER, msg_id, body, access.get(r), headers.get(r, b""), token)
        for r in recipients
    ]


async def write(
    store: RelayStore,
    envs: list[NewEnvelope],
    acks: list[AckRequest] | None = None,
    *,
    now: int = 1000,
    quota: MailboxQuota | None = None,
) -> list[InsertResult]:
    return await store.write(
        envs, acks or [], now_ms=now, ttl_ms=TTL, mailbox_limit=LIMIT, quota=quota
    )


async def test_one_body_row_for_100_recipients(store: RelayStore) -> None:
    group = members(100)
    msg_id = os.urandom(16)
    results = await write(store, upload(group, msg_id))
    assert [r.outcome for r in results] == [InsertOutcome.STORED] * 100
    assert await shared_body_rows(store) == (1, len(BODY), 100)
    if isinstance(store, SqliteStore):
        (refcount,) = (
            sqlite3.connect(store.path).execute("SELECT refs FROM shared_bodies").fetchone()
        )
        assert refcount == 100
    for r in group[:3] + group[-3:]:
        (got,) = await store.fetch_after(r, 0, 10, now_ms=1000)
        assert (got.body, got.header, got.msg_id, got.sender) == (BODY, b"", msg_id, SENDER)


async def test_headers_are_per_recipient_and_1to1_has_none(store: RelayStore) -> None:
    a, b = members(2)
    headers = {a: b"sealed-key-for-a", b: b"\x00" * 128}
    await write(store, upload([a, b], os.urandom(16), headers=headers))
    await write(store, [NewEnvelope(a, SENDER, os.urandom(16), b"pairwise")])
    got_a = await store.fetch_after(a, 0, 10, now_ms=1000)
    (got_b,) = await store.fetch_after(b, 0, 10, now_ms=1000)
    assert [(e.body, e.header) for e in got_a] == [
        (BODY, b"sealed-key-for-a"),
        (b"pairwise", None),
    ]
    assert (got_b.body, got_b.header) == (BODY, b"\x00" * 128)


async def test_idempotent_per_recipient(store: RelayStore) -> None:
    group = members(10)
    msg_id = os.urandom(16)
    first = await write(store, upload(group[:6], msg_id), now=1000)
    assert {r.outcome for r in first} == {InsertOutcome.STORED}
    # The retry names everyone: the six stored ones are duplicates (original kept), the other
    # four are new and share one new body row; nobody holds the message twice.
    again = await write(store, upload(group, msg_id, b"replayed body"), now=2000)
    assert [r.outcome for r in again] == [InsertOutcome.DUPLICATE] * 6 + [InsertOutcome.STORED] * 4
    dup = again[0].envelope
    assert dup is not None and (dup.body, dup.header, dup.stored_at_ms) == (BODY, b"", 1000)
    for r in group:
        assert await store.count(r, now_ms=2000) == 1
    assert (await shared_body_rows(store))[0] == 2
    # A duplicate inside one write is decided once too.
    twice = upload([group[0]], os.urandom(16)) * 2
    assert [r.outcome for r in await write(store, twice)] == [
        InsertOutcome.STORED,
        InsertOutcome.DUPLICATE,
    ]


async def test_ack_deletes_reference_then_body_with_the_last(store: RelayStore) -> None:
    group = members(5)
    msg_id = os.urandom(16)
    await write(store, upload(group, msg_id))
    for i, r in enumerate(group[:-1]):
        await write(store, [], [AckRequest(r, [msg_id])])
        assert await shared_body_rows(store) == (1, len(BODY), len(group) - 1 - i)
        assert await store.fetch_after(r, 0, 10, now_ms=1000) == []
    (last,) = await store.fetch_after(group[-1], 0, 10, now_ms=1000)
    assert last.body == BODY
    await write(store, [], [AckRequest(group[-1], [msg_id])])
    assert await shared_body_rows(store) == (0, 0, 0)
    # Acking again (a redelivered ack) changes nothing and raises nothing.
    await write(store, [], [AckRequest(group[0], [msg_id])])
    assert await shared_body_rows(store) == (0, 0, 0)


async def test_ack_of_one_recipient_and_insert_in_one_batch(store: RelayStore) -> None:
    a, b = members(2)
    first, second = os.urandom(16), os.urandom(16)
    await write(store, upload([a, b], first))
    await write(store, upload([a, b], second), [AckRequest(a, [first]), AckRequest(b, [first])])
    assert await shared_body_rows(store) == (1, len(BODY), 2)
    assert [e.msg_id for e in await store.fetch_after(a, 0, 10, now_ms=1000)] == [second]


async def test_ttl_purge_removes_references_and_body(store: RelayStore) -> None:
    group = members(20)
    await write(store, upload(group, os.urandom(16)), now=1000)
    await write(store, [], [AckRequest(group[0], [os.urandom(16)])], now=1000)
    assert await store.purge_expired(now_ms=1000 + TTL - 1) == 0
    assert await shared_body_rows(store) == (1, len(BODY), 20)
    assert await store.purge_expired(now_ms=1000 + TTL) == 20
    assert await shared_body_rows(store) == (0, 0, 0)
    assert [await store.count(r, now_ms=1000 + TTL) for r in group] == [0] * 20


async def test_body_purged_at_ttl_even_with_a_reference_left_behind(
    sqlite_store: SqliteStore,
) -> None:
    store = sqlite_store
    group = members(3)
    msg_id = os.urandom(16)
    await write(store, upload(group, msg_id), now=1000)
    # A reference left behind (e.g. a purge that stopped early) is expired, never fetched,
    # and the body goes at its own expiry anyway.
    db = sqlite3.connect(store.path)
    db.execute("DELETE FROM envelopes WHERE recipient=?", (group[0],))
    db.commit()
    db.close()
    await store.purge_expired(now_ms=1000 + TTL)
    assert await shared_body_rows(store) == (0, 0, 0)


async def test_quotas_apply_per_recipient(store: RelayStore) -> None:
    group = members(4)
    a, b, c, d = group
    assert c not in (a, b, d)
    secret = os.urandom(32)
    for r in group:
        await store.set_delivery_verifier(r, delivery_verifier(secret), now_ms=1000)
    quota = MailboxQuota(contact_bytes=2 * len(BODY), request_per_sender=1)
    # b's contact bytes are nearly used by a 1:1 envelope; c gets no secret (a request).
    await write(
        store, [NewEnvelope(b, SENDER, os.urandom(16), b"x" * len(BODY), secret)], quota=quota
    )
    access = {a: secret, b: secret, d: secret}
    first = await write(store, upload(group, os.urandom(16), access=access), quota=quota)
    assert [r.outcome for r in first] == [
        InsertOutcome.STORED,
        InsertOutcome.STORED,  # exactly at its byte bound: the shared body counts in full
        InsertOutcome.STORED,
        InsertOutcome.STORED,
    ]
    assert [r.request for r in first] == [False, False, True, False]
    second_id = os.urandom(16)
    second = await write(store, upload(group, second_id, access=access), quota=quota)
    assert [r.outcome for r in second] == [
        InsertOutcome.STORED,
        InsertOutcome.MAILBOX_FULL,  # b's contact bytes are at the bound
        InsertOutcome.SENDER_REQUESTS_FULL,  # one request per sender for c
        InsertOutcome.STORED,
    ]
    # The refused recipients hold one reference less; the body is still stored once.
    assert await shared_body_rows(store) == (2, 2 * len(BODY), 6)
    assert await store.count(b, now_ms=1000) == 2
    # Acking frees b's quota by the full size again.
    (old,) = [e for e in await store.fetch_after(b, 0, 10, now_ms=1000) if e.header is None]
    await write(store, [], [AckRequest(b, [old.msg_id])], quota=quota)
    (retry,) = await write(store, upload([b], second_id, access=access), quota=quota)
    assert retry.outcome is InsertOutcome.STORED


async def test_everyone_refused_stores_no_body(store: RelayStore) -> None:
    group = members(3)
    quota = MailboxQuota(contact_bytes=len(BODY) - 1)
    results = await write(store, upload(group, os.urandom(16)), quota=quota)
    assert {r.outcome for r in results} == {InsertOutcome.MAILBOX_FULL}
    assert await shared_body_rows(store) == (0, 0, 0)


async def test_usage_recounted_from_the_file_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    quota = MailboxQuota(contact_bytes=2 * len(BODY))
    store = await SqliteStore.open(path)
    try:
        await write(store, upload(members(2), os.urandom(16)), quota=quota)
    finally:
        await store.close()
    store = await SqliteStore.open(path)
    try:
        ok = await write(store, upload(members(2), os.urandom(16)), quota=quota)
        full = await write(store, upload(members(2), os.urandom(16)), quota=quota)
    finally:
        await store.close()
    assert {r.outcome for r in ok} == {InsertOutcome.STORED}
    assert {r.outcome for r in full} == {InsertOutcome.MAILBOX_FULL}


async def test_schema_2_database_upgrades_keeping_envelopes(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE envelopes (seq INTEGER PRIMARY KEY, recipient BLOB NOT NULL,
            sender BLOB NOT NULL, msg_id BLOB NOT NULL, request INTEGER NOT NULL,
            size INTEGER NOT NULL, stored_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE INDEX envelopes_by_key ON envelopes (recipient, msg_id, sender);
        CREATE INDEX envelopes_by_recipient ON envelopes (recipient, seq);
        PRAGMA user_version=2;
        """
    )
    recipient = members(1)[0]
    db.execute(
        "INSERT INTO envelopes VALUES (7, ?, ?, ?, 0, 3, 1000, ?, ?)",
        (recipient, SENDER, b"i" * 16, 1000 + TTL, b"old"),
    )
    db.commit()
    db.close()
    store = await SqliteStore.open(path)
    try:
        (got,) = await store.fetch_after(recipient, 0, 10, now_ms=1000)
        assert (got.seq, got.body, got.header) == (7, b"old", None)
        await write(store, upload([recipient], os.urandom(16)))
        assert await shared_body_rows(store) == (1, len(BODY), 1)
    finally:
        await store.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION == 3
