"""The ``--store`` value of the relay command, parsed (see docs/operations.md).

* ``sqlite`` (the default): ``relay.db`` in the data directory, one node;
* ``redis://[user:pass@]host:port[/db]`` or ``rediss://...`` (TLS): a standalone Redis;
* ``redis+cluster://host:port`` or ``rediss+cluster://...``: a Redis Cluster, given one seed
  node (the others are discovered; MOVED/ASK are followed by the client library).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

_SCHEMES: Final = {
    "redis": ("redis", False),
    "rediss": ("rediss", False),
    "redis+cluster": ("redis", True),
    "rediss+cluster": ("rediss", True),
}


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed ``--store`` value. ``redis_url`` is what redis-py gets (None: SQLite)."""

    redis_url: str | None
    cluster: bool = False
    #: host:port, without any password (for messages and logs).
    where: str = "sqlite"


def parse_store_url(text: str) -> StoreUrl:
    """Parse ``--store``; ValueError with a one-line reason when it is not valid."""
    if text == "sqlite":
        return StoreUrl(None)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"--store {scheme + '://...' if scheme else repr(text)}: expected sqlite, "
            "redis://[user:pass@]host:port[/db], rediss://... or redis+cluster://host:port"
        )
    base, cluster = _SCHEMES[scheme]
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--store: the port of {parts.hostname}:... is not a number") from None
    if not parts.hostname:
        raise ValueError("--store: a Redis URL needs a host (redis://host:port)")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"--store: the database /{path} is not a number (redis://host:port/0)")
    if cluster and path not in ("", "0"):
        raise ValueError("--store: a Redis Cluster has only database 0")
    where = f"{parts.hostname}:{port or 6379}"
    return StoreUrl(base + text[len(scheme) :], cluster, where)
