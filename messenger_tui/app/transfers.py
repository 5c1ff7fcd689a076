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
import functools
import logging
import mimetypes
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final, Protocol

from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.errors import BadInput, TimedOut
from messenger_tui.app.images import (
    CellRow,
    PreparedImage,
    halfblock_cells,
    is_image_mime,
    prepare_image,
    preview_png,
)
from messenger_tui.app.models import Contact, Settings, TransferView
from messenger_tui.app.outgoing import gate
from messenger_tui.app.receiver import attachment_text
from messenger_tui.app.rows import contact_model
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.transfer_files import (
    Cancelled,
    Growing,
    GrowingSource,
    check_and_save,
    remove,
    seal_to_spool,
)
from messenger_tui.core import payload as pl
from messenger_tui.core.attachments import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    AttachmentPointer,
    BlobLayout,
    decode_pointer,
    sanitize_filename,
)
from messenger_tui.core.attachments.pointer import MAX_NAME_CHARS
from messenger_tui.core.attachments.transfer_states import ACTIVE, TERMINAL, next_status
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import AttachmentError, AttachmentIntegrityError
from messenger_tui.storage.store import Store
from messenger_tui.storage.transfers import TransferRow
from messenger_tui.transport.blob_link import BlobLink, BlobRefused, BlobUploadState
from messenger_tui.transport.errors import TransportError

log = logging.getLogger(__name__)

#: Progress events per transfer at most this often (seconds), besides status changes.
EVENT_EVERY_S: Final = 0.25
#: Bytes done are stored at most this often (seconds): where a download resumes.
STORE_EVERY_S: Final = 1.0
#: The rate is measured over this many seconds.
RATE_WINDOW_S: Final = 5.0
#: Transfers moving bytes at once (the others wait their turn).
MAX_PARALLEL: Final = 3
#: Pause after the relay stayed unreachable through the link's own retries.
RETRY_PAUSE_S: Final = (1.0, 30.0)
DEFAULT_MIME: Final = "application/octet-stream"
#: Folder (in the spool folder) of the re-encoded copies of images being sent.
IMAGE_COPIES: Final = "images"


def default_download_dir() -> Path:
    return Path.home() / "Downloads" / "messenger-tui"


def guess_mime(name: str) -> str:
    mime, _ = mimetypes.guess_type(name, strict=False)
    return mime if mime and "/" in mime and len(mime) <= 127 else DEFAULT_MIME


def check_source(path: Path) -> tuple[Path, os.stat_result]:
    """The absolute path of a file to send and its stat. :class:`BadInput` for a missing or
    unreadable file, a directory, or a file over the format's limit."""
    path = path.expanduser().absolute()
    try:
        st = path.stat()
        if not path.is_file():
            raise BadInput(f"{path} is not a regular file")
        with path.open("rb"):
            pass
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        BlobLayout(st.st_size)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from None
    return path, st


class GroupTransferPort(Protocol):
    """What a group's transfers need beyond a contact's (app/group_files.py)."""

    def send_pointer(self, row: TransferRow, pointer: AttachmentPointer) -> bool:
        """Queue the pointer as one sender-key group message; False: the group or the
        message is gone (the upload is then cancelled)."""
        ...

    def sender_is_stranger(self, row: TransferRow) -> bool:
        """Whether the member who sent this download is not a contact."""
        ...

    def upload_cancelled(self, row: TransferRow) -> None:
        """The upload was cancelled before its pointer went: the message did not go."""
        ...


class _Meter:
    """Bytes per second over the last :data:`RATE_WINDOW_S`, and when to emit next."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()
        self.last_event = 0.0
        self.last_store = 0.0

    def add(self, now: float, done: int) -> float:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now > t0 and done >= d0 else 0.0


class TransferManager:
    """Drives every transfer of one profile (see the module doc)."""

    def __init__(
        self,
        store: Store,
        identity: IdentityKeyPair,
        sender: OutboxSender,
        access: AccessKeys,
        *,
        spool_dir: Path,
        relay_url: Callable[[], str],
        settings: Callable[[], Settings],
        own_name: Callable[[], str],
        now_ms: Callable[[], int],
        emit: Callable[[ev.Event], None],
        outbox_changed: Callable[[], None],
    ) -> None:
        self._store = store
        self._identity = identity
        self._sender = sender
        self._access = access
        self._spool_dir = spool_dir
        self._relay_url = relay_url
        self._settings = settings
        self._own_name = own_name
        self._now_ms = now_ms
        self._emit = emit
        self._outbox_changed = outbox_changed
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stops: dict[int, threading.Event] = {}
        self._meters: dict[int, _Meter] = {}
        self._rates: dict[int, float] = {}
        self._slots = asyncio.Semaphore(MAX_PARALLEL)
        self._changed = asyncio.Condition()
        self._running = False
        #: Where downloads are saved for this run only (``receive --download-dir``).
        self.download_dir_override: Path | None = None
        #: Download every new file whatever its size (``receive --download-all``).
        self.download_all = False
        #: Bytes of the blob put on the wire per transfer in this process (resends counted).
        self.wire_bytes: dict[int, int] = {}
        self.blob_link_options: dict[str, float] = {}
        #: Group transfers (app/group_files.py sets it); None: groups have no files.
        self.groups: GroupTransferPort | None = None

    # ------------------------------------------------------------------ queries

    def view(self, transfer_id: int) -> TransferView | None:
        row = self._store.transfers.get(transfer_id)
        return None if row is None else self._view(row)

    def for_message(self, message_row: int) -> TransferView | None:
        row = self._store.transfers.for_message(message_row)
        return None if row is None else self._view(row)

    def all(self) -> list[TransferView]:
        return [self._view(r) for r in self._store.transfers.all()]

    def download_dir(self) -> Path:
        if self.download_dir_override is not None:
            return self.download_dir_override
        chosen = self._settings().download_dir
        return Path(chosen).expanduser() if chosen else default_download_dir()

    def _view(self, row: TransferRow) -> TransferView:
        rate = self._rates.get(row.id, 0.0)
        total = row.blob_size
        left = max(0, total - row.done_bytes)
        eta = left / rate if rate > 0 and row.status in ACTIVE else None
        return TransferView(
            id=row.id,
            contact_id=row.contact_id,
            direction=row.direction,
            status=row.status,
            name=row.name,
            mime_type=row.mime_type,
            size=row.size,
            done=row.done_bytes,
            total=total,
            rate_bps=rate,
            eta_s=eta,
            message_row=row.message_row,
            path=row.path,
            sha256=row.sha256,
            duration_ms=row.duration_ms,
            waveform=tuple(row.waveform) if row.waveform is not None else None,
            error=row.error,
            group_row=row.group_row,
        )

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

    def _image_copy(self, row: TransferRow) -> str | None:
        """The metadata-free copy of a sent image (ours to remove once sealed and sent)."""
        copies = self._spool_dir / IMAGE_COPIES
        if row.path and Path(row.path).parent == copies:
            return row.path
        return None

    def start(self, transfer_id: int) -> TransferView:
        """Drive a transfer row inserted elsewhere (a group's: app/group_files.py)."""
        self._spawn(transfer_id)
        self._announce(transfer_id)
        return self._view(self._row(transfer_id))

    # ------------------------------------------------------------------ driver

    def _row(self, transfer_id: int) -> TransferRow:
        row = self._store.transfers.get(transfer_id)
        if row is None:
            raise BadInput(f"no transfer {transfer_id}")
        return row

    def _move(self, row: TransferRow, event: str, **fields: object) -> TransferRow:
        status = next_status("up" if row.direction == "up" else "down", row.status, event)
        self._store.transfers.update(row.id, self._now_ms(), status=status, **fields)
        self._announce(row.id)
        return self._row(row.id)

    def _announce(self, transfer_id: int) -> None:
        view = self.view(transfer_id)
        if view is not None:
            self._emit(ev.TransferChanged(view))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _spawn(self, transfer_id: int) -> None:
        task = self._tasks.get(transfer_id)
        if task is not None and not task.done():
            return
        self._stops[transfer_id] = threading.Event()
        self._tasks[transfer_id] = asyncio.get_running_loop().create_task(
            self._drive(transfer_id), name=f"transfer-{transfer_id}"
        )

    async def _drive(self, transfer_id: int) -> None:
        pause = RETRY_PAUSE_S[0]
        try:
            while (row := self._store.transfers.get(transfer_id)) is not None:
                if row.status not in ACTIVE:
                    return
                try:
                    await self._step(row)
                    pause = RETRY_PAUSE_S[0]
                except (asyncio.CancelledError, Cancelled):
                    raise
                except BlobRefused as exc:
                    self._fail(transfer_id, str(exc))
                except (AttachmentError, BadInput) as exc:
                    self._fail(transfer_id, str(exc))
                except (TransportError, OSError) as exc:
                    # the relay stayed away through the link's retries: keep the state and
                    # try again later; nothing is lost
                    why = str(exc) or type(exc).__name__
                    self._store.transfers.update(transfer_id, self._now_ms(), error=why)
                    self._announce(transfer_id)
                    log.info("transfer %d waits %.0f s: %s", transfer_id, pause, why)
                    await asyncio.sleep(pause)
                    pause = min(RETRY_PAUSE_S[1], pause * 2)
        except (asyncio.CancelledError, Cancelled):
            pass
        except Exception:
            log.exception("transfer %d failed unexpectedly", transfer_id)
            self._fail(transfer_id, "an internal error stopped the transfer; retry it")
        finally:
            if self._tasks.get(transfer_id) is asyncio.current_task():
                del self._tasks[transfer_id]

    def _fail(self, transfer_id: int, reason: str) -> None:
        row = self._store.transfers.get(transfer_id)
        if row is not None and row.status in ACTIVE:
            self._move(row, "fail", error=reason)

    async def _step(self, row: TransferRow) -> None:
        if row.status == "encrypting":
            async with self._slots:
                await self._encrypt(row)
        elif row.status == "uploading":
            async with self._slots:
                await self._upload(row)
        elif row.status == "sending":
            self._send_pointer(row)
        elif row.status == "new":
            # files from a message request (a sender who is not a contact yet) never
            # download by themselves: a stranger cannot make us fetch anything unasked
            limit = self._settings().auto_download_kib * 1024
            if row.group_row is not None:
                stranger = self.groups is None or self.groups.sender_is_stranger(row)
            else:
                sender = self._store.contacts.by_id(row.contact_id or 0)
                stranger = sender is None or sender.auto_added
            auto = self.download_all or (row.size <= limit and not stranger)
            self._move(row, "auto" if auto else "hold")
        elif row.status == "downloading":
            async with self._slots:
                await self._download(row)

    def _progress(
        self, transfer_id: int, done: int, *, store: bool = True, phase: str | None = None
    ) -> None:
        """Bytes done in the current step; a worker thread's late report (``phase``: the
        status it was made in) is dropped once the status moved on."""
        if phase is not None:
            row = self._store.transfers.get(transfer_id)
            if row is None or row.status != phase:
                return
        now = time.monotonic()
        meter = self._meters.setdefault(transfer_id, _Meter())
        self._rates[transfer_id] = meter.add(now, done)
        if store and now - meter.last_store >= STORE_EVERY_S:
            meter.last_store = now
            self._store.transfers.update(transfer_id, self._now_ms(), done_bytes=done)
        if now - meter.last_event >= EVENT_EVERY_S:
            meter.last_event = now
            view = self.view(transfer_id)
            if view is not None:
                self._emit(ev.TransferChanged(_replace_done(view, done)))

    def _thread_progress(self, transfer_id: int, phase: str) -> Callable[[int], None]:
        loop = asyncio.get_running_loop()
        last = [0.0]

        def report(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= EVENT_EVERY_S:
                last[0] = now
                loop.call_soon_threadsafe(
                    functools.partial(self._progress, transfer_id, done, store=False, phase=phase)
                )

        return report

    def _link(self) -> BlobLink:
        return BlobLink(
            self._relay_url(),
            self._identity.public,
            self._identity.sign,
            **self.blob_link_options,  # type: ignore[arg-type]
        )

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


def _replace_done(view: TransferView, done: int) -> TransferView:
    eta = view.eta_s
    if view.rate_bps > 0:
        eta = max(0, view.total - done) / view.rate_bps
    return replace(view, done=done, eta_s=eta)
