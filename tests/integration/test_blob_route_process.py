"""The blob route through a real relay process: uploads and downloads byte-identical, resumed
after a dropped connection, a client restart and a relay SIGKILL; quota and size-cap
refusals; unauthenticated and foreign access refused; no plaintext on the relay's disk.
Every test runs over both stores: SQLite (the quotas in the node's index) and a real
redis-server (the quotas in Redis, relay/redis_blob_quota.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from messenger_tui.core import wire
from messenger_tui.core.attachments import AttachmentDecryptor, AttachmentEncryptor
from messenger_tui.core.blob_wire import (
    DEFAULT_BLOB_WINDOW,
    BlobChunk,
    BlobCreate,
    BlobCreated,
    BlobGet,
    BlobResume,
    decode_blob_relay_frame,
    encode_blob_frame,
)
from messenger_tui.transport import Backoff
from messenger_tui.transport.blob_link import (
    WRITE_BATCH,
    BlobLink,
    BlobRefused,
    BlobUploadState,
)
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import make_auth, new_key
from tests.transport.conftest import Identity

MIB = 1024 * 1024
#: What a resumed upload may send twice: the window of unacknowledged chunks.
WINDOW_BYTES = DEFAULT_BLOB_WINDOW * 64 * 1024  # the relay asks for 64 KiB chunks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def blob_redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def relay_store(request: pytest.FixtureRequest) -> str:
    """The relay's ``--store``: SQLite, or an emptied real redis-server."""
    if request.param == "sqlite":
        return "sqlite"
    server: RedisProcess = request.getfixturevalue("blob_redis")
    server.cli("FLUSHALL")
    return server.url


def make_link(url: str, who: Identity | None = None, window: float = 20.0) -> BlobLink:
    who = who or Identity.generate()
    return BlobLink(
        url,
        who.public,
        who.sign,
        connect_timeout=3.0,
        retry_window_s=window,
        backoff=Backoff(base=0.05, cap=0.3),
    )


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


async def test_20_mib_upload_and_download_are_byte_identical(
    tmp_path: Path, relay_store: str
) -> None:
    src = random_file(tmp_path / "blob", 20 * MIB + 12345)
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        up = make_link(relay.url)
        states: list[BlobUploadState] = []
        progress: list[int] = []
        sent = await up.upload(
            src, on_state=states.append, on_progress=lambda d, t: progress.append(d)
        )
        assert states and states[0].id == sent.id and states[0].size == src.stat().st_size
        assert sent.resent == 0 and sent.connections == 1
        assert progress[-1] == src.stat().st_size and progress == sorted(progress)
        # anyone who knows the id downloads it
        dest = tmp_path / "got"
        got = await make_link(relay.url).download(sent.id, dest)
        assert got.size == src.stat().st_size and sha(dest) == sha(src)
        stored = list((relay.data_dir / "blobs").iterdir())
        assert [p.suffix for p in stored if p.suffix] == [".meta"] and len(stored) == 2
        assert all(p.stat().st_mode & 0o077 == 0 for p in stored)
        assert sent.id.hex() not in relay.log_text()


async def test_dropped_connection_resumes_from_the_stored_offset(
    tmp_path: Path, relay_store: str
) -> None:
    size = 12 * MIB
    src = random_file(tmp_path / "blob", size)
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        link = make_link(relay.url)
        dropped: list[int] = []

        def on_progress(done: int, total: int) -> None:
            if done >= total * 0.4 and not dropped:
                dropped.append(done)
                link.abort_connection()

        sent = await link.upload(src, on_progress=on_progress)
        assert dropped and sent.connections == 2
        assert sent.resent <= WINDOW_BYTES, sent.resent
        dest = tmp_path / "got"
        # a download cut short resumes from the file's length
        got_link = make_link(relay.url)
        cut: list[int] = []

        def cut_download(done: int, total: int) -> None:
            if done >= total // 2 and not cut:
                cut.append(done)
                got_link.abort_connection()

        got = await got_link.download(sent.id, dest, on_progress=cut_download)
        # fetched twice: what was received but not yet written when the connection dropped
        # (the client writes in batches of WRITE_BATCH; frames already in its buffer when it
        # cut the connection still arrive, so under load this can exceed the window)
        assert cut and got.connections == 2 and got.resent < WRITE_BATCH, got.resent
        assert sha(dest) == sha(src)


async def test_client_restart_resumes_with_the_saved_state(
    tmp_path: Path, relay_store: str
) -> None:
    size = 10 * MIB
    src = random_file(tmp_path / "blob", size)
    who = Identity.generate()
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        states: list[BlobUploadState] = []
        halfway = asyncio.Event()

        def at_half(done: int, total: int) -> None:
            if done >= total // 2:
                halfway.set()

        first = make_link(relay.url, who)
        task = asyncio.create_task(
            first.upload(
                src,
                on_state=states.append,
                on_progress=at_half,
            )
        )
        await asyncio.wait_for(halfway.wait(), 30)
        task.cancel()  # the client process "dies" here
        with pytest.raises(asyncio.CancelledError):
            await task
        state = BlobUploadState(id=states[0].id, size=size)
        second = await make_link(relay.url, who).upload(src, resume=state)
        assert second.id == state.id
        assert second.wire_bytes <= size - size // 2 + WINDOW_BYTES, second.wire_bytes
        # another identity cannot take the upload over
        with pytest.raises(BlobRefused) as info:
            await make_link(relay.url).upload(src, resume=state)
        assert info.value.code == "forbidden"
        dest = tmp_path / "got"
        await make_link(relay.url).download(state.id, dest)
        assert sha(dest) == sha(src)


async def test_relay_sigkill_mid_upload_resumes_after_restart(
    tmp_path: Path, relay_store: str
) -> None:
    size = 16 * MIB
    src = random_file(tmp_path / "blob", size)
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        link = make_link(relay.url, window=30.0)
        killed = asyncio.Event()

        def at_forty_percent(done: int, total: int) -> None:
            if done >= total * 0.4:
                killed.set()

        task = asyncio.create_task(link.upload(src, on_progress=at_forty_percent))
        await asyncio.wait_for(killed.wait(), 30)
        relay.kill()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(relay.restart)
        sent = await asyncio.wait_for(task, 60)
        assert sent.connections >= 2
        assert sent.resent <= WINDOW_BYTES, sent.resent
        dest = tmp_path / "got"
        await make_link(relay.url).download(sent.id, dest)
        assert sha(dest) == sha(src)


async def test_size_cap_and_quotas_are_refused_with_clear_errors(
    tmp_path: Path, relay_store: str
) -> None:
    args = [
        "--blob-max-size", str(1 * MIB),
        "--blob-quota-bytes", str(2 * MIB + MIB // 2),
        "--blob-quota-count", "3",
    ]  # fmt: skip
    big = random_file(tmp_path / "big", 2 * MIB)
    one = random_file(tmp_path / "one", 1 * MIB)
    small = random_file(tmp_path / "small", 1000)
    with RelayProcess(tmp_path / "relay-data", extra_args=args, store=relay_store) as relay:
        link = make_link(relay.url)
        with pytest.raises(BlobRefused) as info:
            await link.upload(big)
        assert info.value.code == "too_large"
        assert "over this relay's limit" in str(info.value) and "1.0 MiB" in str(info.value)
        await link.upload(one)
        await link.upload(one)
        with pytest.raises(BlobRefused) as info:
            await link.upload(one)
        assert info.value.code == "quota_bytes" and "quota of 2.5 MiB" in str(info.value)
        await link.upload(small)  # the third blob still fits the bytes
        with pytest.raises(BlobRefused) as info:
            await link.upload(small)
        assert info.value.code == "quota_count" and "3 blobs" in str(info.value)
        # another identity has its own quota
        await make_link(relay.url).upload(one)
        assert "Traceback" not in relay.stderr_text()


async def _raw(url: str, *, auth: bool = True):  # type: ignore[no-untyped-def]
    ws = await connect(url + "/blob", compression=None, max_size=None, ping_interval=None)
    challenge = wire.decode_relay_frame(await ws.recv())
    assert isinstance(challenge, wire.Challenge)
    if auth:
        await ws.send(wire.encode(make_auth(new_key(), challenge)))
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.AuthOk)
    return ws


async def test_unauthenticated_and_wrong_id_access_is_refused(
    tmp_path: Path, relay_store: str
) -> None:
    src = random_file(tmp_path / "blob", 300_000)
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        owner = make_link(relay.url)
        sent = await owner.upload(src)
        # before authenticating: no blob request is served
        ws = await _raw(relay.url, auth=False)
        await ws.send(encode_blob_frame(BlobGet(ref=1, id=sent.id)))
        err = decode_blob_relay_frame(await ws.recv())
        assert isinstance(err, wire.Error) and err.code == "unauthenticated"
        await ws.close()
        # an unknown id: not found (ids are 256 random bits)
        with pytest.raises(BlobRefused) as info:
            await make_link(relay.url).download(os.urandom(32), tmp_path / "x")
        assert info.value.code == "not_found"
        # another identity may download, but not resume or write the owner's upload
        ws = await _raw(relay.url)
        await ws.send(encode_blob_frame(BlobCreate(ref=1, size=1000)))
        created = decode_blob_relay_frame(await ws.recv())
        assert isinstance(created, BlobCreated)
        other = await _raw(relay.url)
        await other.send(encode_blob_frame(BlobResume(ref=2, id=created.id)))
        err = decode_blob_relay_frame(await other.recv())
        assert isinstance(err, wire.Error) and err.code == "forbidden"
        await other.send(encode_blob_frame(BlobChunk(id=created.id, offset=0, data=b"x" * 10)))
        err = decode_blob_relay_frame(await other.recv())
        assert isinstance(err, wire.Error) and err.code == "forbidden"
        # an unfinished blob cannot be downloaded
        await other.send(encode_blob_frame(BlobGet(ref=3, id=created.id)))
        err = decode_blob_relay_frame(await other.recv())
        assert isinstance(err, wire.Error) and err.code == "incomplete"
        # a chunk past the declared size is refused
        await ws.send(encode_blob_frame(BlobChunk(id=created.id, offset=0, data=b"x" * 1001)))
        err = decode_blob_relay_frame(await ws.recv())
        assert isinstance(err, wire.Error) and err.code == "too_large"
        await ws.close()
        await other.close()


async def test_expired_blobs_and_stale_uploads_are_removed(
    tmp_path: Path, relay_store: str
) -> None:
    args = [
        "--blob-ttl-days", str(3 / 86400),  # 3 s
        "--blob-partial-ttl-hours", str(2 / 3600),  # 2 s
        "--blob-sweep-interval", "0.2",
    ]  # fmt: skip
    src = random_file(tmp_path / "blob", 200_000)
    with RelayProcess(tmp_path / "relay-data", extra_args=args, store=relay_store) as relay:
        sent = await make_link(relay.url).upload(src)
        ws = await _raw(relay.url)
        await ws.send(encode_blob_frame(BlobCreate(ref=1, size=5000)))
        assert isinstance(decode_blob_relay_frame(await ws.recv()), BlobCreated)
        await ws.close()
        blobs = relay.data_dir / "blobs"
        assert len([p for p in blobs.iterdir() if p.suffix == ".part"]) == 1
        await asyncio.sleep(2.6)  # the stale upload is gone, the finished blob is not
        names = sorted(p.name for p in blobs.iterdir())
        assert not any(n.endswith(".part") for n in names) and len(names) == 2, names
        await make_link(relay.url).download(sent.id, tmp_path / "got")
        await asyncio.sleep(1.2)
        assert list(blobs.iterdir()) == []
        with pytest.raises(BlobRefused) as info:
            await make_link(relay.url).download(sent.id, tmp_path / "got2")
        assert info.value.code == "not_found"
        assert "removed 1 expired" in relay.log_text()


async def test_no_plaintext_reaches_the_relay_disk(tmp_path: Path, relay_store: str) -> None:
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    plain = (os.urandom(100_000) + marker) * 30
    enc = AttachmentEncryptor.start(len(plain))
    blob = tmp_path / "blob"
    with blob.open("wb") as f:
        at = 0
        while not enc.done:
            n = enc.next_real_len
            f.write(enc.encrypt_next(plain[at : at + n]))
            at += n
    with RelayProcess(tmp_path / "relay-data", store=relay_store) as relay:
        sent = await make_link(relay.url).upload(blob)
        got = tmp_path / "got"
        await make_link(relay.url).download(sent.id, got)
        for path in relay.data_dir.rglob("*"):
            if path.is_file():
                assert marker not in path.read_bytes(), path
        dec = AttachmentDecryptor(enc.key, enc.digest, len(plain))
        data, out, at = got.read_bytes(), [], 0
        while not dec.done:
            n = dec.next_unit_len
            out.append(dec.decrypt_next(data[at : at + n]))
            at += n
        dec.finish()
        assert b"".join(out) == plain
