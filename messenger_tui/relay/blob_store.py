"""Blob files under the relay's blob directory (never in SQLite). Blocking calls: the blob
route runs every one of them in a worker thread (``asyncio.to_thread``), never on the loop.

Per blob, named by its id in lowercase base32 (:func:`~messenger_tui.core.blob_wire.blob_id_text`)::

    <id>.meta    msgpack {owner, size, created_ms}, written once (temporary file, fsync, rename)
    <id>.part    the upload so far, written with os.pwrite at the stored offset
    <id>         the finished blob: the .part fsynced and renamed once ``size`` bytes are in

All files are 0600 in a 0700 directory. :meth:`BlobFiles.scan` rebuilds the index at start:
an upload resumes from its ``.part`` file's length; a ``.part`` already complete (the relay
stopped between the last write and the rename) is finished; anything without a readable
``.meta``, or longer than its declared size, is removed.

Several relay nodes share one blob directory (docs/operations.md): :meth:`BlobFiles.load`
reads one blob's state from the files (what another node wrote), and a scan given a
``stray_grace_ms`` leaves alone stray files younger than that (another node may be between
two steps of :meth:`BlobFiles.create` right now).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from messenger_tui.core.blob_wire import blob_id_from_text, blob_id_text
from messenger_tui.relay.blob_index import BlobEntry

META: Final = ".meta"
PART: Final = ".part"
TMP: Final = ".tmp"


class _Meta(msgspec.Struct, frozen=True):
    owner: bytes
    size: int
    created_ms: int


_meta_decoder = msgspec.msgpack.Decoder(_Meta)
_encode = msgspec.msgpack.Encoder().encode


@dataclass
class ScanResult:
    """What :meth:`BlobFiles.scan` found."""

    entries: list[BlobEntry]
    removed: int  # stray or broken files deleted
    finished: int  # complete .part files renamed


class BlobFiles:
    """The blob directory. Every method blocks (file I/O)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, blob_id: bytes, suffix: str = "") -> Path:
        return self.dir / (blob_id_text(blob_id) + suffix)

    # --------------------------------------------------------------------- start

    def prepare(self) -> None:
        """Create the directory 0700 (or restrict it)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def scan(self, now_ms: int, stray_grace_ms: int = 0) -> ScanResult:
        """Every blob on disk as an index entry; stray files removed (only those last
        modified ``stray_grace_ms`` or longer ago)."""
        entries: list[BlobEntry] = []
        removed = finished = 0
        names = set(os.listdir(self.dir))
        known: set[str] = set()
        for name in sorted(names):
            if not name.endswith(META):
                continue
            stem = name[: -len(META)]
            try:
                blob_id = blob_id_from_text(stem)
                meta = _meta_decoder.decode((self.dir / name).read_bytes())
            except (ValueError, OSError, msgspec.DecodeError):
                continue  # removed below as a stray file
            entry = BlobEntry(id=blob_id, owner=meta.owner, size=meta.size)
            final, part = self.dir / stem, self.dir / (stem + PART)
            try:
                if stem in names:
                    st = final.stat()
                    if st.st_size != meta.size:
                        continue
                    entry.complete, entry.offset = True, meta.size
                    entry.touched_ms = st.st_mtime_ns // 1_000_000
                elif stem + PART in names:
                    st = part.stat()
                    if st.st_size > meta.size:
                        continue
                    entry.offset = st.st_size
                    entry.touched_ms = st.st_mtime_ns // 1_000_000
                    if entry.offset == meta.size:
                        fd = os.open(part, os.O_RDWR)
                        self.finish(blob_id, fd, now_ms)
                        entry.complete, entry.touched_ms = True, now_ms
                        finished += 1
                        names.add(stem)
                else:
                    continue
            except OSError:
                continue
            known.update((name, stem, stem + PART))
            entries.append(entry)
        for name in names - known:
            try:
                if stray_grace_ms:
                    age_ms = now_ms - (self.dir / name).stat().st_mtime_ns // 1_000_000
                    if age_ms < stray_grace_ms:
                        continue  # maybe another node's upload being created
                os.unlink(self.dir / name)
                removed += 1
            except OSError:
                pass
        return ScanResult(entries, removed, finished)

    def load(self, blob_id: bytes) -> BlobEntry | None:
        """One blob as its files describe it now (finished, or an upload with the bytes its
        ``.part`` holds), or None when it has no readable ``.meta`` or no data file."""
        try:
            meta = _meta_decoder.decode(self.path(blob_id, META).read_bytes())
        except (OSError, msgspec.DecodeError):
            return None
        entry = BlobEntry(id=blob_id, owner=meta.owner, size=meta.size)
        for suffix, complete in (("", True), (PART, False)):
            try:
                st = self.path(blob_id, suffix).stat()
            except OSError:
                continue
            if st.st_size > meta.size or (complete and st.st_size != meta.size):
                return None
            entry.complete = complete
            entry.offset = st.st_size
            entry.touched_ms = st.st_mtime_ns // 1_000_000
            return entry
        return None

    # -------------------------------------------------------------------- upload

    def create(self, entry: BlobEntry, now_ms: int) -> None:
        """Write the .meta (durably) and an empty .part for a new upload."""
        meta = self.path(entry.id, META)
        tmp = self.path(entry.id, META + TMP)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _encode(_Meta(owner=entry.owner, size=entry.size, created_ms=now_ms)))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, meta)
        os.close(os.open(self.path(entry.id, PART), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._sync_dir()

    def open_part(self, blob_id: bytes) -> int:
        """A descriptor to write the upload's .part file (FileNotFoundError when gone)."""
        return os.open(self.path(blob_id, PART), os.O_WRONLY)

    @staticmethod
    def write(fd: int, offset: int, data: bytes, sync: bool) -> None:
        """Write ``data`` at ``offset`` (all of it), then fsync when ``sync``."""
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
        if sync:
            os.fsync(fd)

    def finish(self, blob_id: bytes, fd: int, now_ms: int) -> None:
        """fsync and close the .part, rename it to the blob, stamp its completion time."""
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.path(blob_id)
        os.rename(self.path(blob_id, PART), final)
        os.utime(final, ns=(now_ms * 1_000_000, now_ms * 1_000_000))
        self._sync_dir()

    # ------------------------------------------------------------------ download

    def open_blob(self, blob_id: bytes) -> int:
        """A descriptor to read a finished blob (FileNotFoundError when gone)."""
        return os.open(self.path(blob_id), os.O_RDONLY)

    @staticmethod
    def read(fd: int, offset: int, size: int) -> bytes:
        return os.pread(fd, size, offset)

    # -------------------------------------------------------------------- remove

    def remove(self, blob_id: bytes) -> None:
        """Delete every file of a blob (those that exist)."""
        for suffix in ("", PART, META):
            try:
                os.unlink(self.path(blob_id, suffix))
            except FileNotFoundError:
                pass

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
