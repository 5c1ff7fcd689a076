"""Who is online, and who watches whom (sans-I/O, in memory, never stored).

The session registers itself with :meth:`PresenceRegistry.connect` after authentication and
must call :meth:`PresenceRegistry.disconnect` when the connection ends. One identity has at
most one live connection: a newer one replaces the older, which ``connect`` returns so the
caller can close it (its unacked deliveries are redelivered on the newer one). Watchers get
``Presence`` frames when a watched identity comes online or goes offline (a replacement is no
change); these are ephemeral and dropped for a congested watcher.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from messenger_tui.core import wire
from messenger_tui.relay.frame_sink import FrameSink
from messenger_tui.relay.store import StoredEnvelope


class Peer(FrameSink, Protocol):
    """An authenticated connection as the registry sees it."""

    @property
    def identity(self) -> bytes:
        """The identity key the connection authenticated as."""
        ...

    def offer(self, envelope: StoredEnvelope) -> None:
        """A new envelope for this identity was committed: deliver it when there is room."""
        ...

    def offers_done(self) -> None:
        """The commit batch behind the last offers is complete (time for Drained)."""
        ...

    def replace(self) -> None:
        """A newer connection of the same identity took over: close this one."""
        ...

    def reread(self) -> None:
        """Envelopes for this identity were committed on another node: re-read the mailbox."""
        ...


class PresenceRegistry:
    """Online connections by identity and presence subscriptions."""

    def __init__(self, *, notify_locally: bool = True) -> None:
        """``notify_locally=False`` (several nodes, relay/node_bus.py): online and offline
        changes reach watchers only through :meth:`notify_presence`, called by the node bus
        for changes on any node."""
        self._notify_locally = notify_locally
        self._online: dict[bytes, Peer] = {}
        self._watchers: dict[bytes, set[Peer]] = {}
        self._watching: dict[Peer, frozenset[bytes]] = {}

    def peer_for(self, identity: bytes) -> Peer | None:
        """The live connection of ``identity``, if any."""
        return self._online.get(identity)

    def is_online(self, identity: bytes) -> bool:
        """Whether ``identity`` has a live authenticated connection."""
        return identity in self._online

    @property
    def online_count(self) -> int:
        """Number of identities online."""
        return len(self._online)

    def all_peers(self) -> list[Peer]:
        """Every live connection on this node."""
        return list(self._online.values())

    def watching(self, peer: Peer) -> frozenset[bytes]:
        """The identities ``peer`` watches."""
        return self._watching.get(peer, frozenset())

    def notify_presence(self, identity: bytes, *, online: bool) -> None:
        """Tell the watchers of ``identity`` on this node that it went online or offline."""
        watchers = self._watchers.get(identity)
        if not watchers:
            return
        frame = wire.Presence(identity=identity, online=online)
        for watcher in list(watchers):
            watcher.try_send_frame(frame)

    def connect(self, peer: Peer) -> Peer | None:
        """Make ``peer`` the live connection of its identity; return the replaced one (the
        caller must close it) or None. Watchers hear "online" only if it was offline."""
        older = self._online.get(peer.identity)
        self._online[peer.identity] = peer
        if older is None:
            self._notify(peer.identity, online=True)
        else:
            self._drop_subscriptions(older)
        return older

    def disconnect(self, peer: Peer) -> None:
        """Forget ``peer`` (its subscriptions too). Watchers hear "offline" only if it was
        still the live connection of its identity."""
        self._drop_subscriptions(peer)
        if self._online.get(peer.identity) is peer:
            del self._online[peer.identity]
            self._notify(peer.identity, online=False)

    def subscribe(self, peer: Peer, identities: Iterable[bytes]) -> list[wire.Presence]:
        """Replace ``peer``'s watch list; return the current state of each watched identity
        (the caller sends these frames)."""
        self._drop_subscriptions(peer)
        wanted = frozenset(identities)
        if wanted:
            self._watching[peer] = wanted
            for identity in wanted:
                self._watchers.setdefault(identity, set()).add(peer)
        return [wire.Presence(identity=i, online=i in self._online) for i in sorted(wanted)]

    def _drop_subscriptions(self, peer: Peer) -> None:
        for identity in self._watching.pop(peer, ()):
            watchers = self._watchers.get(identity)
            if watchers is not None:
                watchers.discard(peer)
                if not watchers:
                    del self._watchers[identity]

    def _notify(self, identity: bytes, *, online: bool) -> None:
        if self._notify_locally:
            self.notify_presence(identity, online=online)
