"""The relay store over each backend (SQLite, Redis): idempotency, order, ack scoping, TTL,
bounds, prekeys; and what is the SQLite file's own (reopen, permissions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    NewEnvelope,
    RelayStore,
    StoredOneTimePrekey,
    StoredSignedPrekey,
)

TTL = 1_000_000
LIMIT = 1_000

ALICE, BOB, CAROL = (bytes([n]) * 32 for n in (1, 2, 3))


def env(recipient: bytes, sender: bytes, body: bytes = b"ciphertext") -> NewEnvelope:
    return NewEnvelope(recipient, sender, os.urandom(16), body)


async def write(
    store: RelayStore, envs: list[NewEnvelope], now: int = 1000, limit: int = LIMIT
) -> list[InsertResult]:
    return await store.write(envs, [], now_ms=now, ttl_ms=TTL, mailbox_limit=limit)


async def test_insert_then_fetch_in_order(store: RelayStore) -> None:
    envs = [env(BOB, ALICE, f"m{i}".encode()) for i in range(5)]
    results = await write(store, envs)
    assert [r.outcome for r in results] == [InsertOutcome.STORED] * 5
    rows = await store.fetch_after(BOB, 0, 10, now_ms=1000)
    assert [r.body for r in rows] == [f"m{i}".encode() for i in range(5)]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert all(r.sender == ALICE and r.recipient == BOB for r in rows)
    assert await store.count(BOB, now_ms=1000) == 5
    assert await store.count(ALICE, now_ms=1000) == 0


async def test_fetch_after_cursor_and_limit(store: RelayStore) -> None:
    await write(store, [env(BOB, ALICE, bytes([i])) for i in range(10)])
    first = await store.fetch_after(BOB, 0, 4, now_ms=1000)
    rest = await store.fetch_after(BOB, first[-1].seq, 100, now_ms=1000)
    assert [r.body for r in first + rest] == [bytes([i]) for i in range(10)]


async def test_duplicate_keeps_original_position_body_and_time(store: RelayStore) -> None:
    original = env(BOB, ALICE, b"first")
    await write(store, [original], now=1000)
    await write(store, [env(BOB, ALICE, b"later")], now=2000)
    again = NewEnvelope(original.recipient, original.sender, original.msg_id, b"replayed")
    (result,) = await write(store, [again], now=3000)
    assert result.outcome is InsertOutcome.DUPLICATE
    assert result.envelope is not None
    assert result.envelope.body == b"first" and result.envelope.stored_at_ms == 1000
    rows = await store.fetch_after(BOB, 0, 10, now_ms=3000)
    assert [r.body for r in rows] == [b"first", b"later"]


async def test_duplicate_within_one_batch(store: RelayStore) -> None:
    e = env(BOB, ALICE)
    results = await write(store, [e, e])
    assert [r.outcome for r in results] == [InsertOutcome.STORED, InsertOutcome.DUPLICATE]
    assert results[0].envelope == results[1].envelope
    assert await store.count(BOB, now_ms=1000) == 1


async def test_same_id_from_other_sender_or_to_other_recipient_is_distinct(
    store: RelayStore,
) -> None:
    e = env(BOB, ALICE)
    other_sender = NewEnvelope(BOB, CAROL, e.msg_id, b"x")
    other_recipient = NewEnvelope(CAROL, ALICE, e.msg_id, b"y")
    results = await write(store, [e, other_sender, other_recipient])
    assert [r.outcome for r in results] == [InsertOutcome.STORED] * 3


async def test_ack_deletes_only_from_own_mailbox(store: RelayStore) -> None:
    to_bob = env(BOB, ALICE)
    to_carol = env(CAROL, ALICE)
    await write(store, [to_bob, to_carol])
    # Carol acks Bob's envelope id (and her own): only her own goes.
    await store.write(
        [],
        [AckRequest(CAROL, [to_bob.msg_id, to_carol.msg_id])],
        now_ms=1000,
        ttl_ms=TTL,
        mailbox_limit=LIMIT,
    )
    assert [r.msg_id for r in await store.fetch_after(BOB, 0, 10, now_ms=1000)] == [to_bob.msg_id]
    assert await store.fetch_after(CAROL, 0, 10, now_ms=1000) == []
    await store.write(
        [], [AckRequest(BOB, [to_bob.msg_id])], now_ms=1000, ttl_ms=TTL, mailbox_limit=LIMIT
    )
    assert await store.count(BOB, now_ms=1000) == 0


async def test_expired_envelopes_are_never_fetched_and_get_purged(store: RelayStore) -> None:
    clock = ManualClock(10_000)
    await write(store, [env(BOB, ALICE, b"old")], now=clock())
    clock.advance(TTL // 2)
    await write(store, [env(BOB, ALICE, b"new")], now=clock())
    clock.advance(TTL // 2)  # "old" is exactly at its expiry now
    rows = await store.fetch_after(BOB, 0, 10, now_ms=clock())
    assert [r.body for r in rows] == [b"new"]
    assert await store.count(BOB, now_ms=clock()) == 1
    assert await store.purge_expired(now_ms=clock()) == 1
    assert await store.purge_expired(now_ms=clock()) == 0
    clock.advance(TTL)
    assert await store.fetch_after(BOB, 0, 10, now_ms=clock()) == []
    assert await store.purge_expired(now_ms=clock()) == 1


async def test_purge_walks_many_chunks(store: RelayStore) -> None:
    await write(store, [env(BOB, ALICE) for _ in range(4500)], now=0, limit=10_000)
    await write(store, [env(BOB, ALICE, b"fresh")], now=TTL, limit=10_000)
    assert await store.purge_expired(now_ms=TTL) == 4500
    assert [r.body for r in await store.fetch_after(BOB, 0, 10, now_ms=TTL)] == [b"fresh"]


async def test_mailbox_bound(store: RelayStore) -> None:
    first = [env(BOB, ALICE) for _ in range(3)]
    results = await write(store, [*first, env(BOB, ALICE)], limit=3)
    assert [r.outcome for r in results] == [InsertOutcome.STORED] * 3 + [InsertOutcome.MAILBOX_FULL]
    # A duplicate of a stored envelope is still "stored" when the mailbox is full.
    (dup,) = await write(store, [first[0]], limit=3)
    assert dup.outcome is InsertOutcome.DUPLICATE
    # Other mailboxes are unaffected; acking frees room.
    (other,) = await write(store, [env(CAROL, ALICE)], limit=3)
    assert other.outcome is InsertOutcome.STORED
    await store.write(
        [], [AckRequest(BOB, [first[0].msg_id])], now_ms=1000, ttl_ms=TTL, mailbox_limit=3
    )
    (again,) = await write(store, [env(BOB, ALICE)], limit=3)
    assert again.outcome is InsertOutcome.STORED


async def test_seq_keeps_increasing_after_acks_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = await SqliteStore.open(path)
    a, b = env(BOB, ALICE), env(BOB, ALICE)
    results = await write(store, [a, b])
    top = results[1].envelope
    assert top is not None
    await store.write(
        [], [AckRequest(BOB, [b.msg_id])], now_ms=1000, ttl_ms=TTL, mailbox_limit=LIMIT
    )
    (c,) = await write(store, [env(BOB, ALICE)])
    assert c.envelope is not None and c.envelope.seq > top.seq
    await store.close()
    reopened = await SqliteStore.open(path)
    try:
        rows = await reopened.fetch_after(BOB, 0, 10, now_ms=1000)
        assert [r.msg_id for r in rows] == [a.msg_id, c.envelope.msg_id]
        (d,) = await write(reopened, [env(BOB, ALICE)])
        assert d.envelope is not None and d.envelope.seq > c.envelope.seq
    finally:
        await reopened.close()


async def test_database_file_is_private(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "relay.db")
    await store.close()
    assert (tmp_path / "relay.db").stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------------------- prekeys

SPK = StoredSignedPrekey(7, b"\x05" * 32, b"\x06" * 64)


def opks(first: int, count: int) -> list[StoredOneTimePrekey]:
    return [StoredOneTimePrekey(first + i, os.urandom(32)) for i in range(count)]


async def test_prekeys_unknown_identity(store: RelayStore) -> None:
    assert await store.take_bundle(ALICE) is None
    status = await store.prekey_status(ALICE)
    assert (status.one_time_remaining, status.signed_prekey_id) == (0, None)


async def test_each_one_time_prekey_is_taken_once(store: RelayStore) -> None:
    published = opks(100, 3)
    held = await store.put_prekeys(ALICE, SPK, published, max_one_time=200, now_ms=1)
    assert held == 3
    taken = []
    for _ in range(5):
        bundle = await store.take_bundle(ALICE)
        assert bundle is not None and bundle.signed == SPK
        taken.append(bundle.one_time)
    assert taken[:3] == published  # lowest id first
    assert taken[3:] == [None, None]
    assert (await store.prekey_status(ALICE)).one_time_remaining == 0


async def test_one_time_prekey_bound_and_duplicate_ids(store: RelayStore) -> None:
    first = opks(0, 5)
    assert await store.put_prekeys(ALICE, SPK, first, max_one_time=8, now_ms=1) == 5
    # Re-publishing id 0 keeps the old key; only 3 of the 5 new ones fit.
    replayed = [StoredOneTimePrekey(0, b"\x00" * 32), *opks(10, 5)]
    assert await store.put_prekeys(ALICE, SPK, replayed, max_one_time=8, now_ms=2) == 8
    bundle = await store.take_bundle(ALICE)
    assert bundle is not None and bundle.one_time == first[0]
    ids = []
    while (b := await store.take_bundle(ALICE)) is not None and b.one_time is not None:
        ids.append(b.one_time.opk_id)
    assert ids == [1, 2, 3, 4, 10, 11, 12]


async def test_signed_prekey_replaced(store: RelayStore) -> None:
    await store.put_prekeys(ALICE, SPK, [], max_one_time=200, now_ms=1)
    newer = StoredSignedPrekey(8, b"\x09" * 32, b"\x0a" * 64)
    await store.put_prekeys(ALICE, newer, opks(0, 1), max_one_time=200, now_ms=2)
    status = await store.prekey_status(ALICE)
    assert (status.one_time_remaining, status.signed_prekey_id) == (1, 8)
    bundle = await store.take_bundle(ALICE)
    assert bundle is not None and bundle.signed == newer


async def test_store_is_closed_after_close(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "x.db")
    await store.close()
    with pytest.raises(RuntimeError):
        await store.count(ALICE, now_ms=0)
