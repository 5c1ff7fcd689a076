"""The base of the transfer driver (:mod:`.transfers`): what every transfer shares.

:class:`TransferBase` holds the manager's state (store, identity, tasks, meters), the
queries, and the driver: one asyncio task per active transfer stepping its row through
:mod:`messenger_tui.core.attachments.transfer_states`, at most :data:`MAX_PARALLEL` moving
bytes at once, progress events and stored offsets. The steps themselves are
:mod:`.transfer_upload` (seal, upload, send the pointer) and :mod:`.transfer_download`
(fetch, check, save); :class:`~.transfers.TransferManager` adds the commands.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final, Protocol

from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import Settings, TransferView
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.transfer_files import (
    Cancelled,
)
from messenger_tui.core.attachments import (
    AttachmentPointer,
    BlobLayout,
)
from messenger_tui.core.attachments.transfer_states import ACTIVE, next_status
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import AttachmentError
from messenger_tui.storage.store import Store
from messenger_tui.storage.transfers import TransferRow
from messenger_tui.transport.blob_link import BlobLink, BlobRefused
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


class TransferBase(ABC):
    """The state, queries and driver of :class:`~.transfers.TransferManager`; the steps are
    :class:`~.transfer_upload.UploadSteps` and :class:`~.transfer_download.DownloadSteps`."""

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

    def _image_copy(self, row: TransferRow) -> str | None:
        """The metadata-free copy of a sent image (ours to remove once sealed and sent)."""
        copies = self._spool_dir / IMAGE_COPIES
        if row.path and Path(row.path).parent == copies:
            return row.path
        return None

    # ------------------------------------------------------------------ steps (subclasses)

    @abstractmethod
    async def _encrypt(self, row: TransferRow) -> None:
        """A step of :class:`~.transfer_upload.UploadSteps`."""

    @abstractmethod
    async def _upload(self, row: TransferRow) -> None:
        """A step of :class:`~.transfer_upload.UploadSteps`."""

    @abstractmethod
    def _send_pointer(self, row: TransferRow) -> None:
        """A step of :class:`~.transfer_upload.UploadSteps`."""

    @abstractmethod
    async def _download(self, row: TransferRow) -> None:
        """A step of :class:`~.transfer_download.DownloadSteps`."""


def _replace_done(view: TransferView, done: int) -> TransferView:
    eta = view.eta_s
    if view.rate_bps > 0:
        eta = max(0, view.total - done) / view.rate_bps
    return replace(view, done=done, eta_s=eta)
