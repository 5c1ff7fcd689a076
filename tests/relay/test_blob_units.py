"""Blob route units: the index's limits and removal rules, the blob directory's recovery at
start, the frames' validation and the relay flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from messenger_tui.core.blob_wire import (
    MAX_BLOB_CHUNK,
    BlobChunk,
    BlobCreate,
    BlobGet,
    blob_id_from_text,
    blob_id_text,
    decode_blob_client_frame,
    encode_blob_frame,
)
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.relay.blob_index import BlobConfig, BlobEntry, BlobIndex
from messenger_tui.relay.blob_store import BlobFiles
from messenger_tui.relay.command_args import build_parser, config_from_args

MIB = 1024 * 1024
ALICE, BOB = b"a" * 32, b"b" * 32


def test_index_refuses_over_each_limit_and_releases_on_removal() -> None:
    index = BlobIndex(BlobConfig(max_uploads=2, quota_count=3, total_bytes=5 * MIB))
    for _ in range(2):
        assert index.refusal(ALICE, MIB) is None
        index.add(BlobEntry(id=os.urandom(32), owner=ALICE, size=MIB))
    refusal = index.refusal(ALICE, MIB)
    assert refusal is not None and refusal.code == "too_many_uploads"
    assert index.refusal(BOB, MIB) is None  # only the uploader's count
    first = next(iter(index))
    index.completed(first, now_ms=1)
    assert index.usage(ALICE) == (2 * MIB, 2, 1)
    third = BlobEntry(id=os.urandom(32), owner=ALICE, size=MIB)
    index.add(third)
    index.completed(third, now_ms=2)
    refusal = index.refusal(ALICE, 1)
    assert refusal is not None and refusal.code == "quota_count"
    index.add(BlobEntry(id=os.urandom(32), owner=BOB, size=2 * MIB))
    refusal = index.refusal(BOB, MIB)
    assert refusal is not None and refusal.code == "relay_full"
    index.remove(first.id)
    assert index.usage(ALICE) == (2 * MIB, 2, 1) and index.total_bytes == 4 * MIB
    assert index.refusal(BOB, MIB) is None


def test_index_size_cap_admits_a_padded_max_size_file_only() -> None:
    config = BlobConfig(max_file_size=MIB)
    index = BlobIndex(config)
    assert MIB < config.max_blob_size < MIB * 1.07
    assert index.refusal(ALICE, config.max_blob_size) is None
    refusal = index.refusal(ALICE, config.max_blob_size + 1)
    assert refusal is not None and refusal.code == "too_large" and "1.0 MiB" in refusal.message


def test_due_removes_stale_uploads_after_a_day_and_blobs_after_30_days() -> None:
    day = 86_400_000
    index = BlobIndex(BlobConfig())
    partial = BlobEntry(id=os.urandom(32), owner=ALICE, size=10, touched_ms=0)
    done = BlobEntry(id=os.urandom(32), owner=ALICE, size=10, touched_ms=0)
    index.add(partial)
    index.add(done)
    index.completed(done, now_ms=0)
    assert index.due(day - 1) == []
    assert index.due(day) == [partial]
    assert index.due(30 * day) == [partial, done]


def test_scan_finishes_complete_parts_and_removes_strays(tmp_path: Path) -> None:
    files = BlobFiles(tmp_path / "blobs")
    files.prepare()
    full, half, long = (BlobEntry(id=os.urandom(32), owner=ALICE, size=100) for _ in range(3))
    for entry in (full, half, long):
        files.create(entry, now_ms=0)
    for entry, n in ((full, 100), (half, 40), (long, 101)):
        fd = files.open_part(entry.id)
        files.write(fd, 0, b"x" * n, sync=False)
        os.close(fd)
    (files.dir / "junk").write_bytes(b"?")
    (files.dir / (blob_id_text(os.urandom(32)) + ".part")).write_bytes(b"orphan")
    found = files.scan(now_ms=5_000)
    by_id = {e.id: e for e in found.entries}
    assert set(by_id) == {full.id, half.id}
    assert by_id[full.id].complete and by_id[full.id].touched_ms == 5_000
    assert not by_id[half.id].complete and by_id[half.id].offset == 40
    assert found.finished == 1 and found.removed == 4  # long's .part and .meta, two strays
    assert files.path(full.id).stat().st_size == 100
    assert sorted(p.name for p in files.dir.iterdir()) == sorted(
        [
            blob_id_text(full.id),
            blob_id_text(full.id) + ".meta",
            blob_id_text(half.id) + ".part",
            blob_id_text(half.id) + ".meta",
        ]
    )


def test_frames_are_validated() -> None:
    blob_id = os.urandom(32)
    assert blob_id_from_text(blob_id_text(blob_id)) == blob_id
    with pytest.raises(ValueError):
        blob_id_from_text("../" + blob_id_text(blob_id)[3:])
    bad: list[BlobGet | BlobCreate | BlobChunk] = [
        BlobGet(ref=1, id=b"short"),
        BlobCreate(ref=1, size=0),
        BlobChunk(id=blob_id, offset=-1, data=b"x"),
        BlobChunk(id=blob_id, offset=0, data=b""),
        BlobChunk(id=blob_id, offset=0, data=b"x" * (MAX_BLOB_CHUNK + 1)),
    ]
    for frame in bad:
        with pytest.raises(MalformedFrame):
            decode_blob_client_frame(encode_blob_frame(frame))
    with pytest.raises(MalformedFrame):
        decode_blob_client_frame("text")
    got = decode_blob_client_frame(encode_blob_frame(BlobGet(ref=1, id=blob_id)))
    assert isinstance(got, BlobGet) and got.id == blob_id


def test_relay_flags_set_the_blob_limits(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            *("--data", str(tmp_path), "--blob-max-size", "1000", "--blob-quota-bytes", "5000"),
            *("--blob-dir", str(tmp_path / "b"), "--blob-ttl-days", "2"),
        ]
    )
    blob = config_from_args(args).blob
    assert (blob.max_file_size, blob.quota_bytes, blob.ttl_s) == (1000, 5000, 2 * 86_400)
    assert blob.directory(tmp_path) == tmp_path / "b"
    default = config_from_args(build_parser().parse_args(["--data", str(tmp_path)])).blob
    assert default.max_file_size == 100 * MIB and default.directory(tmp_path) == tmp_path / "blobs"
    with pytest.raises(ValueError):
        config_from_args(build_parser().parse_args(["--blob-quota-bytes", "0"]))
    # downloads read ahead 4 chunks by default; 0 (read after each send) to 64
    assert default.read_ahead == 4
    ahead = build_parser().parse_args(["--data", str(tmp_path), "--blob-read-ahead", "0"])
    assert config_from_args(ahead).blob.read_ahead == 0
    with pytest.raises(ValueError, match="read_ahead"):
        config_from_args(build_parser().parse_args(["--blob-read-ahead", "65"]))


def test_a_shared_directory_scan_spares_young_strays_and_load_reads_one_blob(
    tmp_path: Path,
) -> None:
    """Several nodes on one blob directory (relay/blob_shared.py rules 1 and 4)."""
    files = BlobFiles(tmp_path / "blobs")
    files.prepare()
    upload = BlobEntry(id=os.urandom(32), owner=ALICE, size=100)
    files.create(upload, now_ms=0)  # another node, between writing .meta and the chunks
    os.unlink(files.path(upload.id, ".part"))
    young = files.dir / "junk"
    young.write_bytes(b"?")
    now_ms = os.stat(young).st_mtime_ns // 1_000_000 + 1_000
    found = files.scan(now_ms=now_ms, stray_grace_ms=3_600_000)
    assert found.entries == [] and found.removed == 0  # nothing young is removed
    assert young.exists() and files.path(upload.id, ".meta").exists()
    assert files.load(upload.id) is None  # no data file yet: not a blob
    fd = os.open(files.path(upload.id, ".part"), os.O_WRONLY | os.O_CREAT, 0o600)
    files.write(fd, 0, b"x" * 40, sync=False)
    loaded = files.load(upload.id)
    assert loaded is not None and (loaded.offset, loaded.complete) == (40, False)
    files.write(fd, 40, b"y" * 60, sync=False)
    files.finish(upload.id, fd, now_ms=7_000)
    loaded = files.load(upload.id)
    assert loaded is not None and loaded.complete and loaded.touched_ms == 7_000
    assert loaded.owner == ALICE and loaded.size == 100
    assert files.load(os.urandom(32)) is None
    # an old stray goes, as on one node
    found = files.scan(now_ms=now_ms + 3_600_000, stray_grace_ms=3_600_000)
    assert found.removed == 1 and not young.exists()
