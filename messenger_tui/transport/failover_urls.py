"""The relay URLs of one deployment, in failover order, and the one the next connection
attempt uses (:class:`~messenger_tui.transport.client.RelayClient`; which one to move to is
the lifecycle table's rule 10, :mod:`messenger_tui.core.links.relay_link`)."""

from __future__ import annotations

from messenger_tui.transport.urls import RelayEndpoint, parse_relay_urls, split_relay_urls


class FailoverUrls:
    """``url``: one relay URL or several, comma-separated (:class:`BadRelayUrl` for an
    unusable one)."""

    def __init__(self, url: str) -> None:
        self.urls: list[str] = []
        self.endpoints: list[RelayEndpoint] = []
        #: The position of the URL in use (of the current or last connection).
        self.index = 0
        self.replace(url)

    def replace(self, url: str) -> None:
        """Use these URLs from now on, the first one first; nothing changes when one of them
        is unusable (:class:`BadRelayUrl`)."""
        endpoints = parse_relay_urls(url)
        self.urls = split_relay_urls(url)
        self.endpoints = endpoints
        self.index = 0

    @property
    def current(self) -> str:
        return self.urls[self.index]

    @property
    def endpoint(self) -> RelayEndpoint:
        return self.endpoints[self.index]

    def __len__(self) -> int:
        return len(self.endpoints)
