"""Sending a file (:mod:`.transfers`): seal it into the spool file while uploading it on
the blob route (the upload follows the sealing), then send the pointer through the outbox
(a contact's) or as one sender-key group message (a group's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from messenger_tui.app.errors import BadInput
from messenger_tui.app.transfer_base import TransferBase
from messenger_tui.app.transfer_files import (
    Growing,
    GrowingSource,
    remove,
    seal_to_spool,
)
from messenger_tui.core import payload as pl
from messenger_tui.core.attachments import (
    AttachmentEncryptor,
    AttachmentPointer,
)
from messenger_tui.core.attachments.transfer_states import next_status
from messenger_tui.storage.transfers import TransferRow
from messenger_tui.transport.blob_link import BlobRefused, BlobUploadState

log = logging.getLogger(__name__)


class UploadSteps(TransferBase):
    """The upload steps of the driver."""

    # ------------------------------------------------------------------ upload steps

    async def _encrypt(self, row: TransferRow) -> None:
        assert row.path is not None and row.state is not None
        source = Path(row.path)
        try:
            st = source.stat()
        except OSError as exc:
            raise BadInput(f"the file {source} is gone ({exc.strerror}); send it again") from None
        if st.st_size != row.size or st.st_mtime_ns != row.source_mtime_ns:
            raise BadInput(f"the file {source} changed since sending began; send it again")
        self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = self._spool_dir / f"up-{row.id}.blob"
        self._store.transfers.update(row.id, self._now_ms(), spool=str(spool))
        stop = self._stops.setdefault(row.id, threading.Event())
        os.close(os.open(spool, os.O_WRONLY | os.O_CREAT, 0o600))
        # Sealing and uploading overlap: the upload reads the spool file as sealing writes
        # it (sealing is deterministic, so a restart re-seals the same bytes and the upload
        # resumes at the relay's offset). Memory: a piece of each, whatever the file's size.
        growing = Growing()
        nothing: Callable[[int], None] = lambda _done: None  # noqa: E731
        sealing = asyncio.ensure_future(
            asyncio.to_thread(seal_to_spool, source, spool, row.state, stop, nothing, growing)
        )
        uploading = asyncio.ensure_future(
            self._send_blob(row.id, GrowingSource(spool, row.blob_size, growing, stop))
        )
        try:
            final = await sealing
        except BaseException:
            growing.abort()
            uploading.cancel()
            with contextlib.suppress(BaseException):
                await uploading
            raise
        growing.finish()
        self._move(self._row(row.id), "encrypted", state=final, done_bytes=0)
        if await uploading:  # else (an expired upload) the uploading step starts anew
            self._move(self._row(row.id), "uploaded", done_bytes=row.blob_size, error=None)

    async def _upload(self, row: TransferRow) -> None:
        assert row.spool is not None
        spool = Path(row.spool)
        if not spool.exists() or spool.stat().st_size != row.blob_size:
            log.warning(
                "transfer %d: spool %s is %s bytes, not %d: sealing again",
                row.id,
                spool,
                spool.stat().st_size if spool.exists() else "no",
                row.blob_size,
            )
            self._store.transfers.update(row.id, self._now_ms(), status="encrypting")
            return  # the spool file is gone (or short): seal it again, same bytes
        if await self._send_blob(row.id, spool):
            self._move(self._row(row.id), "uploaded", done_bytes=row.blob_size, error=None)

    async def _send_blob(self, transfer_id: int, source: Path | GrowingSource) -> bool:
        """Upload (or resume uploading) the blob; False when the relay had dropped the
        half-finished upload (a day old): its id is forgotten, the next step starts anew."""
        row = self._row(transfer_id)
        resume = BlobUploadState(id=row.blob_id, size=row.blob_size) if row.blob_id else None

        def created(state: BlobUploadState) -> None:
            self._store.transfers.update(row.id, self._now_ms(), blob_id=state.id)

        link = self._link()
        try:
            result = await link.upload(
                source,
                resume,
                on_state=created,
                on_progress=lambda done, _total: self._progress(row.id, done),
            )
        except BlobRefused as exc:
            if resume is not None and exc.code == "not_found":
                self._store.transfers.update(row.id, self._now_ms(), blob_id=None, done_bytes=0)
                return False
            raise
        finally:
            if isinstance(source, GrowingSource):
                source.close()
        self.wire_bytes[row.id] = self.wire_bytes.get(row.id, 0) + result.wire_bytes
        return True

    def _send_pointer(self, row: TransferRow) -> None:
        if row.group_row is not None:
            self._send_group_pointer(row)
            return
        store = self._store
        contact = store.contacts.by_id(row.contact_id or 0)
        message = store.messages.by_id(row.message_row) if row.message_row else None
        if contact is None or message is None:
            self._move(row, "cancel")
            return
        pointer = self._pointer(row)
        body = pl.encode_payload(
            pl.Attachment(
                id=message.message_id,
                pointer=pointer,
                sent_at_ms=message.sent_at_ms,
                sender_name=self._own_name(),
                access=self._access.own_secret(),
                seq=message.seq or 0,
            )
        )
        now = self._now_ms()
        with store.db.transaction():
            store.outbox.enqueue(
                contact.identity, os.urandom(16), body, "attachment", now, message_row=message.id
            )
            status = next_status("up", row.status, "queued")
            store.transfers.update(row.id, now, status=status, spool=None, error=None)
        remove(row.spool, self._image_copy(row))
        self._announce(row.id)
        self._sender.wake()
        self._outbox_changed()

    def _send_group_pointer(self, row: TransferRow) -> None:
        """A group's upload: one sender-key group message to every member (the port)."""
        store = self._store
        with store.db.transaction():
            sent = self.groups is not None and self.groups.send_pointer(row, self._pointer(row))
            if sent:
                status = next_status("up", row.status, "queued")
                store.transfers.update(
                    row.id, self._now_ms(), status=status, spool=None, error=None
                )
        if not sent:
            self._move(row, "cancel")
            return
        remove(row.spool, self._image_copy(row))
        self._announce(row.id)

    def _pointer(self, row: TransferRow) -> AttachmentPointer:
        """The pointer of a finished upload: what a recipient needs to fetch and open it."""
        assert row.state is not None and row.blob_id is not None
        enc = AttachmentEncryptor.restore(row.state)
        voice = row.duration_ms is not None and row.waveform is not None
        return AttachmentPointer(
            blob_id=row.blob_id,
            key=enc.key,
            digest=enc.digest,
            size=row.size,
            padded_size=enc.padded_size,
            name=row.name,
            mime_type=row.mime_type,
            chunk_size=enc.chunk_size,
            duration_ms=row.duration_ms if voice else None,
            waveform=tuple(row.waveform) if voice and row.waveform is not None else None,
            thumbnail=row.thumbnail,
        )
