"""The blob route's limits and its in-memory index of stored blobs (sans-I/O).

:class:`BlobConfig` holds every limit (``RelayConfig.blob``); :class:`BlobIndex` knows every
blob on disk (rebuilt from the blob directory at start, see
:mod:`messenger_tui.relay.blob_store`), charges each one to its uploader and decides whether a
new upload fits: the blob size cap, the uploader's byte and blob quotas, its unfinished
uploads, and the relay-wide byte cap (identities are free: the relay-wide cap is what bounds
the disk, per-identity quotas keep one identity from taking all of it). Which blobs are due
for removal (expired, or an upload left unfinished) is :meth:`BlobIndex.due`. With a Redis
store the index's own counts decide nothing: the quotas are counted in Redis across nodes
(relay/redis_blob_quota.py, with the same refusals: :func:`size_refusal`,
:func:`owner_refusal`, :func:`relay_full`), and the index's changes are written there
(:attr:`BlobIndex.on_change`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from messenger_tui.core.attachments.layout import MIN_CHUNK_SIZE, BlobLayout
from messenger_tui.core.blob_wire import DEFAULT_BLOB_WINDOW, MAX_BLOB_CHUNK, BlobErrorCode
from messenger_tui.core.wire import ErrorCode

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB
DAY_S: Final = 24 * 60 * 60


@dataclass(frozen=True)
class BlobConfig:
    """Limits of the blob route (docs/protocol.md, "Attachments: blob route")."""

    #: Largest attachment (the file, before padding and encryption) a blob may hold; the relay
    #: admits blobs up to the padded, sealed size of such a file (:attr:`max_blob_size`).
    max_file_size: int = 100 * MIB
    #: Bytes of blobs (finished or not) one identity may have stored at once.
    quota_bytes: int = 1 * GIB
    #: Blobs one identity may have stored at once.
    quota_count: int = 1_000
    #: Unfinished uploads one identity may hold at once.
    max_uploads: int = 4
    #: Bytes of blobs the whole relay stores at most (what bounds the disk: identities are free).
    total_bytes: int = 20 * GIB
    #: A finished blob is removed this long after its upload completed.
    ttl_s: float = 30 * DAY_S
    #: An unfinished upload is removed this long after its last chunk.
    partial_ttl_s: float = 1 * DAY_S
    #: How often expired blobs and stale uploads are looked for.
    sweep_interval_s: float = 600.0
    #: An upload is fsynced at least every this many bytes (and when it completes).
    fsync_bytes: int = 8 * MIB
    #: Unacknowledged chunks a client may send ahead.
    window: int = DEFAULT_BLOB_WINDOW
    #: Chunk size the relay asks uploads to use and sends downloads in (at most
    #: MAX_BLOB_CHUNK): smaller chunks keep each turn of the event loop short, so a chat
    #: frame never waits long behind one.
    chunk_size: int = 64 * 1024
    #: Chunks a download reads from disk ahead of the one being sent (0: read each after
    #: the previous one went out): at most this many chunks per download in memory.
    read_ahead: int = 4
    #: Where blobs live; None: ``<data dir>/blobs``.
    dir: Path | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_file_size",
            "quota_bytes",
            "quota_count",
            "max_uploads",
            "total_bytes",
            "fsync_bytes",
            "window",
            "chunk_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"blob {name} must be positive")
        if min(self.ttl_s, self.partial_ttl_s, self.sweep_interval_s) <= 0:
            raise ValueError("blob lifetimes and the sweep interval must be positive")
        if not 0 <= self.read_ahead <= 64:
            raise ValueError("blob read_ahead must be from 0 to 64")
        if self.chunk_size > MAX_BLOB_CHUNK:
            raise ValueError(f"blob chunk_size must be at most {MAX_BLOB_CHUNK}")
        BlobLayout(self.max_file_size, MIN_CHUNK_SIZE)  # within the format's bound

    @property
    def max_blob_size(self) -> int:
        """The largest blob accepted: a ``max_file_size`` file padded and sealed in the
        smallest chunks the format allows (the most tag overhead)."""
        return BlobLayout(self.max_file_size, MIN_CHUNK_SIZE).blob_size

    def directory(self, data_dir: Path) -> Path:
        """The blob directory for a relay whose data directory is ``data_dir``."""
        return self.dir if self.dir is not None else data_dir / "blobs"


@dataclass
class BlobEntry:
    """One blob the relay holds (finished, or an upload in progress)."""

    id: bytes
    owner: bytes
    size: int
    offset: int = 0  # bytes written so far (== size once complete)
    complete: bool = False
    #: Completion time for a finished blob, last write for an upload (relay clock, ms).
    touched_ms: int = 0
    unsynced: int = 0  # bytes written since the last fsync


@dataclass
class _Usage:
    bytes: int = 0
    count: int = 0
    uploads: int = 0


@dataclass
class UploadRefusal:
    """Why an upload cannot start: a wire error code and a message for the user."""

    code: str
    message: str


def _mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def size_refusal(config: BlobConfig, size: int) -> UploadRefusal | None:
    """Why a blob of ``size`` bytes is refused whoever uploads it (over the size cap)."""
    if size > config.max_blob_size:
        return UploadRefusal(
            ErrorCode.TOO_LARGE,
            f"a blob of {size} bytes is over this relay's limit of {config.max_blob_size} "
            f"bytes (files up to {_mib(config.max_file_size)})",
        )
    return None


def owner_refusal(
    config: BlobConfig, size: int, used: int, count: int, uploads: int
) -> UploadRefusal | None:
    """Why an identity holding ``used`` bytes in ``count`` blobs, ``uploads`` of them
    unfinished, may not start an upload of ``size`` bytes (checked in this order)."""
    if uploads >= config.max_uploads:
        return UploadRefusal(
            BlobErrorCode.TOO_MANY_UPLOADS,
            f"{uploads} unfinished uploads already; finish or abandon one first "
            f"(limit {config.max_uploads})",
        )
    if count >= config.quota_count:
        return UploadRefusal(
            BlobErrorCode.QUOTA_COUNT,
            f"this identity stores {count} blobs, the relay's limit; older ones expire "
            f"after {config.ttl_s / DAY_S:g} days",
        )
    if used + size > config.quota_bytes:
        return UploadRefusal(
            BlobErrorCode.QUOTA_BYTES,
            f"this upload ({_mib(size)}) would take this identity's stored blobs to "
            f"{_mib(used + size)}, over its quota of {_mib(config.quota_bytes)}",
        )
    return None


def relay_full() -> UploadRefusal:
    """The refusal of an upload that would take the relay over its blob byte cap."""
    return UploadRefusal(
        BlobErrorCode.RELAY_FULL, "the relay's space for attachments is full; try again later"
    )


@dataclass
class BlobIndex:
    """Every stored blob by id, with each uploader's usage."""

    config: BlobConfig
    #: Called with the entry after each add, completion and removal (the Redis blob quota
    #: follows the index this way: relay/redis_blob_quota.py).
    on_change: Callable[[BlobEntry], None] | None = None
    _entries: dict[bytes, BlobEntry] = field(default_factory=dict)
    _usage: dict[bytes, _Usage] = field(default_factory=dict)
    total_bytes: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BlobEntry]:
        return iter(list(self._entries.values()))

    def get(self, blob_id: bytes) -> BlobEntry | None:
        return self._entries.get(blob_id)

    def usage(self, owner: bytes) -> tuple[int, int, int]:
        """(bytes, blobs, unfinished uploads) charged to ``owner``."""
        u = self._usage.get(owner)
        return (u.bytes, u.count, u.uploads) if u else (0, 0, 0)

    def refusal(self, owner: bytes, size: int) -> UploadRefusal | None:
        """Why ``owner`` may not start an upload of ``size`` bytes now; None when it may."""
        used, count, uploads = self.usage(owner)
        return (
            size_refusal(self.config, size)
            or owner_refusal(self.config, size, used, count, uploads)
            or (relay_full() if self.total_bytes + size > self.config.total_bytes else None)
        )

    def add(self, entry: BlobEntry) -> None:
        """Charge ``entry`` to its owner (no checks: :meth:`refusal` comes first)."""
        if entry.id in self._entries:
            raise ValueError("blob id already present")
        self._entries[entry.id] = entry
        u = self._usage.setdefault(entry.owner, _Usage())
        u.bytes += entry.size
        u.count += 1
        u.uploads += 0 if entry.complete else 1
        self.total_bytes += entry.size
        if self.on_change is not None:
            self.on_change(entry)

    def completed(self, entry: BlobEntry, now_ms: int) -> None:
        """The upload of ``entry`` finished."""
        if entry.complete:
            return
        entry.complete = True
        entry.offset = entry.size
        entry.touched_ms = now_ms
        self._usage[entry.owner].uploads -= 1
        if self.on_change is not None:
            self.on_change(entry)

    def remove(self, blob_id: bytes) -> BlobEntry | None:
        """Forget a blob and release its charge; the entry, or None when unknown."""
        entry = self._entries.pop(blob_id, None)
        if entry is None:
            return None
        u = self._usage[entry.owner]
        u.bytes -= entry.size
        u.count -= 1
        u.uploads -= 0 if entry.complete else 1
        if u.count == 0:
            del self._usage[entry.owner]
        self.total_bytes -= entry.size
        if self.on_change is not None:
            self.on_change(entry)
        return entry

    def due(self, now_ms: int) -> list[BlobEntry]:
        """Blobs to remove now: finished ones older than ``ttl_s``, unfinished uploads with no
        chunk for ``partial_ttl_s``."""
        ttl_ms = int(self.config.ttl_s * 1000)
        partial_ms = int(self.config.partial_ttl_s * 1000)
        return [
            e
            for e in self._entries.values()
            if now_ms - e.touched_ms >= (ttl_ms if e.complete else partial_ms)
        ]
