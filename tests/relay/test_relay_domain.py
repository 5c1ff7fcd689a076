"""Mailboxes (group commit), the delivery pusher and the prekey directory, on a real
SQLite store with in-memory sinks instead of websockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence

import pytest

from messenger_tui.core import wire
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import generate_one_time_prekeys, generate_signed_prekey
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.delivery import DeliveryPusher
from messenger_tui.relay.mailboxes import Mailboxes
from messenger_tui.relay.prekey_directory import PrekeyDirectory, PrekeyRejected
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    NewEnvelope,
    StoredEnvelope,
)

from .conftest import ListSink

ALICE, BOB = b"a" * 32, b"b" * 32
TTL = 10**9


async def settle() -> None:
    """Let the pusher finish: its store reads hop to the database thread and back."""
    for _ in range(4):
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[NewEnvelope, InsertResult | None]] = []
        self.stored: list[StoredEnvelope] = []

    def done(self, envelope: NewEnvelope, result: InsertResult | None) -> None:
        self.results.append((envelope, result))


@pytest.fixture
async def mailboxes(
    store: SqliteStore, clock: ManualClock
) -> AsyncIterator[tuple[Mailboxes, Recorder]]:
    recorder = Recorder()
    boxes = Mailboxes(
        store, clock=clock, ttl_ms=TTL, mailbox_limit=5, on_stored=recorder.stored.append
    )
    boxes.start()
    try:
        yield boxes, recorder
    finally:
        await boxes.stop()


def new(recipient: bytes = BOB, sender: bytes = ALICE) -> NewEnvelope:
    return NewEnvelope(recipient, sender, os.urandom(16), b"body")


async def test_submissions_in_one_turn_share_one_commit(
    mailboxes: tuple[Mailboxes, Recorder],
) -> None:
    boxes, rec = mailboxes
    envs = [new() for _ in range(4)]
    for e in envs:
        boxes.submit(e, rec.done)
    assert rec.results == []  # nothing is acknowledged before the commit
    await boxes.flush()
    assert boxes.commits == 1
    assert [e for e, _ in rec.results] == envs
    assert all(r is not None and r.outcome is InsertOutcome.STORED for _, r in rec.results)
    assert [s.msg_id for s in rec.stored] == [e.msg_id for e in envs]


async def test_duplicates_and_full_mailbox_reported(mailboxes: tuple[Mailboxes, Recorder]) -> None:
    boxes, rec = mailboxes
    envs = [new() for _ in range(6)]
    for e in [*envs, envs[0]]:
        boxes.submit(e, rec.done)
    await boxes.flush()
    outcomes = [r.outcome for _, r in rec.results if r is not None]
    assert outcomes == [InsertOutcome.STORED] * 5 + [
        InsertOutcome.MAILBOX_FULL,
        InsertOutcome.DUPLICATE,
    ]
    assert len(rec.stored) == 5  # only new rows are routed for delivery
    assert (boxes.stored, boxes.duplicates, boxes.refused_full) == (5, 1, 1)


async def test_acks_are_committed(
    mailboxes: tuple[Mailboxes, Recorder], store: SqliteStore
) -> None:
    boxes, rec = mailboxes
    e = new()
    boxes.submit(e, rec.done)
    await boxes.flush()
    boxes.ack(ALICE, [e.msg_id])  # not Alice's mailbox: nothing happens
    await boxes.flush()
    assert await store.count(BOB, now_ms=0) == 1
    boxes.ack(BOB, [e.msg_id])
    await boxes.flush()
    assert await store.count(BOB, now_ms=0) == 0


async def test_store_failure_reports_none(store: SqliteStore, clock: ManualClock) -> None:
    class Broken:
        async def write(self, *args: object, **kwargs: object) -> list[InsertResult]:
            raise OSError("disk full")

    rec = Recorder()
    boxes = Mailboxes(
        Broken(),  # type: ignore[arg-type]
        clock=clock,
        ttl_ms=TTL,
        mailbox_limit=5,
        on_stored=rec.stored.append,
    )
    boxes.start()
    boxes.submit(new(), rec.done)
    await boxes.flush()
    await boxes.stop()
    assert [r for _, r in rec.results] == [None]


# ----------------------------------------------------------------------- delivery pusher


async def put(store: SqliteStore, envs: Sequence[NewEnvelope]) -> list[StoredEnvelope]:
    now = ManualClock()()  # the fixtures' clock start
    results = await store.write(envs, [], now_ms=now, ttl_ms=TTL, mailbox_limit=10**6)
    return [r.envelope for r in results if r.envelope is not None]


def deliveries(frames: list[wire.RelayFrame]) -> list[bytes]:
    return [f.id for f in frames if isinstance(f, wire.Deliver)]


class PusherHarness:
    def __init__(
        self, store: SqliteStore, clock: ManualClock, window: int, *, shared: bool = False
    ) -> None:
        self.sink = ListSink()
        self.pusher = DeliveryPusher(
            BOB, store, self.sink, window=window, clock=clock, shared=shared
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PusherHarness:
        self.task = asyncio.get_running_loop().create_task(self.pusher.run())
        await settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_empty_mailbox_still_gets_drained(store: SqliteStore, clock: ManualClock) -> None:
    async with PusherHarness(store, clock, window=4) as h:
        assert h.sink.take() == [wire.Drained(pushed=0)]


async def test_backlog_in_order_within_the_window(store: SqliteStore, clock: ManualClock) -> None:
    stored = await put(store, [new() for _ in range(10)])
    ids = [s.msg_id for s in stored]
    async with PusherHarness(store, clock, window=4) as h:
        assert deliveries(h.sink.take()) == ids[:4]  # window full: no Drained yet
        h.pusher.acked(ids[:2])
        await settle()
        assert deliveries(h.sink.take()) == ids[4:6]
        h.pusher.acked(ids[2:8])
        await settle()
        frames = h.sink.take()
        assert deliveries(frames) == ids[6:10]
        assert frames[-1] == wire.Drained(pushed=10)


async def test_exactly_a_window_full_is_drained_at_once(
    store: SqliteStore, clock: ManualClock
) -> None:
    stored = await put(store, [new() for _ in range(4)])
    async with PusherHarness(store, clock, window=4) as h:
        frames = h.sink.take()
        assert deliveries(frames) == [s.msg_id for s in stored]
        assert frames[-1] == wire.Drained(pushed=4)


async def test_live_envelopes_pushed_then_drained_once_per_batch(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with PusherHarness(store, clock, window=8) as h:
        assert h.sink.take() == [wire.Drained(pushed=0)]
        live = await put(store, [new() for _ in range(3)])
        for s in live:
            h.pusher.offer(s)
        assert h.sink.frames[-1] != wire.Drained(pushed=3)  # not before the batch ends
        h.pusher.offers_done()
        await settle()
        frames = h.sink.take()
        assert deliveries(frames) == [s.msg_id for s in live]
        assert frames[-1] == wire.Drained(pushed=3) and len(frames) == 4
        await settle()
        assert h.sink.take() == []  # nothing new: no further Drained


async def test_live_overflow_falls_back_to_the_store(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with PusherHarness(store, clock, window=2) as h:
        h.sink.take()
        live = await put(store, [new() for _ in range(7)])
        for s in live:
            h.pusher.offer(s)
        h.pusher.offers_done()
        await settle()
        ids = [s.msg_id for s in live]
        assert deliveries(h.sink.take()) == ids[:2]
        for start in range(0, 7, 2):
            h.pusher.acked(ids[start : start + 2])
            await settle()
        assert deliveries(h.sink.frames) == ids[2:]
        assert h.sink.frames[-1] == wire.Drained(pushed=7)


async def test_shared_mailbox_reads_what_another_node_committed_before_a_local_offer(
    store: SqliteStore, clock: ManualClock
) -> None:
    # Several nodes: node A commits `theirs` (its wake-up is still on the way), then this
    # node commits `ours` and offers it. Pushing `ours` from memory would move the cursor past
    # `theirs`, and the re-read on the wake-up would start after it: never delivered.
    async with PusherHarness(store, clock, window=8, shared=True) as h:
        assert h.sink.take() == [wire.Drained(pushed=0)]
        first = await put(store, [new()])
        h.pusher.offer(first[0])  # nothing in between: pushed straight from memory
        h.pusher.offers_done()
        theirs, ours = await put(store, [new(), new()])
        h.pusher.offer(ours)
        h.pusher.offers_done()
        await settle()
        frames = h.sink.take()
        assert deliveries(frames) == [first[0].msg_id, theirs.msg_id, ours.msg_id]
        assert frames[-1] == wire.Drained(pushed=3)
        h.pusher.reread()  # the late wake-up for `theirs`: nothing is delivered twice
        await settle()
        assert deliveries(h.sink.take()) == []


async def test_shared_mailbox_ignores_a_carried_envelope_already_read_from_the_store(
    store: SqliteStore, clock: ManualClock
) -> None:
    # Several nodes: the envelopes were read from the store (a re-read) before the wake-ups
    # that carry them arrived: offering them late delivers nothing twice and reads nothing.
    async with PusherHarness(store, clock, window=8, shared=True) as h:
        assert h.sink.take() == [wire.Drained(pushed=0)]
        first, second = await put(store, [new(), new()])
        h.pusher.reread()
        await settle()
        assert deliveries(h.sink.take()) == [first.msg_id, second.msg_id]
        h.pusher.offer(first)
        h.pusher.offer(second)
        h.pusher.offers_done()
        await settle()
        assert deliveries(h.sink.take()) == []
        [third] = await put(store, [new()])
        await store.close()  # the next one must come from memory, not from the store
        h.pusher.offer(third)
        h.pusher.offers_done()
        assert deliveries(h.sink.take()) == [third.msg_id]


async def test_congested_sink_pauses_pushing(store: SqliteStore, clock: ManualClock) -> None:
    stored = await put(store, [new() for _ in range(3)])
    h = PusherHarness(store, clock, window=8)
    h.sink.is_congested = True
    async with h:
        assert h.sink.take() == []
        h.sink.is_congested = False
        h.pusher.wake()
        await settle()
        assert deliveries(h.sink.take()) == [s.msg_id for s in stored]


async def test_new_pusher_redelivers_unacked(store: SqliteStore, clock: ManualClock) -> None:
    stored = await put(store, [new() for _ in range(3)])
    ids = [s.msg_id for s in stored]
    async with PusherHarness(store, clock, window=8) as h:
        assert deliveries(h.sink.take()) == ids
    await store.write([], [AckRequest(BOB, ids[:1])], now_ms=1, ttl_ms=TTL, mailbox_limit=9)
    async with PusherHarness(store, clock, window=8) as h:
        assert deliveries(h.sink.take()) == ids[1:]


async def test_expired_envelopes_are_not_delivered(store: SqliteStore, clock: ManualClock) -> None:
    await store.write([new()], [], now_ms=clock(), ttl_ms=1000, mailbox_limit=9)
    clock.advance(1000)
    async with PusherHarness(store, clock, window=8) as h:
        assert h.sink.take() == [wire.Drained(pushed=0)]


# ----------------------------------------------------------------------- prekey directory


def publish_frame(
    identity: IdentityKeyPair, spk_id: int = 1, opk_count: int = 3, first_opk: int = 1
) -> wire.PublishPrekeys:
    spk = generate_signed_prekey(identity, spk_id, now_ms=0)
    return wire.PublishPrekeys(
        ref=1,
        spk_id=spk.id,
        spk=spk.public,
        spk_sig=spk.signature,
        opks=[
            wire.OneTimePrekeyWire(id=k.id, key=k.public)
            for k in generate_one_time_prekeys(first_opk, opk_count)
        ],
    )


async def test_prekey_directory_publish_and_fetch(store: SqliteStore, clock: ManualClock) -> None:
    directory = PrekeyDirectory(store, max_one_time=200, clock=clock)
    owner = IdentityKeyPair.generate()
    frame = publish_frame(owner)
    assert await directory.publish(owner.public, frame) == 3
    bundle = await directory.fetch(owner.public)
    assert bundle.signed.spk == frame.spk and bundle.one_time is not None
    assert bundle.one_time.key == frame.opks[0].key
    status = await directory.status(owner.public)
    assert (status.one_time_remaining, status.signed_prekey_id) == (2, 1)


async def test_prekey_directory_refuses_bad_signatures_and_keys(
    store: SqliteStore, clock: ManualClock
) -> None:
    directory = PrekeyDirectory(store, max_one_time=200, clock=clock)
    owner, other = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    frame = publish_frame(owner)
    with pytest.raises(PrekeyRejected) as info:
        await directory.publish(other.public, frame)  # signed by someone else
    assert info.value.code == wire.ErrorCode.BAD_REQUEST
    bad_opk = wire.PublishPrekeys(
        ref=2,
        spk_id=frame.spk_id,
        spk=frame.spk,
        spk_sig=frame.spk_sig,
        opks=[wire.OneTimePrekeyWire(id=1, key=b"short")],
    )
    with pytest.raises(PrekeyRejected):
        await directory.publish(owner.public, bad_opk)
    big_id = wire.PublishPrekeys(
        ref=3,
        spk_id=frame.spk_id,
        spk=frame.spk,
        spk_sig=frame.spk_sig,
        opks=[wire.OneTimePrekeyWire(id=2**40, key=b"k" * 32)],
    )
    with pytest.raises(PrekeyRejected):
        await directory.publish(owner.public, big_id)
    with pytest.raises(PrekeyRejected) as missing:
        await directory.fetch(owner.public)
    assert missing.value.code == wire.ErrorCode.NOT_FOUND
