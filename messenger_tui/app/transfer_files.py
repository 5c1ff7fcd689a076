"""The blocking file work of a transfer, run in worker threads (app/transfers.py): sealing a
file into its ciphertext spool, checking and decrypting a fetched blob, and saving the result
under a free name. Everything streams: memory holds a chunk and a read piece at a time."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from messenger_tui.app.errors import BadInput
from messenger_tui.core.attachments import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_pieces,
    encrypt_pieces,
    pick_free_name,
)
from messenger_tui.core.attachments.layout import digest_start
from messenger_tui.core.errors import AttachmentError

#: Bytes read from a file at a time.
PIECE: Final = 1024 * 1024
#: Suffix of the checked-but-not-final file in the downloads folder (hidden, removed on any
#: failure).
PART_SUFFIX: Final = ".messenger-tui-part"

#: Told the bytes read or written so far.
OnBytesDone = Callable[[int], None]


class Cancelled(Exception):
    """The transfer was cancelled while a worker thread ran."""


class Growing:
    """How much of a spool file is written, shared between the thread writing it (sealing, or
    the download) and the one reading it at the same time (the upload, or the check): the
    two passes of a transfer overlap instead of running one after the other. The reader
    waits for bytes; :meth:`abort` (the writer failed or was cancelled) wakes it with
    :class:`Cancelled`."""

    def __init__(self, written: int = 0) -> None:
        self._cond = threading.Condition()
        self.written = written
        self.finished = False
        self.aborted = False

    def advance(self, written: int) -> None:
        with self._cond:
            if written > self.written:
                self.written = written
                self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self.aborted = True
            self._cond.notify_all()

    def wait_for(self, end: int, stop: threading.Event | None = None) -> None:
        """Block until ``end`` bytes are written or the writer finished. Cancelled when it
        aborted or ``stop`` is set."""
        with self._cond:
            while self.written < end and not self.finished:
                if self.aborted or (stop is not None and stop.is_set()):
                    raise Cancelled()
                self._cond.wait(0.5)
            if self.aborted:
                raise Cancelled()


class GrowingSource:
    """A spool file being sealed, as the upload's source (transport BlobSource): a read
    waits until sealing wrote that far."""

    def __init__(self, path: Path, size: int, growing: Growing, stop: threading.Event) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = size
        self._growing = growing
        self._stop = stop

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        self._growing.wait_for(offset + length, self._stop)
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise OSError(f"the spool file is short at {offset}")
        return data

    def close(self) -> None:
        os.close(self._fd)


def _read_pieces(
    path: Path, stop: threading.Event, progress: OnBytesDone, growing: Growing | None = None
) -> Iterator[bytes]:
    done = 0
    with path.open("rb") as f:
        while True:
            if growing is not None:
                growing.wait_for(done + PIECE, stop)
            block = f.read(PIECE)
            if not block:
                break
            if stop.is_set():
                raise Cancelled()
            yield block
            done += len(block)
            progress(done)


def seal_to_spool(
    source: Path,
    spool: Path,
    snapshot: bytes,
    stop: threading.Event,
    progress: OnBytesDone,
    growing: Growing | None = None,
) -> bytes:
    """Encrypt ``source`` into ``spool`` from the start (the encryptor of ``snapshot`` at
    chunk 0: sealing is deterministic, so a second run writes the same bytes), fsync it, and
    return the final snapshot (it holds the digest). ``growing`` hears of every unit written
    (flushed, so a reader of the spool sees it). Raises AttachmentSourceChanged when the
    file's length differs from the announced one, Cancelled, OSError."""
    enc = AttachmentEncryptor.restore(snapshot)
    if enc.next_index != 0:  # sealed before (its spool file was lost): same key, same bytes
        enc = AttachmentEncryptor(enc.key, enc.header, enc.size, 0, digest_start(enc.header))
    fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            written = 0
            for unit in encrypt_pieces(enc, _read_pieces(source, stop, progress)):
                out.write(unit)
                written += len(unit)
                if growing is not None and written - growing.written >= PIECE:
                    out.flush()
                    growing.advance(written)
            out.flush()
            if growing is not None:
                growing.advance(written)
            os.fsync(fd)
    finally:
        os.close(fd)
    return enc.snapshot()


def check_and_save(
    spool: Path,
    decryptor: AttachmentDecryptor,
    folder: Path,
    name: str,
    stop: threading.Event,
    progress: OnBytesDone,
    growing: Growing | None = None,
) -> tuple[Path, str]:
    """Check every chunk of the blob in ``spool`` and its digest while decrypting into a
    hidden part file in ``folder``; only when all of it checks out, give the file a free
    sanitised name there (never overwriting). Returns (saved path, SHA-256 hex of the file).
    With ``growing``, the blob is still arriving: reads wait for its bytes.
    Raises AttachmentIntegrityError (the part file removed: nothing is left in ``folder``),
    Cancelled, OSError."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / ("." + pick_free_name(name, [], max_bytes=200) + PART_SUFFIX)
    digest = hashlib.sha256()
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            pieces = _read_pieces(spool, stop, progress, growing)
            for plain in decrypt_pieces(decryptor, pieces):
                out.write(plain)
                digest.update(plain)
            decryptor.finish()
            out.flush()
            os.fsync(out.fileno())
        saved = _link_free_name(part, folder, name)
    except (AttachmentError, Cancelled, OSError):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    return saved, digest.hexdigest()


def _link_free_name(part: Path, folder: Path, name: str) -> Path:
    """Give ``part`` a free name in ``folder``: a hard link fails if the name exists, so no
    file is ever overwritten even if another program creates one meanwhile."""
    for _ in range(100):
        existing = [e for e in os.listdir(folder) if not e.endswith(PART_SUFFIX)]
        target = folder / pick_free_name(name, existing)
        try:
            os.link(part, target)
            return target
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise
            try:  # no hard links here: copy into a new file created exclusively
                with part.open("rb") as src, target.open("xb") as dst:
                    shutil.copyfileobj(src, dst, PIECE)
                return target
            except FileExistsError:
                continue
    raise OSError(f"no free name for {name!r} in {folder}")


def open_with_desktop(path: Path) -> None:
    """Hand a saved file to ``xdg-open`` (no shell; its output discarded, in its own
    session so it outlives nothing of ours). :class:`BadInput` when it cannot run."""
    program = shutil.which("xdg-open")
    if program is None:
        raise BadInput(f"no xdg-open here to open {path.name}; the file is at {path}")
    if not path.is_file():
        raise BadInput(f"{path} is gone")
    try:
        subprocess.Popen(  # a fixed program and one path argument, no shell
            [program, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise BadInput(f"cannot run xdg-open: {exc.strerror or exc}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(PIECE):
            h.update(block)
    return h.hexdigest()


def remove(*paths: str | Path | None) -> None:
    for p in paths:
        if p:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
