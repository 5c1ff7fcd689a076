"""Blob quotas across relay nodes (issue 16, "quotas and limits must hold across nodes"): two
relay processes on one real redis-server and one shared blob directory. An identity uploading
through both nodes is refused at its quota (not twice it), with the refusal a single SQLite
node gives; creates racing on both nodes cannot together pass a per-identity or the
relay-wide limit; expiry and abandoned uploads release their charge; Redis SIGKILLed in the
middle of an upload gives 1013 to a create (no traceback), and nothing is miscounted once it
is back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import nacl.signing
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from messenger_tui.core.blob_wire import (
    BlobCreate,
    BlobCreated,
    decode_blob_relay_frame,
    encode_blob_frame,
)
from messenger_tui.relay.redis_keys import blob_ledger_keys
from messenger_tui.transport import Backoff
from messenger_tui.transport.blob_link import BlobLink, BlobRefused
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import make_auth, new_key
from tests.transport.conftest import Identity

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
QUOTA_ARGS = [
    "--blob-max-size", str(1 * MIB),
    "--blob-quota-bytes", str(2 * MIB + MIB // 2),
    "--blob-quota-count", "3",
]  # fmt: skip


def make_link(url: str, who: Identity, window: float = 20.0) -> BlobLink:
    return BlobLink(
        url,
        who.public,
        who.sign,
        connect_timeout=3.0,
        retry_window_s=window,
        backoff=Backoff(base=0.05, cap=0.3),
    )


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def usage(redis_url: str, owner: bytes | None) -> tuple[int, int, int]:
    """(bytes, blobs, unfinished uploads) the Redis ledger of ``owner`` (None: the relay)
    holds, read from Redis itself; checked against its per-blob records."""
    counters, records, _ = blob_ledger_keys(owner)
    with redis.Redis.from_url(redis_url) as r:
        b, n, u = (int(v or 0) for v in r.hmget(counters, ["b", "n", "u"]))
        recs = [v.decode().split(",") for v in r.hvals(records)]
    assert (b, n, u) == (
        sum(int(size) for size, _ in recs),
        len(recs),
        sum(state == "u" for _, state in recs),
    ), "the counters are the sum of the records"
    return b, n, u


async def until_usage(
    redis_url: str, owner: bytes | None, wanted: tuple[int, int, int], *, within_s: float
) -> None:
    """Wait until the ledger of ``owner`` shows ``wanted`` (a sweep runs every 0.2 s)."""
    seen = usage(redis_url, owner)
    try:
        async with asyncio.timeout(within_s):
            while seen != wanted:
                await asyncio.sleep(0.1)
                seen = usage(redis_url, owner)
    except TimeoutError:
        raise AssertionError(f"the ledger holds {seen}, not {wanted}") from None


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess(appendfsync="always") as server:
        yield server


def two_nodes(
    stack: ExitStack, tmp_path: Path, redis_server: RedisProcess, extra: list[str]
) -> tuple[RelayProcess, RelayProcess]:
    args = ["--blob-dir", str(tmp_path / "shared-blobs"), *extra]
    node1, node2 = (
        stack.enter_context(
            RelayProcess(tmp_path / f"node{i}", store=redis_server.url, extra_args=args)
        )
        for i in (1, 2)
    )
    return node1, node2


async def refusals_of_the_quota_sequence(
    urls: list[str], tmp_path: Path
) -> list[tuple[str, str] | None]:
    """One identity uploads, through ``urls`` in turn: 1 MiB, 1 MiB, 1 MiB (over the bytes
    quota), 1000 bytes, 1000 bytes (over the count quota); what each got."""
    who = Identity.generate()
    one = random_file(tmp_path / "one", 1 * MIB)
    small = random_file(tmp_path / "small", 1000)
    out: list[tuple[str, str] | None] = []
    for i, src in enumerate((one, one, one, small, small)):
        try:
            await make_link(urls[i % len(urls)], who).upload(src)
            out.append(None)
        except BlobRefused as exc:
            out.append((exc.code, str(exc)))
    return out


async def test_an_identity_on_two_nodes_is_refused_at_its_quota_as_on_one_node(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    with RelayProcess(tmp_path / "single", extra_args=QUOTA_ARGS) as single:
        alone = await refusals_of_the_quota_sequence([single.url], tmp_path)
    with ExitStack() as stack:
        node1, node2 = two_nodes(stack, tmp_path, redis_server, QUOTA_ARGS)
        both = await refusals_of_the_quota_sequence([node1.url, node2.url], tmp_path)
        for node in (node1, node2):
            assert "Traceback" not in node.stderr_text()
    assert alone[0] is None and alone[1] is None and alone[3] is None
    assert alone[2] is not None and alone[2][0] == "quota_bytes"
    assert alone[4] is not None and alone[4][0] == "quota_count"
    assert both == alone  # the same refusals, word for word: the quota is not per node


async def _authenticated(url: str, key: nacl.signing.SigningKey) -> ClientConnection:
    ws = await connect(url + "/blob", compression=None, max_size=None, ping_interval=None)
    challenge = wire.decode_relay_frame(await ws.recv())
    assert isinstance(challenge, wire.Challenge)
    await ws.send(wire.encode(make_auth(key, challenge)))
    assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.AuthOk)
    return ws


async def race_creates(
    urls: list[str], keys: list[nacl.signing.SigningKey], size: int
) -> list[str]:
    """Every key creates an upload of ``size`` bytes through its url, all at once (the
    connections are authenticated first); "created" or the refusal code of each."""
    conns = await asyncio.gather(*(_authenticated(u, k) for u, k in zip(urls, keys)))
    await asyncio.gather(
        *(ws.send(encode_blob_frame(BlobCreate(ref=1, size=size))) for ws in conns)
    )
    replies = await asyncio.gather(*(ws.recv() for ws in conns))
    await asyncio.gather(*(ws.close() for ws in conns))
    out = []
    for data in replies:
        frame = decode_blob_relay_frame(data)
        out.append("created" if isinstance(frame, BlobCreated) else getattr(frame, "code", "?"))
    return out


async def test_creates_racing_on_two_nodes_cannot_pass_a_limit_together(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    args = ["--blob-quota-count", "4", "--blob-max-uploads", "100", "--blob-total-bytes", "50000"]
    with ExitStack() as stack:
        node1, node2 = two_nodes(stack, tmp_path, redis_server, args)
        urls = [node1.url, node2.url] * 6
        # one identity, 12 creates at once, half through each node: 4 pass, not 8
        key = new_key()
        got = await race_creates(urls, [key] * 12, 1000)
        assert sorted(got) == ["created"] * 4 + ["quota_count"] * 8, got
        owner = bytes(key.verify_key)
        assert usage(redis_server.url, owner) == (4000, 4, 4)
        # 12 identities, 10,000 bytes each, at once, against the relay-wide 50,000 bytes
        # of which 4,000 are taken: 4 pass, not 8
        got = await race_creates(urls, [new_key() for _ in range(12)], 10_000)
        assert sorted(got) == ["created"] * 4 + ["relay_full"] * 8, got
        assert usage(redis_server.url, None) == (44_000, 8, 8)
        for node in (node1, node2):
            assert "Traceback" not in node.stderr_text()


async def test_expiry_and_abandoned_uploads_release_the_quota_across_nodes(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    args = [
        "--blob-quota-count", "2",
        "--blob-ttl-days", str(8 / 86400),  # 8 s
        "--blob-partial-ttl-hours", str(2 / 3600),  # 2 s
        "--blob-sweep-interval", "0.2",
    ]  # fmt: skip
    with ExitStack() as stack:
        node1, node2 = two_nodes(stack, tmp_path, redis_server, args)
        who = Identity.generate()
        key = who.key
        src = random_file(tmp_path / "blob", 5000)
        await make_link(node1.url, who).upload(src)  # a finished blob, via node 1
        assert await race_creates([node2.url], [key], 3000) == ["created"]  # abandoned, node 2
        assert usage(redis_server.url, who.public) == (8000, 2, 1)
        assert await race_creates([node1.url], [key], 10) == ["quota_count"]
        # node 2's sweep removes the abandoned upload: its charge is released everywhere
        await until_usage(redis_server.url, who.public, (5000, 1, 0), within_s=6.0)
        assert await race_creates([node1.url], [key], 10) == ["created"]  # abandoned, node 1
        # node 1's sweep removes the expired blob and, later, its own abandoned upload
        await until_usage(redis_server.url, who.public, (0, 0, 0), within_s=12.0)
        assert usage(redis_server.url, None) == (0, 0, 0)
        assert list((tmp_path / "shared-blobs").iterdir()) == []


async def test_redis_killed_mid_upload_gives_1013_and_miscounts_nothing(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        node1, node2 = two_nodes(stack, tmp_path, redis_server, [])
        who = Identity.generate()
        size = 8 * MIB
        src = random_file(tmp_path / "blob", size)
        killed: list[int] = []

        def progress(done: int, total: int) -> None:
            if done >= total // 3 and not killed:
                redis_server.kill()  # right here: a third of the upload acknowledged
                killed.append(done)

        upload = asyncio.create_task(
            make_link(node1.url, who, window=60.0).upload(src, on_progress=progress)
        )
        # the upload's chunks need no Redis: it finishes; its completion waits for Redis
        sent = await asyncio.wait_for(upload, 60)
        assert sent.size == size and killed and killed[0] < size
        # a new upload cannot be charged: the connection closes 1013 (try again later)
        ws = await _authenticated(node2.url, who.key)
        await ws.send(encode_blob_frame(BlobCreate(ref=1, size=1000)))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 15)
        assert ws.close_code == 1013, ws.close_reason
        # a client retries within its window and gets through once Redis is back
        retried = asyncio.create_task(
            make_link(node2.url, who, window=60.0).upload(random_file(tmp_path / "s", 1000))
        )
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.start)
        await asyncio.wait_for(retried, 60)
        # nothing is miscounted: the finished 8 MiB blob and the 1000-byte one, no upload
        try:
            async with asyncio.timeout(10):
                while usage(redis_server.url, who.public) != (size + 1000, 2, 0):
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(
                f"{usage(redis_server.url, who.public)}\n{node1.stderr_text()[-3000:]}\n"
                f"{node2.stderr_text()[-3000:]}"
            ) from None
        assert usage(redis_server.url, None) == (size + 1000, 2, 0)
        for node in (node1, node2):
            text = node.stderr_text()
            assert "Traceback" not in text
        assert "storage unavailable" in node2.stderr_text()
