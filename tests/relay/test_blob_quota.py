"""The blob quotas (relay/blob_quota.py, relay/redis_blob_quota.py) over both backends: the
SQLite node's in-process ledger and the Redis ledgers, on a real redis-server (and a real
three-master cluster). The same refusals, word for word; removal releases; with Redis, a
retried reserve or release counts once, reserves racing on two nodes pass the quota exactly,
a record whose node died releases itself after its deadline, blobs on disk are charged again
when their records were lost, and changes made while Redis is down are written once it is
back."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from messenger_tui.relay.blob_index import BlobConfig, BlobEntry, UploadRefusal
from messenger_tui.relay.blob_service import BlobService
from messenger_tui.relay.clock import ManualClock, wall_clock_ms
from messenger_tui.relay.redis_blob_quota import RedisBlobQuota
from messenger_tui.relay.redis_keys import blob_ledger_keys
from messenger_tui.relay.redis_store import RedisStore
from messenger_tui.relay.store import RelayStore, StoreUnavailable
from tests.helpers.redis_process import RedisClusterProcess, RedisProcess
from tests.relay.conftest import open_redis_store

MIB = 1024 * 1024
ALICE, BOB, CAROL = b"a" * 32, b"b" * 32, b"c" * 32
LOG = logging.getLogger("test.blob_quota")
CONFIG = BlobConfig(
    max_file_size=MIB,
    max_uploads=2,
    quota_count=3,
    quota_bytes=2 * MIB + MIB // 2,
    total_bytes=5 * MIB,
    ttl_s=100.0,
    partial_ttl_s=10.0,
    sweep_interval_s=1.0,
)


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting now: the shared directory's rules compare it with the files'
    modification times."""
    return ManualClock(wall_clock_ms())


#: How far past a lifetime the clock moves for a sweep (the files' times are the wall clock's).
MARGIN_MS = 1_000


async def node(
    store: RelayStore, directory: Path, clock: ManualClock, config: BlobConfig = CONFIG
) -> BlobService:
    """A node's blob service on ``store`` (Redis: a shared directory, quotas in Redis)."""
    service = BlobService(
        config, directory, clock, LOG, shared=isinstance(store, RedisStore), store=store
    )
    await service.start()
    return service


async def upload(
    service: BlobService, owner: bytes, size: int, *, finish: bool = True
) -> BlobEntry | UploadRefusal:
    """Reserve an upload as the route does, write its files, finish it when ``finish``."""
    now = service.now()
    entry = BlobEntry(id=os.urandom(32), owner=owner, size=size, touched_ms=now)
    refusal = await service.reserve(entry)
    if refusal is not None:
        return refusal
    service.files.create(entry, now)
    if finish:
        fd = service.files.open_part(entry.id)
        os.ftruncate(fd, size)
        service.files.finish(entry.id, fd, now)
        service.index.completed(entry, now)
    return entry


def code(result: BlobEntry | UploadRefusal) -> str:
    return result.code if isinstance(result, UploadRefusal) else "ok"


async def usage(service: BlobService, owner: bytes | None) -> tuple[int, int, int]:
    await service.quota.flush()
    return await service.quota.usage(owner)


async def test_each_limit_refuses_in_the_same_words_and_removal_releases(
    store: RelayStore, tmp_path: Path, clock: ManualClock
) -> None:
    blobs = await node(store, tmp_path / "blobs", clock)
    try:
        got = await upload(blobs, ALICE, CONFIG.max_blob_size + 1)
        assert isinstance(got, UploadRefusal) and got.code == "too_large"
        assert "over this relay's limit" in got.message
        first = await upload(blobs, ALICE, MIB, finish=False)
        assert code(first) == "ok"
        assert code(await upload(blobs, ALICE, MIB, finish=False)) == "ok"
        got = await upload(blobs, ALICE, 10)
        assert isinstance(got, UploadRefusal) and got.code == "too_many_uploads"
        assert got.message == "2 unfinished uploads already; finish or abandon one first (limit 2)"
        assert isinstance(first, BlobEntry)
        blobs.index.completed(first, clock())
        got = await upload(blobs, ALICE, MIB)
        assert isinstance(got, UploadRefusal) and got.code == "quota_bytes"
        assert got.message == (
            "this upload (1.0 MiB) would take this identity's stored blobs to 3.0 MiB, over "
            "its quota of 2.5 MiB"
        )
        assert code(await upload(blobs, ALICE, 10)) == "ok"
        got = await upload(blobs, ALICE, 10)
        assert isinstance(got, UploadRefusal) and got.code == "quota_count"
        assert got.message == (
            "this identity stores 3 blobs, the relay's limit; older ones expire after "
            f"{100 / 86400:g} days"
        )
        assert await usage(blobs, ALICE) == (2 * MIB + 10, 3, 1)
        # the relay-wide cap (5 MiB): BOB takes 2 MiB, CAROL's first MiB fills it
        for _ in range(2):
            assert code(await upload(blobs, BOB, MIB)) == "ok"
        got = await upload(blobs, CAROL, MIB)
        assert isinstance(got, UploadRefusal) and got.code == "relay_full"
        assert got.message == "the relay's space for attachments is full; try again later"
        assert await usage(blobs, CAROL) == (0, 0, 0)  # refused: nothing charged to her
        assert await usage(blobs, None) == (4 * MIB + 10, 5, 1)
        # the unfinished upload is removed after partial_ttl_s, the rest after ttl_s
        clock.advance(int(CONFIG.partial_ttl_s * 1000) + MARGIN_MS)
        assert await blobs.sweep() == (0, 1)
        assert await usage(blobs, ALICE) == (MIB + 10, 2, 0)
        assert code(await upload(blobs, CAROL, MIB)) == "ok"
        clock.advance(int(CONFIG.ttl_s * 1000) + MARGIN_MS)
        assert await blobs.sweep() == (5, 0)
        for who in (ALICE, BOB, CAROL, None):
            assert await usage(blobs, who) == (0, 0, 0)
    finally:
        await blobs.stop()


@pytest.fixture
async def redis_store(redis_server: RedisProcess) -> AsyncIterator[RedisStore]:
    s = await open_redis_store(redis_server.url)
    try:
        yield s
    finally:
        await s.close()


async def test_a_retried_reserve_or_release_counts_once(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    one = await node(redis_store, tmp_path / "blobs", clock)
    two = await node(redis_store, tmp_path / "blobs", clock)
    try:
        other = await upload(one, ALICE, 50, finish=False)
        entry = await upload(one, ALICE, 1000, finish=False)  # at max_uploads now
        assert isinstance(entry, BlobEntry) and isinstance(other, BlobEntry)
        again = BlobEntry(id=entry.id, owner=ALICE, size=1000, touched_ms=clock())
        # the same blob id again (a retry): neither refused by its own charge nor counted twice
        assert await two.reserve(again) is None
        assert await usage(two, ALICE) == (1050, 2, 2)
        one.index.completed(entry, clock())
        two.index.completed(again, clock())
        assert await usage(one, ALICE) == (1050, 2, 1)
        one.index.remove(entry.id)
        two.index.remove(entry.id)  # a second release of the same blob
        assert await usage(one, ALICE) == (50, 1, 1)
        assert await usage(two, None) == (50, 1, 1)
    finally:
        await one.stop()
        await two.stop()


async def test_a_node_writing_what_it_saw_earlier_does_not_reopen_a_finished_upload(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    one = await node(redis_store, tmp_path / "blobs", clock)
    two = await node(redis_store, tmp_path / "blobs", clock)
    try:
        entry = await upload(one, ALICE, 1000, finish=False)
        assert isinstance(entry, BlobEntry)
        seen = BlobEntry(id=entry.id, owner=ALICE, size=1000, touched_ms=clock())
        two.index.on_change = None  # node two adopts the upload, its record write delayed
        two.index.add(seen)
        one.index.completed(entry, clock())  # node one finishes it
        assert await usage(one, ALICE) == (1000, 1, 0)
        quota = two.quota
        assert isinstance(quota, RedisBlobQuota)
        quota._changed(seen)  # node two's late write of "unfinished"
        assert await usage(two, ALICE) == (1000, 1, 0)
        assert await usage(two, None) == (1000, 1, 0)
    finally:
        await one.stop()
        await two.stop()


async def test_reserves_racing_on_two_nodes_pass_the_quota_exactly(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    config = BlobConfig(quota_count=10, max_uploads=1000, total_bytes=10**9)
    one = await node(redis_store, tmp_path / "blobs", clock, config)
    two = await node(redis_store, tmp_path / "blobs", clock, config)
    try:
        entries = [
            BlobEntry(id=os.urandom(32), owner=ALICE, size=100, touched_ms=clock())
            for _ in range(40)
        ]
        results = await asyncio.gather(
            *((one if i % 2 else two).reserve(e) for i, e in enumerate(entries))
        )
        assert sum(r is None for r in results) == 10
        assert {r.code for r in results if r is not None} == {"quota_count"}
        assert await usage(one, ALICE) == (1000, 10, 10)
        assert len(one.index) + len(two.index) == 10  # only the charged ones are indexed
    finally:
        await one.stop()
        await two.stop()


async def test_a_record_whose_node_died_releases_itself_after_its_deadline(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    dead = await node(redis_store, tmp_path / "blobs", clock)
    assert code(await upload(dead, ALICE, 1000, finish=False)) == "ok"
    await dead.quota.flush()
    # the node dies: never sweeps, never releases (its task only stopped here)
    dead.index.on_change = None
    await dead.stop()
    alive = await node(redis_store, tmp_path / "other-blobs", clock)
    try:
        quota = alive.quota
        assert isinstance(quota, RedisBlobQuota)
        deadline_ms = int(CONFIG.partial_ttl_s * 1000) + quota.grace_ms
        clock.advance(deadline_ms - 1)
        assert code(await upload(alive, ALICE, 10)) == "ok"
        assert await usage(alive, ALICE) == (1010, 2, 1)
        clock.advance(2)
        assert code(await upload(alive, ALICE, 20)) == "ok"  # this reserve releases it
        assert await usage(alive, ALICE) == (30, 2, 0)
        assert await usage(alive, None) == (30, 2, 0)
    finally:
        await alive.stop()


async def test_a_running_upload_keeps_its_record_past_the_first_deadline(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    one = await node(redis_store, tmp_path / "blobs", clock)
    two = await node(redis_store, tmp_path / "other-blobs", clock)
    try:
        entry = await upload(one, ALICE, 1000, finish=False)
        assert isinstance(entry, BlobEntry)
        quota = one.quota
        assert isinstance(quota, RedisBlobQuota)
        await quota.flush()  # what the reserve queued is written
        first_deadline_ms = int(CONFIG.partial_ttl_s * 1000) + quota.grace_ms
        clock.advance(quota.refresh_ms)
        entry.touched_ms = clock()  # a chunk written, as the route does
        quota.touched(entry)
        await quota.flush()
        clock.advance(first_deadline_ms - quota.refresh_ms + 1)
        assert code(await upload(two, ALICE, 10)) == "ok"  # purges what is past its deadline
        assert await usage(two, ALICE) == (1010, 2, 1)  # the running upload is still charged
    finally:
        await one.stop()
        await two.stop()


async def test_blobs_on_disk_are_charged_again_when_their_records_were_lost(
    redis_store: RedisStore, tmp_path: Path, clock: ManualClock
) -> None:
    one = await node(redis_store, tmp_path / "blobs", clock)
    try:
        assert code(await upload(one, ALICE, 5000)) == "ok"
        assert code(await upload(one, ALICE, 700, finish=False)) == "ok"
    finally:
        await one.stop()
    await redis_store.client.flushall()  # the records are lost (Redis without its AOF)
    two = await node(redis_store, tmp_path / "blobs", clock)  # scans the shared directory
    try:
        assert await usage(two, ALICE) == (5700, 2, 1)
        assert await usage(two, None) == (5700, 2, 1)
    finally:
        await two.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with RedisProcess(appendfsync="always") as server:
        yield server


async def test_changes_while_redis_is_down_are_written_when_it_is_back(
    own_redis: RedisProcess, tmp_path: Path, clock: ManualClock
) -> None:
    store = await open_redis_store(own_redis.url)
    blobs = await node(store, tmp_path / "blobs", clock)
    try:
        upload_entry = await upload(blobs, ALICE, 4000, finish=False)
        done_entry = await upload(blobs, ALICE, 3000)
        assert isinstance(upload_entry, BlobEntry) and isinstance(done_entry, BlobEntry)
        assert await usage(blobs, ALICE) == (7000, 2, 1)
        own_redis.kill()
        blobs.index.completed(upload_entry, clock())  # the upload finishes meanwhile
        blobs.index.remove(done_entry.id)  # and the other blob goes
        with pytest.raises(StoreUnavailable):
            await upload(blobs, ALICE, 10)  # nothing can be charged without Redis
        with pytest.raises(StoreUnavailable):
            await blobs.quota.flush()
        await asyncio.to_thread(own_redis.start)
        async with asyncio.timeout(10):  # the background task retries every second
            while await blobs.quota.usage(ALICE) != (4000, 1, 0):
                await asyncio.sleep(0.1)
        assert await usage(blobs, None) == (4000, 1, 0)
    finally:
        await blobs.stop()
        await store.close()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterProcess]:
    with RedisClusterProcess(masters=3) as cluster:
        yield cluster


async def test_the_ledgers_work_on_a_three_master_cluster(
    redis_cluster: RedisClusterProcess, tmp_path: Path, clock: ManualClock
) -> None:
    owner_keys = blob_ledger_keys(ALICE)
    assert len({k[: k.index("}") + 1] for k in owner_keys}) == 1  # one hash tag, one slot
    store = await open_redis_store(redis_cluster.url, cluster=True)
    blobs = await node(store, tmp_path / "blobs", clock)
    try:
        for who in (ALICE, BOB):
            assert code(await upload(blobs, who, MIB)) == "ok"
            assert code(await upload(blobs, who, MIB)) == "ok"
        assert code(await upload(blobs, ALICE, MIB)) == "quota_bytes"
        assert code(await upload(blobs, CAROL, MIB + 1)) == "relay_full"
        assert await usage(blobs, None) == (4 * MIB, 4, 0)
        clock.advance(int(CONFIG.ttl_s * 1000) + MARGIN_MS)
        assert await blobs.sweep() == (4, 0)
        assert await usage(blobs, None) == (0, 0, 0)
        assert await usage(blobs, ALICE) == (0, 0, 0)
    finally:
        await blobs.stop()
        await store.close()
