"""Who decides whether an upload fits the blob limits, and keeps the charges: the blob
route's quota interface (:class:`BlobQuota`).

* :class:`LocalBlobQuota` (one node, ``--store sqlite``): the node's
  :class:`~messenger_tui.relay.blob_index.BlobIndex` is the ledger, as it always was;
  :meth:`~BlobQuota.reserve` checks and charges with no await in between, so two creates on
  the one event loop cannot both pass a limit.
* :class:`~messenger_tui.relay.redis_blob_quota.RedisBlobQuota` (``--store redis://…``,
  several nodes): the ledgers are in Redis and a reserve is one Lua script per ledger, so
  creates racing on different nodes cannot both pass; every other change (completion,
  removal, a blob found in the shared directory) follows the node's index to Redis.

Either way the index holds what this node knows of every blob; only the reserve decides.
"""

from __future__ import annotations

import logging
from typing import Protocol

from messenger_tui.relay.blob_index import BlobConfig, BlobEntry, BlobIndex, UploadRefusal
from messenger_tui.relay.redis_blob_quota import RedisBlobQuota
from messenger_tui.relay.redis_store import RedisStore
from messenger_tui.relay.store import RelayStore


class BlobQuota(Protocol):
    """The blob limits as the blob route uses them."""

    async def start(self) -> None:
        """Begin (after the index was rebuilt from the directory)."""

    async def stop(self) -> None:
        """End; changes not yet carried out are left to the deadlines (Redis)."""

    async def reserve(self, entry: BlobEntry) -> UploadRefusal | None:
        """Check the new upload ``entry`` against the size cap, its owner's quotas and the
        relay-wide cap, and charge it (its bytes, one blob, one unfinished upload) in the
        same step; None when it is charged and in the index, else why it is refused.
        Idempotent per blob id. Raises StoreUnavailable (Redis down: nothing charged that
        is not released later)."""

    def touched(self, entry: BlobEntry) -> None:
        """The upload ``entry`` wrote a chunk (its ``touched_ms`` moved)."""

    async def flush(self, owner: bytes | None = None) -> None:
        """Carry out now what follows the index in the background (Redis: the queued
        records; only ``owner``'s when given). Raises StoreUnavailable."""

    async def usage(self, owner: bytes | None) -> tuple[int, int, int]:
        """(bytes, blobs, unfinished uploads) charged to ``owner`` (None: the whole relay).
        Raises StoreUnavailable."""


class LocalBlobQuota:
    """One node: the index is the ledger (see the module docstring)."""

    def __init__(self, index: BlobIndex) -> None:
        self._index = index

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def reserve(self, entry: BlobEntry) -> UploadRefusal | None:
        if self._index.get(entry.id) is not None:
            return None  # charged already
        refusal = self._index.refusal(entry.owner, entry.size)
        if refusal is None:
            self._index.add(entry)  # no await since the check: nothing came between
        return refusal

    def touched(self, entry: BlobEntry) -> None:
        pass

    async def flush(self, owner: bytes | None = None) -> None:
        pass

    async def usage(self, owner: bytes | None) -> tuple[int, int, int]:
        if owner is not None:
            return self._index.usage(owner)
        index = self._index
        return index.total_bytes, len(index), sum(not e.complete for e in index)


def blob_quota_for(
    store: RelayStore | None, index: BlobIndex, config: BlobConfig, log: logging.Logger
) -> BlobQuota:
    """The quota of a node on ``store``: in Redis with a Redis store, else in ``index``."""
    if isinstance(store, RedisStore):
        return RedisBlobQuota(store.client, index, config, log)
    return LocalBlobQuota(index)
