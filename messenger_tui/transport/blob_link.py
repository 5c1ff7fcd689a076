"""The client end of the blob route: attachment uploads and downloads at the relay's ``/blob``.

Each transfer uses its own websocket (the message link never carries a blob): TCP, TLS, pin
and the relay's Challenge -> Auth -> AuthOk exactly as the message link
(:mod:`messenger_tui.transport.dialer`), then the frames of
:mod:`messenger_tui.core.blob_wire`.

* :meth:`BlobLink.upload` sends a ciphertext (a file, or any :class:`BlobSource` that can
  produce the bytes at an offset, such as an attachment encryptor re-sealing from the
  plaintext) in chunks, with at most the relay's window unacknowledged. Right after the relay
  created the upload, ``on_state`` receives the :class:`BlobUploadState` to persist; given
  back as ``resume`` (after a restart), the upload asks the relay how much it holds and sends
  only the rest.
* :meth:`BlobLink.download` streams a blob into a file from ``offset`` on (a partial file
  resumes where it stops).
* Both reconnect by themselves after a dropped connection (backoff), for as long as they
  make progress within ``retry_window_s``; a refusal (quota, size cap, unknown id,
  authentication) ends them at once with :class:`BlobRefused` naming the reason.
  ``on_progress(done, total)`` follows the bytes the relay confirmed (upload) or the bytes
  written (download).

File reads and writes run in worker threads; memory holds at most a window of chunks (and a
download's write batch, 1 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import blob_wire
from messenger_tui.core.blob_wire import (
    BLOB_ID_LEN,
    MAX_BLOB_MESSAGE,
    BlobAck,
    BlobChunk,
    BlobCreate,
    BlobCreated,
    BlobData,
    BlobEnd,
    BlobErrorCode,
    BlobGet,
    BlobInfo,
    BlobOffset,
    BlobRelayFrame,
    BlobResume,
)
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import KEY_LEN, Error
from messenger_tui.transport.backoff import Backoff
from messenger_tui.transport.dialer import authenticate, connection_class, open_socket
from messenger_tui.transport.errors import (
    PinMismatch,
    RelayAuthFailed,
    RelayProtocolError,
    RelayUnreachable,
    TlsError,
    TransportError,
)
from messenger_tui.transport.urls import RelayEndpoint, parse_relay_url

__all__ = [
    "BlobLink",
    "BlobRefused",
    "BlobSource",
    "BlobTransfer",
    "BlobUploadState",
    "FileSource",
    "blob_endpoint",
]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0
MAX_QUEUE = 16
#: Downloaded bytes gathered before one write: one worker-thread hop per MiB rather than per
#: 64 KiB frame (benchmarks/file_transfer.py measures both).
WRITE_BATCH = 1024 * 1024

#: Told ``(done, total)`` bytes of a blob transfer.
OnBlobProgress = Callable[[int, int], None]
F = TypeVar("F")


class BlobRefused(TransportError):
    """The relay refused the transfer for good; ``code`` is its error code (``quota_bytes``,
    ``too_large``, ``not_found``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Resync(TransportError):
    """The relay holds a different offset than we sent from: resume again at once."""


class BlobSource(Protocol):
    """The bytes of an upload, readable at any offset (blocking; runs in a worker thread)."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class FileSource:
    """A ciphertext file as a :class:`BlobSource`."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise OSError(f"the file changed while uploading (short read at {offset})")
        return data

    def close(self) -> None:
        os.close(self._fd)


class BlobUploadState(msgspec.Struct, frozen=True, tag="blob-upload/1"):
    """What resumes an upload after a restart: the relay's id and the blob's size."""

    id: bytes
    size: int


@dataclass
class BlobTransfer:
    """How a transfer went."""

    id: bytes
    size: int
    #: Bytes put on the wire (upload) or received (download) in all, resends included.
    wire_bytes: int = 0
    #: Connections it took (1 without a drop).
    connections: int = 0

    @property
    def resent(self) -> int:
        """Bytes beyond the ones that were needed (sent or received twice)."""
        return max(0, self.wire_bytes - self.size)


def blob_endpoint(endpoint: RelayEndpoint) -> RelayEndpoint:
    """The blob route beside a message-link endpoint (same scheme, host, port, TLS, pin;
    ``/blob`` appended to the path)."""
    parts = urllib.parse.urlsplit(endpoint.connect_url)
    path = parts.path.rstrip("/") + blob_wire.BLOB_PATH
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return replace(endpoint, connect_url=url)


class BlobLink:
    """Uploads and downloads at one relay's blob route as one identity."""

    def __init__(
        self,
        relay_url: str,
        identity_public: bytes,
        sign: Callable[[bytes], bytes],
        *,
        connect_timeout: float = 10.0,
        retry_window_s: float = 60.0,
        backoff: Backoff | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        write_batch: int = WRITE_BATCH,
    ) -> None:
        if len(identity_public) != KEY_LEN:
            raise ValueError(f"identity_public must be {KEY_LEN} bytes")
        self.endpoint = blob_endpoint(parse_relay_url(relay_url))
        self._conn_class = connection_class(self.endpoint)
        self._identity = bytes(identity_public)
        self._sign = sign
        self._connect_timeout = connect_timeout
        self.retry_window_s = retry_window_s
        self._backoff = backoff if backoff is not None else Backoff(base=0.2, cap=5.0)
        self._ssl_context = ssl_context
        self._clock = clock
        self._ws: ClientConnection | None = None
        self._refs = itertools.count(1)
        #: Downloaded bytes gathered before one write (one worker-thread hop per batch).
        self.write_batch = max(1, write_batch)

    def abort_connection(self) -> None:
        """Drop the current connection (as a network failure would); a transfer in progress
        reconnects and resumes."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # ------------------------------------------------------------------ upload

    async def upload(
        self,
        source: Path | BlobSource,
        resume: BlobUploadState | None = None,
        *,
        on_state: Callable[[BlobUploadState], None] | None = None,
        on_progress: OnBlobProgress | None = None,
    ) -> BlobTransfer:
        """Upload ``source`` (a ciphertext file, or a :class:`BlobSource`), or continue the
        upload ``resume``; returns once the relay holds all of it. Raises BlobRefused, or a
        TransportError when the relay stays unreachable for ``retry_window_s``."""
        src: BlobSource = FileSource(source) if isinstance(source, Path) else source
        try:
            if resume is not None and resume.size != src.size:
                raise ValueError(
                    f"the upload to resume is {resume.size} bytes, the source {src.size}"
                )
            transfer = BlobTransfer(id=resume.id if resume else b"", size=src.size)
            states: list[BlobUploadState] = [resume] if resume is not None else []

            def created(state: BlobUploadState) -> None:
                states.append(state)  # the next attempt resumes this upload
                if on_state is not None:
                    on_state(state)

            async def attempt(ws: ClientConnection) -> bool:
                state = states[-1] if states else None
                await self._upload_once(ws, src, state, transfer, created, on_progress)
                return True

            await self._with_retries(attempt, transfer)
            return transfer
        finally:
            if isinstance(source, Path):
                src.close()

    async def _upload_once(
        self,
        ws: ClientConnection,
        src: BlobSource,
        state: BlobUploadState | None,
        transfer: BlobTransfer,
        on_created: Callable[[BlobUploadState], None],
        on_progress: OnBlobProgress | None,
    ) -> BlobUploadState:
        size = src.size
        ref = next(self._refs)
        if state is None:
            await ws.send(blob_wire.encode_blob_frame(BlobCreate(ref=ref, size=size)))
            created = await self._expect(ws, BlobCreated, ref)
            state = BlobUploadState(id=created.id, size=size)
            transfer.id = created.id
            on_created(state)  # a failure between here and the end resumes with this
            offset, max_chunk, window = 0, created.max_chunk, created.window
        else:
            await ws.send(blob_wire.encode_blob_frame(BlobResume(ref=ref, id=state.id)))
            held = await self._expect(ws, BlobOffset, ref)
            if held.size != size:
                raise BlobRefused(
                    "bad_request", f"the relay holds an upload of {held.size} bytes, not {size}"
                )
            if held.complete:
                _report(on_progress, size, size)
                return state
            offset, max_chunk, window = held.offset, held.max_chunk, held.window
        _report(on_progress, offset, size)
        max_chunk = max(1, min(max_chunk, blob_wire.MAX_BLOB_CHUNK))
        window = max(1, window)
        inflight: deque[int] = deque()
        next_offset = offset
        while True:
            while next_offset < size and len(inflight) < window:
                n = min(max_chunk, size - next_offset)
                data = await asyncio.to_thread(src.read_at, next_offset, n)
                chunk = BlobChunk(id=state.id, offset=next_offset, data=data)
                await ws.send(blob_wire.encode_blob_frame(chunk))
                transfer.wire_bytes += n
                next_offset += n
                inflight.append(next_offset)
            frame = await self._recv(ws)
            if isinstance(frame, BlobAck) and frame.id == state.id:
                while inflight and inflight[0] <= frame.offset:
                    inflight.popleft()
                _report(on_progress, frame.offset, size)
                if frame.complete:
                    return state
            elif isinstance(frame, Error):
                if frame.code == BlobErrorCode.BAD_OFFSET:
                    raise _Resync(frame.message)
                raise BlobRefused(frame.code, f"the relay refused the upload: {frame.message}")

    # ---------------------------------------------------------------- download

    async def download(
        self,
        blob_id: bytes,
        dest: Path,
        offset: int = 0,
        *,
        on_progress: OnBlobProgress | None = None,
    ) -> BlobTransfer:
        """Write blob ``blob_id`` into ``dest`` from byte ``offset`` on (the file is created
        0600 when missing; bytes before ``offset`` are left as they are). Returns once the
        file holds the whole blob (fsynced). Raises BlobRefused or TransportError."""
        if len(blob_id) != BLOB_ID_LEN:
            raise ValueError(f"a blob id is {BLOB_ID_LEN} bytes")
        if offset < 0:
            raise ValueError("offset must not be negative")
        transfer = BlobTransfer(id=blob_id, size=-1)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o600)
        position = [offset]  # bytes in the file so far: where the next attempt resumes
        try:

            async def attempt(ws: ClientConnection) -> bool:
                await self._download_once(ws, blob_id, fd, position, transfer, on_progress)
                return True

            await self._with_retries(attempt, transfer)
            await asyncio.to_thread(os.ftruncate, fd, transfer.size)
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        return transfer

    async def _download_once(
        self,
        ws: ClientConnection,
        blob_id: bytes,
        fd: int,
        cursor: list[int],
        transfer: BlobTransfer,
        on_progress: OnBlobProgress | None,
    ) -> None:
        """Receive from ``cursor[0]`` to the end, advancing ``cursor[0]`` as bytes land on
        disk: frames are gathered up to :attr:`write_batch` bytes and written at once (bytes
        not written when the connection drops are fetched again on resume)."""
        position = cursor[0]
        ref = next(self._refs)
        await ws.send(blob_wire.encode_blob_frame(BlobGet(ref=ref, id=blob_id, offset=position)))
        info = await self._expect(ws, BlobInfo, ref)
        transfer.size = info.size
        _report(on_progress, position, info.size)
        pending = bytearray()  # received, not yet written: from cursor[0] on
        received = position

        async def flush() -> None:
            if pending:
                await asyncio.to_thread(_pwrite_all, fd, bytes(pending), cursor[0])
                cursor[0] += len(pending)
                pending.clear()
                _report(on_progress, cursor[0], info.size)

        while True:
            frame = await self._recv(ws)
            if isinstance(frame, BlobData) and frame.id == blob_id:
                if frame.offset != received or received + len(frame.data) > info.size:
                    raise RelayProtocolError(
                        f"relay {self.endpoint.display} sent blob bytes out of order"
                    )
                pending += frame.data
                received += len(frame.data)
                transfer.wire_bytes += len(frame.data)
                if len(pending) >= self.write_batch:
                    await flush()
            elif isinstance(frame, BlobEnd) and frame.id == blob_id:
                if received != info.size:
                    raise RelayProtocolError(
                        f"relay {self.endpoint.display} ended the blob at {received} of "
                        f"{info.size} bytes"
                    )
                await flush()
                return
            elif isinstance(frame, Error):
                raise BlobRefused(frame.code, f"the relay refused the download: {frame.message}")

    # ---------------------------------------------------------------- plumbing

    async def _with_retries(
        self,
        attempt: Callable[[ClientConnection], Awaitable[bool]],
        transfer: BlobTransfer,
    ) -> None:
        """Run ``attempt`` on fresh connections until it succeeds; transient failures retry
        with backoff while progress came within ``retry_window_s``."""
        self._backoff.reset()
        last_progress = time.monotonic()
        progress_mark = transfer.wire_bytes
        while True:
            try:
                ws = await self._connect()
            except (RelayAuthFailed, RelayProtocolError, PinMismatch, TlsError):
                raise
            except TransportError as exc:
                failure: Exception = exc
            except ConnectionClosed as exc:  # closed during the handshake (a relay going down)
                failure = RelayUnreachable(self.endpoint.display, f"connection lost ({exc})")
            else:
                transfer.connections += 1
                self._ws = ws
                try:
                    await attempt(ws)
                    return
                except _Resync as exc:
                    failure = exc
                    self._backoff.reset()
                except ConnectionClosed as exc:
                    failure = RelayUnreachable(self.endpoint.display, f"connection lost ({exc})")
                except TimeoutError:
                    failure = RelayUnreachable(self.endpoint.display, "no answer in time")
                finally:
                    self._ws = None
                    await _close(ws)
            if transfer.wire_bytes != progress_mark:
                progress_mark, last_progress = transfer.wire_bytes, time.monotonic()
            if time.monotonic() - last_progress > self.retry_window_s:
                raise failure
            delay = 0.0 if isinstance(failure, _Resync) else self._backoff.next_delay()
            logger.info("blob transfer interrupted (%s); retrying in %.2f s", failure, delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> ClientConnection:
        ws = await open_socket(
            self.endpoint,
            connect_timeout=self._connect_timeout,
            max_size=MAX_BLOB_MESSAGE,
            max_queue=MAX_QUEUE,
            ping_interval=20.0,
            ping_timeout=20.0,
            close_timeout=CLOSE_TIMEOUT,
            ssl_context=self._ssl_context,
            conn_class=self._conn_class,
        )
        await authenticate(
            ws,
            self.endpoint,
            self._identity,
            self._sign,
            clock=self._clock,
            connect_timeout=self._connect_timeout,
        )
        return ws

    async def _recv(self, ws: ClientConnection) -> BlobRelayFrame:
        data = await ws.recv()
        try:
            return blob_wire.decode_blob_relay_frame(data)
        except MalformedFrame as exc:
            raise RelayProtocolError(
                f"relay {self.endpoint.display} sent an undecodable blob frame: {exc}"
            ) from None

    async def _expect(self, ws: ClientConnection, kind: type[F], ref: int) -> F:
        async with asyncio.timeout(self._connect_timeout):
            while True:
                frame = await self._recv(ws)
                if isinstance(frame, kind):
                    return frame
                if isinstance(frame, Error) and frame.ref in (ref, None):
                    raise BlobRefused(frame.code, f"the relay refused: {frame.message}")


def _report(on_progress: OnBlobProgress | None, done: int, total: int) -> None:
    if on_progress is None:
        return
    try:
        on_progress(done, total)
    except Exception:
        logger.exception("blob progress handler failed")


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


async def _close(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close()
    ws.transport.abort()
