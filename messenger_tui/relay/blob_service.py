"""The relay's blobs (:mod:`.blob_route`): :class:`BlobService` owns the index of blobs
(:mod:`.blob_index`), their files (:mod:`.blob_store`), the quotas (:mod:`.blob_quota`: in the
index on one node, in Redis with a Redis store), one write lock per upload and the sweeper
that removes expired blobs and stale uploads; on several nodes it applies the shared
directory's rules (:mod:`.blob_shared`). :class:`BlobStats` counts what the route did."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, fields
from pathlib import Path

from messenger_tui.relay import blob_shared
from messenger_tui.relay.blob_index import BlobConfig, BlobEntry, BlobIndex, UploadRefusal
from messenger_tui.relay.blob_quota import blob_quota_for
from messenger_tui.relay.blob_store import BlobFiles
from messenger_tui.relay.clock import Clock
from messenger_tui.relay.store import RelayStore, StoreUnavailable


def id_label(blob_id: bytes) -> str:
    """What logs may show of a blob id: 8 hex digits of its SHA-256."""
    return hashlib.sha256(blob_id).hexdigest()[:8]


@dataclass
class BlobStats:
    """Counters of the blob route since the relay started."""

    connections: int = 0
    created: int = 0
    resumed: int = 0
    completed: int = 0
    refused: int = 0  # creates refused by a cap or quota
    bytes_in: int = 0
    bytes_out: int = 0
    downloads: int = 0
    expired: int = 0
    stale_removed: int = 0
    malformed: int = 0
    adopted: int = 0  # blobs another node stored, found in the shared directory

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


class BlobService:
    """The relay's blobs: index, files, per-upload write locks, sweeper."""

    def __init__(
        self,
        config: BlobConfig,
        directory: Path,
        clock: Clock,
        log: logging.Logger,
        *,
        shared: bool = False,
        store: RelayStore | None = None,
    ):
        self.config = config
        #: Several relay nodes share the directory (relay/blob_shared.py).
        self.shared = shared
        self.files = BlobFiles(directory)
        self.index = BlobIndex(config)
        #: Decides whether an upload fits (in Redis when ``store`` is a Redis store).
        self.quota = blob_quota_for(store, self.index, config, log)
        self.stats = BlobStats()
        self._clock = clock
        self._log = log
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the directory, rebuild the index, start the sweeper. Raises OSError."""
        await asyncio.to_thread(self.files.prepare)
        grace = blob_shared.STRAY_GRACE_MS if self.shared else 0
        found = await asyncio.to_thread(self.files.scan, self._clock(), grace)
        for entry in found.entries:
            self.index.add(entry)
        if found.entries or found.removed:
            self._log.info(
                "blobs: %d found (%d unfinished, %d finished at start), %d stray files removed",
                len(found.entries),
                sum(not e.complete for e in found.entries),
                found.finished,
                found.removed,
            )
        await self.quota.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="blobs")

    async def stop(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.quota.stop()

    async def reserve(self, entry: BlobEntry) -> UploadRefusal | None:
        """Check the limits for the new upload ``entry`` and charge it (it joins the index);
        None when charged, else why not. Raises StoreUnavailable (Redis down)."""
        return await self.quota.reserve(entry)

    async def settle(self, owner: bytes | None = None) -> None:
        """Write the quota's queued changes (only ``owner``'s, when given) now if the store
        can take them (else they stay queued: the quota retries in the background)."""
        try:
            await self.quota.flush(owner)
        except StoreUnavailable as exc:
            self._log.debug("blob quotas: not written yet: %s", exc)

    def lock(self, blob_id: bytes) -> asyncio.Lock:
        """The write lock of an upload (one writer at a time, resume waits for it)."""
        lock = self._locks.get(blob_id)
        if lock is None:
            lock = self._locks[blob_id] = asyncio.Lock()
        return lock

    def now(self) -> int:
        return self._clock()

    async def find(self, blob_id: bytes) -> BlobEntry | None:
        """The blob ``blob_id``: from the index, or with several nodes from the shared
        directory (another node stored it: relay/blob_shared.py rule 1)."""
        entry = self.index.get(blob_id)
        if entry is not None or not self.shared:
            return entry
        entry = await blob_shared.adopt(self.index, self.files, blob_id)
        if entry is not None:
            self.stats.adopted += 1
        return entry

    async def refresh(self, entry: BlobEntry) -> BlobEntry | None:
        """With several nodes, ``entry`` as the shared files show it now (rule 2)."""
        if not self.shared:
            return entry
        return await blob_shared.refresh(self.index, self.files, entry)

    async def sweep(self) -> tuple[int, int]:
        """Remove expired blobs and stale uploads now; (expired, stale) counts."""
        expired = stale = 0
        for entry in self.index.due(self._clock()):
            lock = self._locks.get(entry.id)
            if lock is not None and lock.locked():
                continue  # being written right now: not stale
            if self.shared and await blob_shared.skip_removal(
                self.index, self.files, entry, self._clock()
            ):
                continue  # another node wrote it since, or removed it already
            self.index.remove(entry.id)
            self._locks.pop(entry.id, None)
            try:
                await asyncio.to_thread(self.files.remove, entry.id)
            except OSError as exc:
                self._log.warning("removing blob %s failed: %s", id_label(entry.id), exc)
            if entry.complete:
                expired += 1
            else:
                stale += 1
        await self.settle()  # the charges of what went are released now
        self.stats.expired += expired
        self.stats.stale_removed += stale
        if expired or stale:
            self._log.info("blobs: removed %d expired, %d unfinished uploads", expired, stale)
        return expired, stale

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                self._log.error("blob sweep failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.config.sweep_interval_s)
