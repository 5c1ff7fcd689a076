"""Pairing of the media route (sans-I/O): the two legs of each 1:1 call by join token, the
route's counters, and the group call rooms (relay/group_media.py) the route also serves.

Split out of relay/media_route.py (the connection handling); the rules are in that module's
docstring.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Protocol

from messenger_tui.core import media_wire
from messenger_tui.core.media_wire import Leg
from messenger_tui.relay.group_media import GroupRooms

_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def token_label(token: bytes) -> str:
    """What logs may show of a join token: 8 hex digits of its SHA-256."""
    return hashlib.sha256(token).hexdigest()[:8]


def is_media_path(path: str) -> bool:
    """Whether a websocket request path asks for the media route (``/media``, also behind a
    path prefix such as ``/relay/media``); every other path is the message link."""
    return path.split("?", 1)[0].rstrip("/").endswith(media_wire.MEDIA_PATH)


@dataclass
class MediaRouteCounters:
    """Counters of the media route since the relay started (tests, benchmarks, logs)."""

    connections: int = 0
    joins: int = 0
    refused: int = 0  # joins refused: leg held by another identity
    replaced: int = 0  # legs taken over by a newer connection of the same identity
    alone_timeouts: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped_no_peer: int = 0  # the other leg was absent
    dropped_congested: int = 0  # the other leg's transport buffer was over the limit
    dropped_oversized: int = 0
    dropped_rate_limited: int = 0
    dropped_not_joined: int = 0  # media frames before a successful join
    malformed: int = 0
    strikes: int = 0  # abuse strikes: malformed, oversized, or a request after the join
    dropped_control: int = 0  # error replies dropped: the leg did not read its answers
    closed_not_reading: int = 0  # legs closed: a frame they must see did not fit

    @property
    def dropped(self) -> int:
        """Media frames dropped for any reason."""
        return (
            self.dropped_no_peer
            + self.dropped_congested
            + self.dropped_oversized
            + self.dropped_rate_limited
            + self.dropped_not_joined
        )

    def as_dict(self) -> dict[str, int]:
        """Every counter by name, plus ``dropped``."""
        out = {f.name: int(getattr(self, f.name)) for f in fields(self)}
        out["dropped"] = self.dropped
        return out


class MediaLeg(Protocol):
    """A joined connection as the router sees it."""

    @property
    def identity(self) -> bytes:
        """The identity the connection authenticated as."""
        ...

    def deliver(self, data: bytes) -> bool:
        """Write one media frame to this leg now, or return False (congested or closing)."""
        ...

    def peer_changed(self, present: bool) -> None:
        """The other leg of the route connected or went away."""
        ...

    def replace(self) -> None:
        """A newer connection of the same identity took this leg: close this one."""
        ...


class JoinOutcome(Enum):
    JOINED = "joined"
    RESUMED = "resumed"  # replaced an older connection of the same identity
    LEG_TAKEN = "leg_taken"


class Route:
    """The two legs of one call (keyed by its join token)."""

    __slots__ = ("label", "legs", "owners")

    def __init__(self, label: str) -> None:
        self.label = label
        self.legs: list[MediaLeg | None] = [None, None]
        self.owners: list[bytes | None] = [None, None]

    def peer(self, leg: Leg) -> MediaLeg | None:
        """The connection of the other leg, if present."""
        return self.legs[1 - leg]


class MediaRouter:
    """Routes by join token (sans-I/O: connections come in as :class:`MediaLeg`)."""

    def __init__(self) -> None:
        self._routes: dict[bytes, Route] = {}
        self.stats = MediaRouteCounters()
        #: Group call rooms (relay/group_media.py) share the route and its connections.
        self.groups = GroupRooms()

    def __len__(self) -> int:
        return len(self._routes)

    def join(self, conn: MediaLeg, token: bytes, leg: Leg) -> tuple[JoinOutcome, Route | None]:
        """Put ``conn`` on ``leg`` of the route of ``token``; the route unless refused."""
        route = self._routes.get(token)
        if route is None:
            route = self._routes[token] = Route(token_label(token))
        owner = route.owners[leg]
        if owner is not None and owner != conn.identity:
            self.stats.refused += 1
            if route.legs[0] is None and route.legs[1] is None:
                del self._routes[token]  # cannot happen with owners set, but stay tidy
            return JoinOutcome.LEG_TAKEN, None
        route.owners[leg] = conn.identity
        older = route.legs[leg]
        route.legs[leg] = conn
        self.stats.joins += 1
        if older is not None:
            self.stats.replaced += 1
            older.replace()
            return JoinOutcome.RESUMED, route
        peer = route.peer(leg)
        if peer is not None:
            peer.peer_changed(True)
        return JoinOutcome.JOINED, route

    def leave(self, conn: MediaLeg, token: bytes, leg: Leg) -> None:
        """``conn`` ended; no-op if a newer connection already holds its leg."""
        route = self._routes.get(token)
        if route is None or route.legs[leg] is not conn:
            return
        route.legs[leg] = None
        peer = route.peer(leg)
        if peer is None:
            del self._routes[token]
        else:
            peer.peer_changed(False)
