"""Blob quotas held in Redis, so they hold across relay nodes on one shared blob directory
(``--store redis://…``; docs/operations.md, "Attachments (blobs) with several nodes").

The accounting follows Signal-Server's Redis accounting: a ledger per blob owner (in the
owner's cluster slot, hash tag ``{<owner hex>}``) and one relay-wide ledger (tag ``{blobs}``),
each a counters hash, a per-blob record (size and state: ``u`` unfinished, ``c`` complete)
and a deadline per record (key layout: :mod:`messenger_tui.relay.redis_keys`). Rules:

1. **An upload is reserved before it starts**, by one Lua script per ledger that checks the
   limit and charges the blob in the same step (:data:`RESERVE`): two creates racing on two
   nodes cannot both pass. The owner's ledger goes first (unfinished uploads, blob count,
   bytes: the single-node order of refusals), then the relay-wide bytes; a blob refused
   there is released from the owner's ledger at once. The refusal the client gets is the one
   a single node gives.
2. **Idempotent per blob**: a record exists once per blob id, so a retried reserve or
   release never counts twice (:data:`SYNC` sets a record to a state, or removes it). A
   record only moves forward (unfinished to complete, its deadline later), so a node
   writing what it saw a moment ago cannot undo what another node wrote since.
3. **Everything else follows this node's index** (``BlobIndex.on_change``): an upload
   completing, a blob removed by the sweep (expired, or an upload abandoned), a blob found in
   the shared directory (adopted on first use, or at start) is queued and written by a
   background task, retried every :data:`RETRY_S` while Redis is down (one log line per
   outage); a completion is written before its last chunk is acknowledged, and a node
   writes its queue before each reserve. A blob on disk is thus charged again even if its
   record was lost.
4. **Counters cannot drift from the records** (they change only in the script that changes a
   record), **and records cannot outlive their blob for long**: each has a deadline, the
   blob's own expiry (completion + ``ttl_s``, last chunk + ``partial_ttl_s``) plus a grace of
   two sweep intervals and a minute; a record past it (its node died before releasing it)
   releases itself at the next reserve on its ledger. A running upload refreshes its deadline
   every quarter of ``partial_ttl_s``.

What stays per node: nothing that decides a quota. Each node's index (which blobs it has
seen) only feeds rule 3.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Final

from messenger_tui.relay import redis_keys as keys
from messenger_tui.relay.blob_index import (
    BlobConfig,
    BlobEntry,
    BlobIndex,
    UploadRefusal,
    owner_refusal,
    relay_full,
    size_refusal,
)
from messenger_tui.relay.redis_client import Client, Script, call
from messenger_tui.relay.store import StoreUnavailable

#: Seconds between attempts to write queued blob records while Redis is unreachable.
RETRY_S: Final = 1.0
#: Blob records written concurrently by the background task.
_BATCH: Final = 64
#: Records past their deadline one reserve releases at most.
_PURGE_LIMIT: Final = 64

# KEYS: 1 counters (hash b, n, u), 2 records (hash blob key -> "size,state"), 3 deadlines
# (zset blob key -> ms). Sizes stay strings (no float formatting of Lua numbers).
_LEDGER: Final = r"""
local function drop(k)
  local rec = redis.call('HGET', KEYS[2], k)
  redis.call('ZREM', KEYS[3], k)
  if not rec then return end
  local size, state = string.match(rec, '^(%d+),(%a)$')
  redis.call('HDEL', KEYS[2], k)
  redis.call('HINCRBY', KEYS[1], 'b', '-' .. size)
  redis.call('HINCRBY', KEYS[1], 'n', -1)
  if state == 'u' then redis.call('HINCRBY', KEYS[1], 'u', -1) end
end
local function put(k, size, state, deadline)
  local rec = redis.call('HGET', KEYS[2], k)
  if rec then
    local _, old = string.match(rec, '^(%d+),(%a)$')
    if old == 'u' and state == 'c' then  -- a blob never goes back to unfinished
      redis.call('HINCRBY', KEYS[1], 'u', -1)
      redis.call('HSET', KEYS[2], k, size .. ',c')
    end
  else
    redis.call('HSET', KEYS[2], k, size .. ',' .. state)
    redis.call('HINCRBY', KEYS[1], 'b', size)
    redis.call('HINCRBY', KEYS[1], 'n', 1)
    if state == 'u' then redis.call('HINCRBY', KEYS[1], 'u', 1) end
  end
  redis.call('ZADD', KEYS[3], 'GT', deadline, k)  -- a deadline only moves later
end
"""

#: ARGV: blob key, size, deadline, now, max unfinished uploads, max blobs, max bytes (0: no
#: limit), purge limit. Returns {verdict, bytes, blobs, uploads} (the usage before this
#: blob); verdict "ok", or the limit reached: "uploads", "count", "bytes".
RESERVE: Final = (
    _LEDGER
    + r"""
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[4], 'LIMIT', 0, ARGV[8])
for _, k in ipairs(expired) do drop(k) end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {'ok', 0, 0, 0} end
local c = redis.call('HMGET', KEYS[1], 'b', 'n', 'u')
local b, n, u = tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0
local size = tonumber(ARGV[2])
local maxu, maxn, maxb = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if maxu > 0 and u >= maxu then return {'uploads', b, n, u} end
if maxn > 0 and n >= maxn then return {'count', b, n, u} end
if maxb > 0 and b + size > maxb then return {'bytes', b, n, u} end
put(ARGV[1], ARGV[2], 'u', ARGV[3])
return {'ok', b, n, u}
"""
)

#: ARGV: blob key, size, state ("u", "c", or "-": no record), deadline.
SYNC: Final = (
    _LEDGER
    + r"""
if ARGV[3] == '-' then drop(ARGV[1]) else put(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) end
return 1
"""
)

_RESERVE = Script(RESERVE)
_SYNC = Script(SYNC)
_TOTAL: Final = keys.blob_ledger_keys(None)


class RedisBlobQuota:
    """The blob quotas of a node on a Redis store (see the module docstring). Becomes the
    index's ``on_change`` observer."""

    def __init__(
        self, client: Client, index: BlobIndex, config: BlobConfig, log: logging.Logger
    ) -> None:
        self._client = client
        self._index = index
        self._config = config
        self._log = log
        index.on_change = self._changed
        #: Blobs whose records may differ from the index (written by the background task).
        self._pending: dict[bytes, BlobEntry] = {}
        #: Per blob in the index: (state, touched_ms) as this node last wrote its record.
        self._written: dict[bytes, tuple[str, int]] = {}
        self._wake = asyncio.Event()
        #: One batch of writes at a time: two writes of one record never race each other.
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.grace_ms = int((2 * config.sweep_interval_s + 60) * 1000)
        self.refresh_ms = max(1, int(config.partial_ttl_s * 1000 / 4))

    # --------------------------------------------------------------------------- life

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="blob-quota")
        if self._pending:
            self._wake.set()

    async def stop(self) -> None:
        """Stop the background task, after one last attempt (at most a second) to write
        what is queued; anything left is released by its deadline."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pending:
            try:
                async with asyncio.timeout(1.0):
                    await self.flush()
            except (StoreUnavailable, TimeoutError):
                self._log.warning(
                    "blob quotas: %d blob records not written at stop (their deadlines "
                    "release them)",
                    len(self._pending),
                )

    # ------------------------------------------------------------------------ reserve

    async def reserve(self, entry: BlobEntry) -> UploadRefusal | None:
        """See :meth:`messenger_tui.relay.blob_quota.BlobQuota.reserve` (rule 1)."""
        c = self._config
        refusal = size_refusal(c, entry.size)
        if refusal is not None:
            return refusal
        if self._index.get(entry.id) is not None:
            return None
        await self.flush(entry.owner)  # this node's changes for the owner count first
        key, size = keys.blob_record_key(entry.id), str(entry.size)
        deadline, now = self._deadline(entry), entry.touched_ms
        owner_keys = keys.blob_ledger_keys(entry.owner)
        limits = [c.max_uploads, c.quota_count, c.quota_bytes]
        try:
            reply = await call(
                self._client,
                lambda r: _RESERVE(
                    r, owner_keys, [key, size, deadline, now, *limits, _PURGE_LIMIT]
                ),
            )
            if reply[0] != b"ok":
                used, count, uploads = (int(v) for v in reply[1:4])
                return owner_refusal(c, entry.size, used, count, uploads) or relay_full()
            reply = await call(
                self._client,
                lambda r: _RESERVE(
                    r, _TOTAL, [key, size, deadline, now, 0, 0, c.total_bytes, _PURGE_LIMIT]
                ),
            )
            if reply[0] != b"ok":
                await call(self._client, lambda r: _SYNC(r, owner_keys, [key, size, "-", 0]))
                return relay_full()
        except StoreUnavailable:
            self._changed(entry)  # not in the index: released once Redis is back
            raise
        self._written[entry.id] = ("u", entry.touched_ms)
        self._index.add(entry)
        return None

    def touched(self, entry: BlobEntry) -> None:
        """An upload's chunk: its record's deadline is refreshed every ``refresh_ms``."""
        written = self._written.get(entry.id)
        if written is not None and entry.touched_ms - written[1] >= self.refresh_ms:
            self._changed(entry)

    async def usage(self, owner: bytes | None) -> tuple[int, int, int]:
        """(bytes, blobs, unfinished uploads) charged to ``owner`` (None: the whole relay)."""
        counters = keys.blob_ledger_keys(owner)[0]
        got = await call(self._client, lambda r: r.hmget(counters, ["b", "n", "u"]))
        b, n, u = (int(v or 0) for v in got)
        return b, n, u

    # ------------------------------------------------------------ following the index

    def _deadline(self, entry: BlobEntry) -> int:
        c = self._config
        life_s = c.ttl_s if entry.complete else c.partial_ttl_s
        return entry.touched_ms + int(life_s * 1000) + self.grace_ms

    def _changed(self, entry: BlobEntry) -> None:
        self._pending[entry.id] = entry
        self._wake.set()

    async def flush(self, owner: bytes | None = None) -> None:
        """Write the queued records now (only ``owner``'s, when given). Raises
        StoreUnavailable (what is left stays queued)."""
        while True:
            async with self._flushing:  # one batch at a time: no record written twice at once
                if not await self._flush_batch(owner):
                    return

    async def _flush_batch(self, owner: bytes | None) -> bool:
        """Write up to a batch of queued records; False when none was queued."""
        wanted = (item for item in self._pending.items() if owner is None or item[1].owner == owner)
        batch = list(itertools.islice(wanted, _BATCH))
        if not batch:
            return False
        for blob_id, _ in batch:
            del self._pending[blob_id]
        try:
            results = await asyncio.gather(
                *(self._sync(entry) for _, entry in batch), return_exceptions=True
            )
        except BaseException:  # cancelled (a node stopping): the batch stays queued
            for blob_id, entry in batch:
                self._pending.setdefault(blob_id, entry)
            raise
        failed = [(i, e) for (i, e), r in zip(batch, results) if isinstance(r, BaseException)]
        for blob_id, entry in failed:
            self._pending.setdefault(blob_id, entry)
        if failed:
            self._wake.set()  # the background task retries (it may have found none)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return True

    async def _sync(self, entry: BlobEntry) -> None:
        """Make both ledgers' record of ``entry``'s blob match the index now."""
        current = self._index.get(entry.id)
        key, size = keys.blob_record_key(entry.id), str(entry.size)
        owner_keys = keys.blob_ledger_keys(entry.owner)
        if current is None:
            args: list[object] = [key, size, "-", 0]
        else:
            state = "c" if current.complete else "u"
            written = self._written.get(entry.id)
            if (
                written is not None
                and written[0] == state
                and current.touched_ms - written[1] < self.refresh_ms
            ):
                return
            args = [key, size, state, self._deadline(current)]
        await asyncio.gather(
            call(self._client, lambda r: _SYNC(r, owner_keys, args)),
            call(self._client, lambda r: _SYNC(r, _TOTAL, args)),
        )
        if current is None:
            self._written.pop(entry.id, None)
        elif self._index.get(entry.id) is current:
            self._written[entry.id] = (str(args[2]), current.touched_ms)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # StoreUnavailable; anything else is logged alike
                if not self._failing:
                    self._log.warning(
                        "blob quotas: %s; %d blob records are written when Redis is back",
                        exc if isinstance(exc, StoreUnavailable) else repr(exc),
                        len(self._pending),
                    )
                self._failing = True
                await asyncio.sleep(RETRY_S)
                self._wake.set()
            else:
                if self._failing:
                    self._log.info("blob quotas: Redis is back, blob records written")
                self._failing = False
