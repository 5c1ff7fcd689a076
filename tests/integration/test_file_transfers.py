"""Files between two real clients (the MessengerService) through a real relay process:
byte-identical round trip with a progress trail, an over-limit file offered then downloaded
on request, and a tampered blob refused with no file written."""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

MIB = 1024 * 1024

pytestmark = pytest.mark.slow


def random_file(path: Path, size: int, marker: bytes = b"") -> Path:
    with path.open("wb") as f:
        left = size - len(marker)
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
        f.write(marker)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def incoming_transfer(bob: MessengerService, timeout: float = 30.0) -> int:
    await wait_for(lambda: any(t.direction == "down" for t in bob.transfers()), timeout)
    return next(t.id for t in bob.transfers() if t.direction == "down")


async def test_a_file_arrives_byte_identical_with_progress(tmp_path: Path) -> None:
    src = random_file(tmp_path / "report 1.pdf", 3 * MIB + 12345)
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            bob.set_download_dir(tmp_path / "downloads")
            await bob.start()
            events = alice.subscribe()
            sent = await alice.send_file(alice.contact("bob").id, src)
            assert sent.status == "encrypting" and sent.size == src.stat().st_size
            done = await alice.wait_transfer(sent.id, 60)
            assert done.status == "done", done.error
            assert await alice.wait_outbox_empty(20)
            got_id = await incoming_transfer(bob)
            got = await bob.wait_transfer(got_id, 60)
            assert got.status == "done", got.error
            assert got.path is not None and Path(got.path).name == "report 1.pdf"
            assert sha(Path(got.path)) == sha(src) == got.sha256
            assert got.mime_type == "application/pdf"
            message = bob.message(got.message_row or 0)
            assert message is not None and message.kind == "attachment"
            trail = []
            while not events.empty():
                event = events.get_nowait()
                if isinstance(event, ev.TransferChanged):
                    trail.append(event.transfer)
            statuses = list(dict.fromkeys(v.status for v in trail))
            assert statuses == ["encrypting", "uploading", "sending", "done"], statuses
            assert trail[-1].done == trail[-1].total == sent.total
            # spool files are gone once done
            assert not list((tmp_path / "alice" / "transfers").glob("*"))
            assert not list((tmp_path / "bob" / "transfers").glob("*"))


async def test_over_the_limit_waits_for_a_request_then_a_second_copy_gets_a_suffix(
    tmp_path: Path,
) -> None:
    src = random_file(tmp_path / "big.bin", 2 * MIB)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "big.bin").write_bytes(b"already here")
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            bob.update_settings(auto_download_kib=1024, download_dir=str(downloads))
            await bob.start()
            sent = await alice.send_file(alice.contact("bob").id, src)
            assert (await alice.wait_transfer(sent.id, 60)).status == "done"
            got_id = await incoming_transfer(bob)
            await wait_for(lambda: bob.transfer(got_id).status == "offered", 10)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            assert bob.transfer(got_id).status == "offered"  # type: ignore[union-attr]
            bob.download_file(got_id)
            got = await bob.wait_transfer(got_id, 60)
            assert got.status == "done", got.error
            assert Path(got.path or "").name == "big (1).bin"
            assert (downloads / "big.bin").read_bytes() == b"already here"
            assert sha(Path(got.path or "")) == sha(src)


async def test_a_flipped_byte_on_the_relay_fails_clearly_and_writes_no_file(
    tmp_path: Path,
) -> None:
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    src = random_file(tmp_path / "secret.txt", 1 * MIB, marker)
    downloads = tmp_path / "downloads"
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            bob.update_settings(auto_download_kib=0)
            bob.set_download_dir(downloads)
            await bob.start()
            sent = await alice.send_file(alice.contact("bob").id, src)
            assert (await alice.wait_transfer(sent.id, 60)).status == "done"
            got_id = await incoming_transfer(bob)
            await wait_for(lambda: bob.transfer(got_id).status == "offered", 10)  # type: ignore[union-attr]
            blobs = [p for p in relay.data_dir.rglob("*") if p.is_file() and p.stat().st_size > MIB]
            assert len(blobs) == 1, blobs
            with blobs[0].open("r+b") as f:  # one byte inside the 5th chunk
                f.seek(4 * 65552 + 1000)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0x01]))
            for path in relay.data_dir.rglob("*"):
                if path.is_file():
                    assert marker not in path.read_bytes(), path
            bob.download_file(got_id)
            got = await bob.wait_transfer(got_id, 60)
            assert got.status == "failed"
            assert got.error is not None
            assert "integrity" in got.error and "chunk 5 of" in got.error, got.error
            assert not downloads.exists() or list(downloads.iterdir()) == []
            assert not list((tmp_path / "bob" / "transfers").glob("*"))


async def text_round_trips(
    alice: MessengerService, bob: MessengerService, n: int, *, during: Callable[[], bool]
) -> list[float]:
    """Seconds from alice's send_text to bob's MessageReceived, ``n`` times while
    ``during()`` holds."""
    queue = bob.subscribe()
    times: list[float] = []
    try:
        for i in range(n):
            if not during():
                break
            start = time.perf_counter()
            await alice.send_text(alice.contact("bob").id, f"ping {i}")
            while True:
                event = await asyncio.wait_for(queue.get(), 10)
                if isinstance(event, ev.MessageReceived) and event.message.text == f"ping {i}":
                    break
            times.append(time.perf_counter() - start)
            await asyncio.sleep(0.02)
    finally:
        bob.unsubscribe(queue)
    return times


async def test_a_text_round_trip_during_a_200_mib_upload_stays_within_2x_idle(
    tmp_path: Path,
) -> None:
    """Both clients run in this process (one event loop), alice uploading 200 MiB on the
    same loop as her chat: the text still makes it within twice its idle median."""
    src = random_file(tmp_path / "big.bin", 200 * MIB)
    with RelayProcess(
        tmp_path / "relay-data", extra_args=["--blob-max-size", str(300 * MIB)]
    ) as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            await alice.start()
            await bob.start()
            await text_round_trips(alice, bob, 5, during=lambda: True)  # warm up
            idle = statistics.median(await text_round_trips(alice, bob, 30, during=lambda: True))
            sent = await alice.send_file(alice.contact("bob").id, src)

            def uploading() -> bool:
                view = alice.transfer(sent.id)
                return view is not None and view.status in ("encrypting", "uploading")

            await wait_for(lambda: alice.transfer(sent.id).status == "uploading", 60)  # type: ignore[union-attr]
            busy_samples = await text_round_trips(alice, bob, 30, during=uploading)
            still_uploading = uploading()
            done = await alice.wait_transfer(sent.id, 120)
            assert done.status == "done", done.error
            assert len(busy_samples) >= 15, f"only {len(busy_samples)} samples during the upload"
            busy = statistics.median(busy_samples)
            print(
                f"\ntext round trip: idle {idle * 1000:.1f} ms, during the upload "
                f"{busy * 1000:.1f} ms ({len(busy_samples)} samples, upload still running "
                f"after them: {still_uploading})"
            )
            assert busy <= 2 * idle


async def test_a_strangers_file_waits_for_a_request_however_small(tmp_path: Path) -> None:
    src = random_file(tmp_path / "tiny.txt", 2000)
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "carol", relay.url) as carol,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            bob.set_download_dir(tmp_path / "downloads")
            await bob.start()
            await carol.connect(timeout=10)
            carol.add_contact(bob.address, "bob")  # bob never added carol
            sent = await carol.send_file(carol.contact("bob").id, src)
            assert (await carol.wait_transfer(sent.id, 60)).status == "done"
            got_id = await incoming_transfer(bob)
            await wait_for(lambda: bob.transfer(got_id).status == "offered", 10)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            assert bob.transfer(got_id).status == "offered"  # type: ignore[union-attr]
            assert not (tmp_path / "downloads").exists()
            bob.download_file(got_id)
            assert (await bob.wait_transfer(got_id, 60)).status == "done"
