"""Receiving a file (:mod:`.transfers`): fetch the blob into the spool file while checking
every chunk and the digest and decrypting into a hidden part file (the check follows the
fetch); only a file that passed every check is saved under its name."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from messenger_tui.app.transfer_base import TransferBase
from messenger_tui.app.transfer_files import (
    Growing,
    check_and_save,
    remove,
)
from messenger_tui.core.attachments import (
    AttachmentDecryptor,
    decode_pointer,
)
from messenger_tui.core.errors import AttachmentIntegrityError
from messenger_tui.storage.transfers import TransferRow


class DownloadSteps(TransferBase):
    """The download step of the driver."""

    # ------------------------------------------------------------------ download step

    async def _fetch(self, row: TransferRow, spool: Path, offset: int, growing: Growing) -> None:
        assert row.blob_id is not None

        def fetched(done: int, _total: int) -> None:
            growing.advance(done)
            self._progress(row.id, done)

        result = await self._link().download(row.blob_id, spool, offset, on_progress=fetched)
        self.wire_bytes[row.id] = self.wire_bytes.get(row.id, 0) + result.wire_bytes
        if result.size != row.blob_size:
            remove(spool)
            raise _integrity(
                row, f"the relay's blob is {result.size} bytes, the message says {row.blob_size}"
            )
        self._store.transfers.update(row.id, self._now_ms(), done_bytes=row.blob_size)

    async def _download(self, row: TransferRow) -> None:
        assert row.state is not None and row.blob_id is not None
        pointer = decode_pointer(row.state)
        self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = Path(row.spool) if row.spool else self._spool_dir / f"down-{row.id}.blob"
        offset = row.done_bytes if spool.exists() else 0
        if spool.exists() and spool.stat().st_size < offset:
            offset = 0
        self._store.transfers.update(row.id, self._now_ms(), spool=str(spool))
        decryptor = AttachmentDecryptor(
            pointer.key, pointer.digest, pointer.size, chunk_size=pointer.chunk_size
        )
        stop = self._stops.setdefault(row.id, threading.Event())
        # Fetching and checking overlap: the check decrypts the spool file as the download
        # writes it; only a file that passed every check is named (transfer_files.py).
        fetched = offset >= row.blob_size
        growing = Growing(offset)
        progress = self._thread_progress(row.id, row.status) if fetched else lambda _done: None
        checking = asyncio.ensure_future(
            asyncio.to_thread(
                check_and_save,
                spool,
                decryptor,
                self.download_dir(),
                pointer.name,
                stop,
                progress,
                growing,
            )
        )
        try:
            if not fetched:
                await self._fetch(row, spool, offset, growing)
            growing.finish()
        except BaseException:
            growing.abort()
            with contextlib.suppress(BaseException):
                await checking  # it removes its part file
            raise
        try:
            saved, sha = await checking
        except AttachmentIntegrityError as exc:
            # refetch from the start on retry: the fetched bytes are not the sender's
            remove(spool)
            self._store.transfers.update(row.id, self._now_ms(), done_bytes=0, spool=None)
            raise _integrity(row, str(exc)) from None
        remove(spool)
        self._move(
            self._row(row.id), "verified", path=str(saved), sha256=sha, spool=None, error=None
        )


def _integrity(row: TransferRow, why: str) -> AttachmentIntegrityError:
    return AttachmentIntegrityError(
        f"{row.name!r} failed its integrity check and was not saved: {why}"
    )
