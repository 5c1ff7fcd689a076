"""Blobs on one directory shared by several relay nodes (docs/operations.md, "Attachments
(blobs) with several nodes").

Each node keeps its own :class:`~messenger_tui.relay.blob_index.BlobIndex`, built from the
directory at start; the files are the truth between nodes. Rules, applied by
:class:`~messenger_tui.relay.blob_route.BlobService` when the relay runs on Redis (several
nodes):

1. **A blob another node stored is adopted on first use.** An id missing from the index is
   looked up in the directory (:meth:`BlobFiles.load`); if its ``.meta`` and data file are
   there, the entry joins this node's index (charged to its owner here too) and is served.
2. **A resumed upload is re-read from the files**: another node may have written more of it,
   finished it, or removed it since this node last saw it.
3. **The sweep checks the files before removing**: an upload continued through another node
   has a newer ``.part`` than this node's index says; it is kept. A blob already removed by
   another node is only forgotten.
4. **A node starting does not remove young stray files** (:data:`STRAY_GRACE_MS`): another
   node may be between writing an upload's ``.meta`` and its ``.part``.

The per-identity quotas and the relay-wide byte cap are not this node's: they are counted in
Redis (:mod:`messenger_tui.relay.redis_blob_quota`), and every change the rules above make to
the index (a blob adopted, completed, forgotten) is written there.
"""

from __future__ import annotations

import asyncio
from typing import Final

from messenger_tui.relay.blob_index import BlobEntry, BlobIndex
from messenger_tui.relay.blob_store import BlobFiles

#: Stray files younger than this are left alone by a node's start-up scan (rule 4).
STRAY_GRACE_MS: Final = 60 * 60 * 1000


async def adopt(index: BlobIndex, files: BlobFiles, blob_id: bytes) -> BlobEntry | None:
    """Rule 1: the blob ``blob_id`` from the shared directory, added to ``index``; None when
    the directory does not hold it."""
    found = await asyncio.to_thread(files.load, blob_id)
    current = index.get(blob_id)
    if current is not None:  # another request adopted it meanwhile
        return current
    if found is not None:
        index.add(found)
    return found


async def refresh(index: BlobIndex, files: BlobFiles, entry: BlobEntry) -> BlobEntry | None:
    """Rule 2: bring ``entry`` up to what the files say; None (and forgotten) when another
    node removed it. Call with the upload's lock held."""
    found = await asyncio.to_thread(files.load, entry.id)
    if index.get(entry.id) is not entry:
        return index.get(entry.id)
    if found is None:
        index.remove(entry.id)
        return None
    if entry.complete:
        return entry
    if found.complete:
        index.completed(entry, found.touched_ms)
    else:
        entry.offset = max(entry.offset, found.offset)
        entry.touched_ms = max(entry.touched_ms, found.touched_ms)
    return entry


async def skip_removal(index: BlobIndex, files: BlobFiles, entry: BlobEntry, now_ms: int) -> bool:
    """Rule 3: whether ``entry``, due for removal by this node's index, must not be removed:
    the files show later activity (the entry is updated), or another node removed it already
    (the entry is forgotten)."""
    found = await asyncio.to_thread(files.load, entry.id)
    if found is None:
        index.remove(entry.id)
        return True  # nothing left to remove
    if found.touched_ms <= entry.touched_ms:
        return False
    if found.complete and not entry.complete:
        index.completed(entry, found.touched_ms)
    else:
        entry.offset = max(entry.offset, found.offset)
        entry.touched_ms = found.touched_ms
    config = index.config
    ttl_s = config.ttl_s if entry.complete else config.partial_ttl_s
    return now_ms - entry.touched_ms < int(ttl_s * 1000)
