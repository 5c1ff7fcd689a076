"""Opening the relay store named by ``--store`` (:mod:`messenger_tui.relay.store_url`).

A Redis store is refused when the server would lose acknowledged envelopes in a crash (not
AOF with ``appendfsync always``), unless the operator accepts a volatile store.
"""

from __future__ import annotations

from pathlib import Path

import nacl.signing

from messenger_tui.relay.errors import RelayStartError
from messenger_tui.relay.redis_store import RedisStore
from messenger_tui.relay.sqlite_store import DB_FILE, SqliteStore
from messenger_tui.relay.store import RelayStore, StoreUnavailable
from messenger_tui.relay.store_url import StoreUrl


class StoreSetupError(RelayStartError):
    """The store named by ``--store`` cannot be used (unreachable, volatile)."""


async def open_store(
    spec: StoreUrl, data_dir: Path, *, durable_fsync: bool, accept_volatile: bool
) -> RelayStore:
    """Open the store; SQLite errors propagate as they are (the caller names the data
    directory); Redis problems raise :class:`StoreSetupError` with one line."""
    if spec.redis_url is None:
        return await SqliteStore.open(data_dir / DB_FILE, durable_fsync=durable_fsync)
    try:
        store = await RedisStore.open(spec.redis_url, cluster=spec.cluster)
    except StoreUnavailable as exc:
        raise StoreSetupError(f"cannot reach Redis at {spec.where}: {_short(exc)}") from None
    try:
        if not accept_volatile:
            await check_persistence(store, spec.where)
    except BaseException:
        await store.close()
        raise
    return store


async def check_persistence(store: RedisStore, where: str) -> None:
    """Refuse a Redis (every master of a cluster) that could lose an acknowledged write."""
    try:
        settings = await store.persistence_settings()
    except StoreUnavailable as exc:
        raise StoreSetupError(
            f"cannot check the persistence of Redis at {where} (CONFIG GET appendonly, "
            f"appendfsync: {_short(exc)}); make sure it runs AOF with appendfsync always, "
            "then start with --accept-volatile-store"
        ) from None
    for node, (appendonly, appendfsync) in settings.items():
        if appendonly != "yes" or appendfsync != "always":
            raise StoreSetupError(
                f"Redis at {node or where} would lose acknowledged envelopes in a crash "
                f"(appendonly {appendonly}, appendfsync {appendfsync}): set appendonly yes "
                "and appendfsync always, or start with --accept-volatile-store"
            )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text.removeprefix("Redis: ")


async def shared_relay_key(
    store: RelayStore, own: nacl.signing.SigningKey
) -> nacl.signing.SigningKey:
    """The relay key of the deployment: with a Redis store, the one kept in Redis (this
    node's own ``own`` becomes it when no node has stored one yet); else ``own``."""
    if not isinstance(store, RedisStore):
        return own
    try:
        seed = await store.shared_relay_seed(bytes(own))
    except StoreUnavailable as exc:
        raise StoreSetupError(
            f"cannot read the shared relay key from Redis: {_short(exc)}"
        ) from None
    return nacl.signing.SigningKey(seed)
