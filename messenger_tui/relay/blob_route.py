"""The blob route: attachment uploads and downloads beside the message link.

Each transfer opens its own websocket at ``/blob``
(:data:`messenger_tui.core.blob_wire.BLOB_PATH`), so a 100 MB upload never sits in front of a
chat message. Flow of one connection (:class:`BlobSession`)::

    Challenge -> Auth -> AuthOk              (the message link's handshake, relay/handshake.py)
    blob_create / blob_resume / blob_chunk / blob_get   (core/blob_wire.py), one at a time

Chat never waits for a blob: every file operation runs in a worker thread
(``asyncio.to_thread``), chunks are at most 256 KiB, a connection buffers at most ``window``
incoming chunks before the relay stops reading it, and a download writes the next chunk only
once the connection's write buffer has drained (websockets' ``send`` waits on it), reading
the file at most ``read_ahead`` chunks ahead.

An upload's chunks are written in order at the stored offset; the ack says how much the relay
holds. A resumed upload (``blob_resume``, by its uploader only) continues from there, on any
connection, after a restart of either side. :class:`~.blob_service.BlobService` owns the
index, the files and the sweeper that removes expired blobs and stale uploads. Logs carry
fingerprints, an 8-hex-digit hash prefix of the id and sizes; never an id (it is the
download capability).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messenger_tui.core import wire
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.blob_wire import (
    BLOB_ID_LEN,
    BLOB_PATH,
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
    decode_blob_client_frame,
    encode_blob_frame,
)
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.relay.blob_index import BlobEntry
from messenger_tui.relay.blob_service import BlobService, BlobStats, id_label
from messenger_tui.relay.handshake import CLOSE_POLICY, authenticate
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.store import StoreUnavailable

ErrorCode = wire.ErrorCode
#: Frames of both modules are msgspec structs tagged by ``t``: one encoder for both.
_encode = msgspec.msgpack.Encoder().encode
#: Bytes waiting for a client above which a reply it must see closes the connection.
CONTROL_LIMIT: Final = 256 * 1024
#: Close code when the relay's storage (Redis: the blob quotas) is unreachable: try again.
CLOSE_TRY_AGAIN: Final = 1013
#: Re-exported: the server builds the service from here.
__all__ = ["CONTROL_LIMIT", "BlobService", "BlobSession", "BlobStats", "id_label", "is_blob_path"]


def is_blob_path(path: str) -> bool:
    """Whether a websocket request path asks for the blob route (``/blob``, also behind a
    path prefix such as ``/relay/blob``)."""
    return path.split("?", 1)[0].rstrip("/").endswith(BLOB_PATH)


class _Closing(Exception):
    """Raised inside a blob session to stop serving (the connection is closing)."""


class BlobSession:
    """One connection of the blob route. Create per connection and ``await run()``."""

    def __init__(
        self, connection: ServerConnection, services: RelayServices, blobs: BlobService
    ) -> None:
        self._conn = connection
        self._s = services
        self._blobs = blobs
        self._index = blobs.index
        self._files = blobs.files
        self._identity = b""
        self._label = "unauthenticated"
        self._abuse = 0
        self._closing = False
        self._fds: dict[bytes, int] = {}  # uploads this connection writes: open .part files

    async def run(self) -> None:
        """Serve the connection until it closes."""
        self._blobs.stats.connections += 1
        self._conn.protocol.max_message_size = MAX_BLOB_MESSAGE
        window = self._blobs.config.window
        # at most `window` chunks wait in websockets' queue before reading pauses
        self._conn.recv_messages.high = window
        self._conn.recv_messages.low = max(1, window // 2)
        try:
            identity = await authenticate(_BlobHandshake(self), self._s, _handshake_decode)
            if identity is None:
                return
            self._identity = identity
            self._label = short_fingerprint(identity)
            self._send(wire.AuthOk(identity=identity, queued=0, prekeys_remaining=0))
            while True:
                data = await self._conn.recv()
                try:
                    frame = decode_blob_client_frame(data)
                except MalformedFrame as exc:
                    await self._strike(ErrorCode.MALFORMED, str(exc), None)
                    continue
                if isinstance(frame, BlobChunk):
                    await self._chunk(frame)
                elif isinstance(frame, BlobCreate):
                    await self._create(frame)
                elif isinstance(frame, BlobResume):
                    await self._resume(frame)
                else:
                    await self._get(frame)
        except (ConnectionClosed, _Closing):
            pass
        except StoreUnavailable as exc:
            # Redis restarting (the blob quotas live there): not this client's fault; it
            # reconnects and retries (1013), one log line, no traceback.
            self._s.log.warning("blob %s: closed, storage unavailable: %s", self._label, exc)
            await self._close(CLOSE_TRY_AGAIN, "relay storage unavailable; retry")
        finally:
            fds, self._fds = self._fds, {}
            for fd in fds.values():
                await asyncio.to_thread(os.close, fd)

    # -------------------------------------------------------------------- writing

    def _send(self, frame: BlobRelayFrame | wire.RelayFrame, *, droppable: bool = False) -> None:
        """Write a small frame now, unless more than CONTROL_LIMIT bytes already wait for this
        client: then an error reply is dropped, anything else closes the connection."""
        conn = self._conn
        transport = conn.transport
        if self._closing or conn.protocol.state is not State.OPEN or transport.is_closing():
            return
        if transport.get_write_buffer_size() > CONTROL_LIMIT:
            if not droppable:
                asyncio.get_running_loop().create_task(self._close(CLOSE_POLICY, "not reading"))
            return
        conn.protocol.send_binary(_encode(frame))
        transport.write(b"".join(conn.protocol.data_to_send()))

    def _error(self, code: str, message: str, ref: int | bytes | None) -> None:
        self._send(wire.Error(code=code, message=message, ref=ref), droppable=True)

    async def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            await self._conn.close(code, reason)
        except Exception:
            self._conn.transport.abort()

    async def _strike(self, code: str, message: str, ref: int | bytes | None) -> None:
        """Answer a bad frame; close 1008 after ``max_malformed`` of them."""
        self._abuse += 1
        self._blobs.stats.malformed += 1
        self._error(code, message, ref)
        if self._abuse >= self._s.config.max_malformed:
            self._s.log.info("blob %s: closed after %d bad frames", self._label, self._abuse)
            await self._close(CLOSE_POLICY, "too many malformed or invalid frames")
            raise _Closing

    # ------------------------------------------------------------------- requests

    async def _own(self, blob_id: bytes, ref: int | bytes) -> BlobEntry | None:
        """The caller's upload ``blob_id``, or None after answering why not."""
        entry = await self._blobs.find(blob_id)
        if entry is None:
            self._error(ErrorCode.NOT_FOUND, "no such upload (it may have expired)", ref)
            return None
        if entry.owner != self._identity:
            self._error(ErrorCode.FORBIDDEN, "this upload belongs to another identity", ref)
            return None
        return entry

    async def _create(self, frame: BlobCreate) -> None:
        blobs = self._blobs
        now = blobs.now()
        entry = BlobEntry(
            id=os.urandom(BLOB_ID_LEN), owner=self._identity, size=frame.size, touched_ms=now
        )
        # checked and charged in one step (with Redis: across nodes), before the files exist
        refusal = await blobs.reserve(entry)
        if refusal is not None:
            blobs.stats.refused += 1
            self._s.log.info("blob %s: upload refused (%s)", self._label, refusal.code)
            self._error(refusal.code, refusal.message, frame.ref)
            return
        try:
            await asyncio.to_thread(self._files.create, entry, now)
        except OSError as exc:
            self._index.remove(entry.id)
            self._s.log.error("blob create failed: %s", exc)
            self._error(ErrorCode.INTERNAL, "the relay could not store the upload", frame.ref)
            return
        blobs.stats.created += 1
        self._s.log.info(
            "blob %s (%s): upload of %d bytes started", id_label(entry.id), self._label, entry.size
        )
        self._send(
            BlobCreated(
                ref=frame.ref,
                id=entry.id,
                offset=0,
                max_chunk=self._blobs.config.chunk_size,
                window=blobs.config.window,
            )
        )

    async def _resume(self, frame: BlobResume) -> None:
        entry = await self._own(frame.id, frame.ref)
        if entry is None:
            return
        async with self._blobs.lock(entry.id):  # an older connection's write lands first
            entry = await self._blobs.refresh(entry)  # another node may have written more
            if entry is None:
                self._error(ErrorCode.NOT_FOUND, "no such upload (it may have expired)", frame.ref)
                return
            self._blobs.stats.resumed += 1
            self._send(
                BlobOffset(
                    ref=frame.ref,
                    id=entry.id,
                    offset=entry.offset,
                    size=entry.size,
                    complete=entry.complete,
                    max_chunk=self._blobs.config.chunk_size,
                    window=self._blobs.config.window,
                )
            )

    async def _chunk(self, frame: BlobChunk) -> None:
        entry = await self._own(frame.id, frame.id)
        if entry is None:
            return
        blobs = self._blobs
        async with blobs.lock(entry.id):
            if self._index.get(entry.id) is not entry:  # removed while waiting
                self._error(ErrorCode.NOT_FOUND, "no such upload (it may have expired)", frame.id)
                return
            if entry.complete:
                self._send(BlobAck(id=entry.id, offset=entry.size, complete=True))
                return
            end = frame.offset + len(frame.data)
            if end > entry.size:
                await self._strike(
                    ErrorCode.TOO_LARGE,
                    f"this chunk ends at byte {end}, past the upload's declared size {entry.size}",
                    frame.id,
                )
                return
            if frame.offset != entry.offset:
                self._error(
                    BlobErrorCode.BAD_OFFSET,
                    f"the relay holds {entry.offset} bytes of this upload; a chunk at "
                    f"{frame.offset} does not follow (resume to continue)",
                    frame.id,
                )
                return
            try:
                await self._write(entry, frame, end)
            except OSError as exc:
                self._s.log.error("blob %s: write failed: %s", id_label(entry.id), exc)
                self._error(ErrorCode.INTERNAL, "the relay could not store this chunk", frame.id)
                await self._close(1011, "storage failure")
                raise _Closing from None
        self._send(BlobAck(id=entry.id, offset=entry.offset, complete=entry.complete))

    async def _write(self, entry: BlobEntry, frame: BlobChunk, end: int) -> None:
        blobs = self._blobs
        fd = self._fds.get(entry.id)
        if fd is None:
            fd = self._fds[entry.id] = await asyncio.to_thread(self._files.open_part, entry.id)
        entry.unsynced += len(frame.data)
        sync = entry.unsynced >= blobs.config.fsync_bytes and end < entry.size
        await asyncio.to_thread(self._files.write, fd, frame.offset, frame.data, sync)
        if sync:
            entry.unsynced = 0
        entry.offset = end
        entry.touched_ms = blobs.now()
        blobs.quota.touched(entry)
        blobs.stats.bytes_in += len(frame.data)
        if end == entry.size:
            del self._fds[entry.id]
            now = blobs.now()
            await asyncio.to_thread(self._files.finish, entry.id, fd, now)
            self._index.completed(entry, now)
            await blobs.settle(entry.owner)  # Redis knows it finished before the client
            blobs.stats.completed += 1
            self._s.log.info(
                "blob %s (%s): upload of %d bytes complete",
                id_label(entry.id),
                self._label,
                entry.size,
            )

    async def _get(self, frame: BlobGet) -> None:
        entry = await self._blobs.find(frame.id)
        if entry is not None and not entry.complete:
            entry = await self._blobs.refresh(entry)  # another node may have finished it
        if entry is None:
            self._error(ErrorCode.NOT_FOUND, "no such blob (it may have expired)", frame.ref)
            return
        if not entry.complete:
            self._error(BlobErrorCode.INCOMPLETE, "this blob's upload is not finished", frame.ref)
            return
        if frame.offset > entry.size:
            self._error(
                ErrorCode.BAD_REQUEST,
                f"offset {frame.offset} is past the blob's end ({entry.size} bytes)",
                frame.ref,
            )
            return
        try:
            fd = await asyncio.to_thread(self._files.open_blob, entry.id)
        except FileNotFoundError:
            self._error(ErrorCode.NOT_FOUND, "no such blob (it may have expired)", frame.ref)
            return
        blobs = self._blobs
        blobs.stats.downloads += 1
        chunk_size = blobs.config.chunk_size
        # reads in flight (worker threads), in order: up to `read_ahead` beyond the chunk
        # being sent, so the disk and the socket work at the same time
        reads: deque[asyncio.Future[bytes]] = deque()
        next_read = frame.offset

        def read_ahead(count: int) -> None:
            nonlocal next_read
            while len(reads) < count and next_read < entry.size:
                n = min(chunk_size, entry.size - next_read)
                reads.append(asyncio.ensure_future(
                    asyncio.to_thread(self._files.read, fd, next_read, n)
                ))  # fmt: skip
                next_read += n

        try:
            self._send(BlobInfo(ref=frame.ref, id=entry.id, size=entry.size))
            offset = frame.offset
            while offset < entry.size:
                read_ahead(1)
                data = await reads.popleft()
                if len(data) != min(chunk_size, entry.size - offset):
                    raise OSError("the blob file is shorter than its size")
                read_ahead(blobs.config.read_ahead)
                # send() waits while the connection's write buffer is over its high mark
                chunk = BlobData(id=entry.id, offset=offset, data=data)
                await self._conn.send(encode_blob_frame(chunk))
                offset += len(data)
                blobs.stats.bytes_out += len(data)
            await self._conn.send(encode_blob_frame(BlobEnd(id=entry.id, size=entry.size)))
        except OSError as exc:
            self._s.log.error("blob %s: read failed: %s", id_label(entry.id), exc)
            self._error(ErrorCode.INTERNAL, "the relay could not read this blob", frame.ref)
        finally:
            if reads:  # a read still running must not meet a closed (or reused) fd
                await asyncio.wait(reads)
                for pending in reads:
                    if not pending.cancelled():
                        pending.exception()  # retrieved: no "never retrieved" warning
            await asyncio.to_thread(os.close, fd)


def _handshake_decode(data: bytes | str) -> wire.ClientFrame | None:
    """A client frame; None for a blob request sent before authenticating."""
    try:
        return wire.decode_client_frame(data)
    except MalformedFrame:
        try:
            decode_blob_client_frame(data)
        except MalformedFrame:
            pass
        else:
            return None
        raise


class _BlobHandshake:
    """A blob session as :func:`authenticate` sees it."""

    def __init__(self, session: BlobSession) -> None:
        self._session = session

    async def recv(self) -> bytes | str:
        return await self._session._conn.recv()

    def send(self, frame: wire.RelayFrame) -> None:
        self._session._send(frame, droppable=isinstance(frame, wire.Error))

    async def close(self, code: int, reason: str) -> None:
        await self._session._close(code, reason)

    async def malformed(self, exc: MalformedFrame) -> None:
        await self._session._strike(ErrorCode.MALFORMED, str(exc), None)
