"""Attachment transfers: files and voice messages sent and received through the relay's blob
route, resumable, with progress, cancel and retry.

Each transfer is a row of the ``transfers`` table whose status follows the table of
:mod:`messenger_tui.core.attachments.transfer_states`; :class:`TransferManager` is its asyncio
driver, one task per active transfer, re-entered after a restart (:meth:`resume_all`).

* Sending (:meth:`send_file`): the message row is committed at once (its place in the
  conversation is kept); the file is sealed into a ciphertext spool file in the profile's
  ``transfers`` folder (chunked STREAM encryption, core/attachments), the spool file is
  uploaded on its own blob connection (:class:`~messenger_tui.transport.blob_link.BlobLink`;
  the relay's id is stored the moment it exists, so an upload cut by a disconnect, a crash
  or a relay restart resumes from the relay's offset), and then the pointer (key, digest,
  sizes, name, type, voice duration and waveform) goes through the normal end-to-end outbox.
* Receiving: the receiver stores the pointer with the message (status ``new``); files up to
  the auto-download limit (setting) download by themselves, larger ones on request
  (:meth:`download`). The ciphertext is fetched into a spool file (resuming from what was
  fetched), then every chunk and the digest are checked while decrypting into a hidden part
  file in the downloads folder; only a file that passed every check gets its (sanitised,
  never overwriting) name. A tampered blob fails with the reason and leaves no file.
* Chat stays fast: blobs never use the message link, file and crypto work runs in worker
  threads, and memory holds a few chunks per transfer whatever the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput, TimedOut
from messenger_tui.app.images import (
    CellRow,
    PreparedImage,
    halfblock_cells,
    is_image_mime,
    prepare_image,
    preview_png,
)
from messenger_tui.app.models import Contact, TransferView
from messenger_tui.app.outgoing import gate
from messenger_tui.app.receiver import attachment_text
from messenger_tui.app.rows import contact_model
from messenger_tui.app.transfer_base import (
    IMAGE_COPIES,
    GroupTransferPort,
    TransferBase,
    check_source,
    default_download_dir,
    guess_mime,
)
from messenger_tui.app.transfer_download import DownloadSteps
from messenger_tui.app.transfer_files import (
    remove,
)
from messenger_tui.app.transfer_upload import UploadSteps
from messenger_tui.core.attachments import (
    AttachmentEncryptor,
    decode_pointer,
    sanitize_filename,
)
from messenger_tui.core.attachments.pointer import MAX_NAME_CHARS
from messenger_tui.core.attachments.transfer_states import ACTIVE, TERMINAL
from messenger_tui.core.errors import AttachmentError

#: Re-exported: the service, group files and the CLI use these from here.
__all__ = [
    "GroupTransferPort",
    "TransferBase",
    "TransferManager",
    "check_source",
    "default_download_dir",
    "guess_mime",
]


class TransferManager(UploadSteps, DownloadSteps):
    """Drives every transfer of one profile (see the module doc): the base's driver
    (:mod:`.transfer_base`), the upload and download steps, and the commands."""

    # ------------------------------------------------------------------ images

    async def send_any(self, contact: Contact, path: Path) -> TransferView:
        """Send a file; an image is first re-encoded without its metadata and given a
        thumbnail (app/images.py, in a worker thread). :class:`BadInput` as
        :meth:`send_file`, and for a decompression bomb or an unreadable image."""
        path = path.expanduser().absolute()
        if not is_image_mime(guess_mime(path.name)):
            return self.send_file(contact, path)
        gate(contact)
        image = await self.image_copy(path)
        return self.send_file(
            contact,
            image.path,
            name=image.name,
            mime_type=image.mime_type,
            thumbnail=image.thumbnail,
        )

    async def image_copy(self, path: Path) -> PreparedImage:
        """The metadata-free copy and thumbnail of an image to send (app/images.py, in a
        worker thread). :class:`BadInput` for a decompression bomb or an unreadable image."""
        if not path.is_file():
            raise BadInput(f"cannot read {path}: not a regular file")
        try:
            return await asyncio.to_thread(
                prepare_image, path, path.name, self._spool_dir / IMAGE_COPIES
            )
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None

    def _image_source(self, message_row: int) -> tuple[Path | bytes, bool] | None:
        """An image message's picture to show: the saved file of a finished download, else
        the thumbnail its pointer carries; and whether it is the full image."""
        row = self._store.transfers.for_message(message_row)
        if row is None or not is_image_mime(row.mime_type):
            return None
        full = row.direction == "down" and row.status == "done" and row.path is not None
        source: Path | bytes | None = Path(row.path) if full and row.path else None
        if source is None:
            source = row.thumbnail
            if row.direction == "down" and row.state is not None:
                try:
                    source = decode_pointer(row.state).thumbnail
                except AttachmentError:
                    source = None
        return None if source is None else (source, full)

    async def image_preview(
        self, message_row: int, cols: int, rows: int
    ) -> tuple[list[CellRow], bool] | None:
        """An image message's half-block preview (app/images.py) and whether it was drawn
        from the full image (a finished download) rather than the thumbnail; None for a
        message that is not an image or an image that cannot be read."""
        found = self._image_source(message_row)
        if found is None:
            return None
        try:
            cells = await asyncio.to_thread(halfblock_cells, found[0], cols, rows)
        except (BadInput, OSError):
            return None
        return cells, found[1]

    async def image_picture(
        self, message_row: int, width_px: int, height_px: int
    ) -> tuple[bytes, bool] | None:
        """An image message's picture for a terminal graphics protocol: a PNG at most
        ``width_px`` x ``height_px`` (app/images.py, decoded off the event loop under the
        pixel limit), and whether it is from the full image; None as for image_preview."""
        found = self._image_source(message_row)
        if found is None:
            return None
        try:
            png = await asyncio.to_thread(preview_png, found[0], width_px, height_px)
        except (BadInput, OSError):
            return None
        return png, found[1]

    # ------------------------------------------------------------------ commands

    def send_file(
        self,
        contact: Contact,
        path: Path,
        *,
        name: str | None = None,
        mime_type: str | None = None,
        voice: tuple[int, tuple[int, ...]] | None = None,
        thumbnail: bytes | None = None,
    ) -> TransferView:
        """Send the file at ``path`` to ``contact`` (see the module doc). Sending the same
        file (path, size and modification time) again while its upload is unfinished resumes
        that upload instead of starting another. :class:`BadInput` for a missing or
        unreadable file, a directory, or a file over the format's limit."""
        gate(contact)
        path, st = check_source(path)
        size = st.st_size
        unfinished = (*sorted(ACTIVE), "failed")
        existing = self._store.transfers.find_upload(
            contact.id, str(path), size, st.st_mtime_ns, unfinished
        )
        if existing is not None:
            if existing.status == "failed":
                self.retry(existing.id)
            else:
                self._spawn(existing.id)
            return self._view(existing)
        shown = sanitize_filename(name or path.name, max_bytes=MAX_NAME_CHARS)
        mime = mime_type or guess_mime(shown)
        now = self._now_ms()
        enc = AttachmentEncryptor.start(size)
        duration = voice[0] if voice else None
        store = self._store
        with store.db.transaction():
            seq = store.contacts.next_send_seq(contact.id, now)
            message = store.messages.insert(
                contact.id,
                os.urandom(16),
                outgoing=True,
                body=attachment_text(shown, duration),
                sent_at_ms=now,
                state="queued",
                kind="voice" if voice else "attachment",
                seq=seq,
            )
            assert message is not None
            row = store.transfers.insert(
                contact_id=contact.id,
                direction="up",
                status="encrypting",
                name=shown,
                mime_type=mime,
                size=size,
                now_ms=now,
                message_row=message.id,
                path=str(path),
                state=enc.snapshot(),
                blob_size=enc.layout.blob_size,
                source_mtime_ns=st.st_mtime_ns,
                duration_ms=duration,
                waveform=bytes(voice[1]) if voice else None,
                thumbnail=thumbnail,
            )
        self._spawn(row.id)
        self._announce(row.id)
        return self._view(row)

    def download(self, transfer_id: int) -> TransferView:
        """Download an offered file now (one over the auto-download limit)."""
        row = self._row(transfer_id)
        if row.direction != "down":
            raise BadInput("only a received file can be downloaded")
        if row.status == "offered":
            self._move(row, "request")
        elif row.status == "failed":
            return self.retry(transfer_id)
        self._spawn(transfer_id)
        return self._view(self._row(transfer_id))

    def cancel(self, transfer_id: int) -> TransferView:
        """Stop a transfer for good and remove its spool files (a finished one stays)."""
        row = self._row(transfer_id)
        if row.status in TERMINAL:
            return self._view(row)
        self._move(row, "cancel")
        if row.direction == "up" and row.message_row is not None and row.group_row is not None:
            if self.groups is not None:
                self.groups.upload_cancelled(row)
        elif row.direction == "up" and row.message_row is not None and row.contact_id:
            # its pointer never went out: the message was not sent
            self._store.messages.set_state(row.message_row, "error")
            contact = self._store.contacts.by_id(row.contact_id)
            if contact is not None:
                self._emit(ev.MessageStateChanged(contact_model(contact), row.message_row, "error"))
        stop = self._stops.get(transfer_id)
        if stop is not None:
            stop.set()
        task = self._tasks.pop(transfer_id, None)
        if task is not None:
            task.cancel()
        remove(row.spool, self._image_copy(row) if row.direction == "up" else None)
        return self._view(self._row(transfer_id))

    def retry(self, transfer_id: int) -> TransferView:
        """Start a failed transfer again (at the step that failed)."""
        row = self._row(transfer_id)
        if row.status != "failed":
            raise BadInput(f"the transfer is {row.status}, not failed")
        self._move(row, "retry", error=None)
        self._spawn(transfer_id)
        return self._view(self._row(transfer_id))

    def resume_all(self) -> None:
        """Pick up every active transfer (after a start or a restart) and decide the new
        downloads: within the auto-download limit they start, larger ones are offered."""
        self._running = True
        for row in self._store.transfers.with_status(tuple(sorted(ACTIVE))):
            self._spawn(row.id)

    def pump(self) -> None:
        """New incoming attachments arrived: decide and start them."""
        if self._running:
            for row in self._store.transfers.with_status(("new",)):
                self._spawn(row.id)

    async def wait(self, transfer_id: int, timeout: float) -> TransferView:
        """Wait until the transfer is done, failed or cancelled. :class:`TimedOut`."""

        def settled() -> bool:
            row = self._store.transfers.get(transfer_id)
            return row is None or row.status not in ACTIVE

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(settled)
        except TimeoutError:
            raise TimedOut("the transfer did not finish in time") from None
        return self._view(self._row(transfer_id))

    async def close(self) -> None:
        """Stop every task; their state is stored, so the next start resumes them."""
        self._running = False
        for stop in self._stops.values():
            stop.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def start(self, transfer_id: int) -> TransferView:
        """Drive a transfer row inserted elsewhere (a group's: app/group_files.py)."""
        self._spawn(transfer_id)
        self._announce(transfer_id)
        return self._view(self._row(transfer_id))
