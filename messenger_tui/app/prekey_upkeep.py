"""Prekey maintenance: keep the relay stocked with our one-time prekeys and a fresh signed one.

What to do is decided by the pure :func:`plan` (no store, no relay: testable alone); the
:class:`PrekeyUpkeep` reads the store, carries the plan out and publishes. The rules:

* The signed prekey is rotated when it is older than ``SIGNED_PREKEY_ROTATE_MS`` (or there is
  none); signed prekeys older than ``SIGNED_PREKEY_KEEP_MS`` are forgotten then, so a late
  first message sealed to last week's key still opens.
* When the relay holds fewer than ``PREKEY_LOW_WATER`` one-time prekeys (counting the ones we
  made but have not published yet), ``PREKEY_BATCH`` new ones are made.
* At most ``PREKEY_BATCH`` unpublished one-time prekeys go out per publish, with the current
  signed prekey; nothing is sent when the relay has the current signed prekey and nothing is
  unpublished.

Upkeep runs after every connect (the relay's AuthOk says how many one-time prekeys it holds),
when a handshake used one of ours or the relay says they run low, and hourly in long-running
clients, which also prune old dedupe records and accepted-session markers then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from messenger_tui.core import wire
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Replenish one-time prekeys on the relay below this many; publish this many at a time.
PREKEY_LOW_WATER = 25
PREKEY_BATCH = 100
#: Rotate the signed prekey weekly; keep old ones long enough for late first messages.
SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 3600 * 1000
SIGNED_PREKEY_KEEP_MS = 60 * 24 * 3600 * 1000
#: Dedupe records outlive the relay's 30-day TTL.
DEDUPE_KEEP_MS = 35 * 24 * 3600 * 1000
#: How often long-running clients rotate prekeys and prune old records.
MAINTENANCE_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class PrekeyPlan:
    """What one upkeep round does."""

    #: Make a new signed prekey (and forget signed prekeys older than ``keep`` allows).
    rotate_signed: bool
    #: One-time prekeys to make.
    new_one_time: int
    #: Unpublished one-time prekeys to publish (the oldest first), after making new ones.
    publish_one_time: int
    #: Send a PublishPrekeys at all (False: the relay has everything already).
    publish: bool


def plan(
    *,
    remaining: int,
    unpublished: int,
    signed: tuple[int, int] | None,
    relay_signed_id: int | None,
    now_ms: int,
    low_water: int = PREKEY_LOW_WATER,
    batch: int = PREKEY_BATCH,
    rotate_after_ms: int = SIGNED_PREKEY_ROTATE_MS,
) -> PrekeyPlan:
    """Decide one upkeep round. ``remaining``: one-time prekeys the relay holds;
    ``unpublished``: ones made here but not published; ``signed``: our newest signed
    prekey's (id, created_ms), None if there is none; ``relay_signed_id``: the signed
    prekey id the relay has (None: none)."""
    rotate = signed is None or now_ms - signed[1] > rotate_after_ms
    new = batch if remaining + unpublished < low_water else 0
    publish_one_time = min(unpublished + new, batch)
    stale_signed = rotate or signed is None or relay_signed_id != signed[0]
    return PrekeyPlan(
        rotate_signed=rotate,
        new_one_time=new,
        publish_one_time=publish_one_time,
        publish=stale_signed or publish_one_time > 0,
    )


class PrekeyUpkeep:
    """Carries out :func:`plan` against the store and the relay; owns the hourly loop.
    ``lock`` serialises upkeep with the service's after-connect setup."""

    def __init__(
        self,
        store: Store,
        identity: IdentityKeyPair,
        client: RelayClient,
        now_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._identity = identity
        self._client = client
        self._now_ms = now_ms
        self.lock = asyncio.Lock()
        self._refresh_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def maintain(self, remaining: int, relay_spk_id: int | None) -> None:
        """Rotate the signed prekey when due, top up one-time prekeys when the relay holds
        fewer than PREKEY_LOW_WATER, and publish what the relay lacks."""
        now = self._now_ms()
        prekeys = self._store.prekeys
        with self._store.db.transaction():
            newest = prekeys.newest_signed()
            unpublished = prekeys.unpublished_one_time()
            todo = plan(
                remaining=remaining,
                unpublished=len(unpublished),
                signed=None if newest is None else (newest[0], newest[2]),
                relay_signed_id=relay_spk_id,
                now_ms=now,
                low_water=PREKEY_LOW_WATER,
                batch=PREKEY_BATCH,
                rotate_after_ms=SIGNED_PREKEY_ROTATE_MS,
            )
            if todo.rotate_signed or newest is None:
                spk_id = self._store.settings.next_counter("next_spk_id")
                fresh_spk = pk.generate_signed_prekey(self._identity, spk_id, now)
                prekeys.add_signed(spk_id, _encode(fresh_spk), now)
                prekeys.prune_signed(now - SIGNED_PREKEY_KEEP_MS)
                newest = (spk_id, _encode(fresh_spk), now)
            if todo.new_one_time:
                first = prekeys.max_one_time_id() + 1
                fresh = pk.generate_one_time_prekeys(first, todo.new_one_time)
                prekeys.add_one_time([(k.id, _encode(k)) for k in fresh])
                unpublished = prekeys.unpublished_one_time()
        if not todo.publish:
            return
        spk = _decode(newest[1], pk.SignedPrekey)
        batch = [_decode(d, pk.OneTimePrekey) for _, d in unpublished[: todo.publish_one_time]]
        frame = wire.PublishPrekeys(
            ref=0,
            spk_id=spk.id,
            spk=spk.public,
            spk_sig=spk.signature,
            opks=[wire.OneTimePrekeyWire(k.id, k.public) for k in batch],
        )
        await self._client.publish_prekeys(frame)
        with self._store.db.transaction():
            prekeys.mark_published([k.id for k in batch])

    async def refresh(self) -> None:
        """While connected: ask the relay how many one-time prekeys it still holds (an empty
        publish of the current signed prekey answers with the count) and top up when low."""
        async with self.lock:
            newest = self._store.prekeys.newest_signed()
            if newest is None or not self._client.connected:
                return
            spk = _decode(newest[1], pk.SignedPrekey)
            ok = await self._client.publish_prekeys(
                wire.PublishPrekeys(ref=0, spk_id=spk.id, spk=spk.public, spk_sig=spk.signature)
            )
            remaining = ok.prekeys_remaining if ok.prekeys_remaining is not None else 0
            await self.maintain(remaining, spk.id)

    def schedule_refresh(self) -> None:
        """A :meth:`refresh` in the background, unless one is running."""
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_safely())

    async def _refresh_safely(self) -> None:
        try:
            await self.refresh()
        except (TransportError, OSError) as exc:
            log.warning("prekey refresh failed: %s", type(exc).__name__)

    def prune(self) -> None:
        """Forget dedupe records older than the relay can redeliver."""
        now = self._now_ms()
        with self._store.db.transaction():
            self._store.received.prune(now - DEDUPE_KEEP_MS)
            self._store.sessions.forget_accepted_before(now - 2 * SIGNED_PREKEY_KEEP_MS)

    @property
    def running(self) -> bool:
        """The hourly loop was started (a long-running client)."""
        return self._loop_task is not None

    def start(self) -> None:
        """Start the hourly loop (idempotent)."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Long-running clients (the UI, Echo): rotate prekeys and prune hourly."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            self.prune()
            if self._client.connected:
                await self._refresh_safely()

    async def stop(self) -> None:
        """Cancel the loop and a running refresh."""
        for task in (self._loop_task, self._refresh_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop_task = self._refresh_task = None


def _encode(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


def _decode(data: bytes, kind: type[T]) -> T:
    return msgspec.msgpack.decode(data, type=kind)
