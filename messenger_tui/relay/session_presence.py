"""A connection's presence subscriptions: ``Subscribe`` checked and answered with the current
``Presence`` of each identity, from this node alone or, with several nodes, from every node
(node_bus rule 4) (a part of :class:`~messenger_tui.relay.session.MessageRouteConnection`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from messenger_tui.core import wire
from messenger_tui.core.wire import ErrorCode
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.frame_queue import FrameQueue
from messenger_tui.relay.presence import Peer
from messenger_tui.relay.services import RelayServices


class SessionPresence(ABC):
    """Subscribe handlers the session dispatches to; the session provides the state below."""

    _s: RelayServices
    _config: RelayConfig
    _frames: FrameQueue

    @abstractmethod
    def _error(self, code: str, message: str, ref: int | bytes | None = None) -> None:
        """Queue an Error frame (the session's)."""

    @abstractmethod
    def _as_peer(self) -> Peer:
        """The session as presence knows it."""

    def _subscribe_refused(self, frame: wire.Subscribe) -> bool:
        """Answer a Subscribe that asks too much or names a bad identity with an Error."""
        limit = self._config.max_subscriptions
        if len(frame.identities) > limit:
            self._error(ErrorCode.BAD_REQUEST, f"at most {limit} identities per Subscribe")
            return True
        if any(len(identity) != wire.KEY_LEN for identity in frame.identities):
            self._error(ErrorCode.BAD_REQUEST, "identities are 32-byte keys")
            return True
        return False

    def _on_subscribe(self, frame: wire.Subscribe) -> None:
        if self._subscribe_refused(frame):
            return
        for presence in self._s.presence.subscribe(self._as_peer(), frame.identities):
            self._frames.try_put(presence)

    async def _on_subscribe_nodes(self, frame: wire.Subscribe) -> None:
        """Subscribe with several nodes: presence comes from every node (node_bus rule 4)."""
        nodes = self._s.nodes
        assert nodes is not None
        if self._subscribe_refused(frame):
            return
        peer = self._as_peer()
        before = self._s.presence.watching(peer)
        local = self._s.presence.subscribe(peer, frame.identities)
        online = await nodes.watch(self._s.presence.watching(peer))
        await nodes.unwatch(before)  # after: channels in both lists stay subscribed
        for presence in local:
            self._frames.try_put(
                wire.Presence(identity=presence.identity, online=presence.identity in online)
            )
