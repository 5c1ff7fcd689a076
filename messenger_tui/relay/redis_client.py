"""Reaching Redis for the relay's Redis modules (the store, :mod:`.redis_store`, and the blob
quotas, :mod:`.redis_blob_quota`): opening a client on a store URL (standalone through a
blocking pool, or a Cluster from a seed node), running a command or a Lua script with every
Redis failure turned into :class:`~messenger_tui.relay.store.StoreUnavailable` (one line; the
connection pool reconnects on the next call once Redis is back), and :class:`Script`, a Lua
script run by EVALSHA and loaded on the node that lacks it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from messenger_tui.relay.store import StoreUnavailable

SOCKET_TIMEOUT_S: Final = 5.0
MAX_CONNECTIONS: Final = 64

T = TypeVar("T")
Client = Redis | RedisCluster


class Script:
    """A Lua script run by EVALSHA, loaded with EVAL on the node that lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        # Redis names a script by its SHA-1 (EVALSHA): an identifier, not a security use.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self, client: Client, script_keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(script_keys), *script_keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(script_keys), *script_keys, *args)


def open_client(url: str, *, cluster: bool) -> Client:
    """A client of ``url`` (``redis://`` or ``rediss://``; ``cluster``: a seed node). It
    connects on its first command."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    # Blocking: the concurrent scripts of a big batch wait for a free connection.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_S, **options
    )
    return Redis(connection_pool=pool)


async def call(client: Client, op: Callable[[Client], Awaitable[T]]) -> T:
    """``op(client)``, a Redis failure raised as StoreUnavailable (one line)."""
    try:
        result = await op(client)
    except RedisError as exc:
        raise_if_cancelled()
        raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}"[:300]) from None
    except OSError as exc:
        raise_if_cancelled()
        raise StoreUnavailable(f"Redis: {exc}"[:300]) from None
    raise_if_cancelled()
    return result


def raise_if_cancelled() -> None:
    """redis-py's asyncio client can swallow a cancellation that lands inside a command (it
    tears the connection down and returns or raises a RedisError); honour it here, so a
    relay stopping during a purge does not wait for the next one."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
