"""The relay-wide objects every connection shares, built once by the server.

:class:`RelayServices` is a plain container: the server creates it in ``start()`` and hands it
to each :class:`messenger_tui.relay.session.MessageRouteConnection`. Nothing here does I/O by
itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from messenger_tui.relay.address_pacing import AddressPacer
from messenger_tui.relay.clock import Clock
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.mailboxes import Mailboxes
from messenger_tui.relay.prekey_directory import PrekeyDirectory
from messenger_tui.relay.presence import PresenceRegistry
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.store import RelayStore

if TYPE_CHECKING:
    from messenger_tui.relay.node_bus import NodeBus
    from messenger_tui.relay.node_redis import SharedLimiter


@dataclass
class RateLimiters:
    """One per-identity limiter per request kind, and new identities per source address."""

    send: RateLimiter
    signal: RateLimiter
    fetch_bundle: RateLimiter
    #: Keyed by source address (see :func:`messenger_tui.relay.access_gate.address_key`);
    #: None: no limit.
    new_identity: RateLimiter | None = None
    #: Sends and authentication handshakes per source address, all identities together (see
    #: :mod:`messenger_tui.relay.address_pacing`); None: not paced.
    address_send: AddressPacer | None = None
    address_auth: AddressPacer | None = None

    def prune(self) -> int:
        """Forget refilled buckets; return how many were dropped."""
        pruned = self.send.prune() + self.signal.prune() + self.fetch_bundle.prune()
        for limiter in (self.new_identity, self.address_send, self.address_auth):
            if limiter is not None:
                pruned += limiter.prune()
        return pruned


@dataclass
class RelayCounters:
    """Totals since start, for the periodic stats log line and benchmarks."""

    connections: int = 0
    authenticated: int = 0
    auth_failures: int = 0
    new_identities_refused: int = 0
    malformed: int = 0
    signals_forwarded: int = 0
    signals_dropped: int = 0


@dataclass
class RelayServices:
    """Shared state of one running relay."""

    config: RelayConfig
    relay_key: bytes  # the relay's Ed25519 public key (never the seed)
    clock: Clock
    store: RelayStore
    mailboxes: Mailboxes
    prekeys: PrekeyDirectory
    presence: PresenceRegistry
    limits: RateLimiters
    log: logging.Logger
    counters: RelayCounters = field(default_factory=RelayCounters)
    #: Several nodes on one Redis (relay/node_bus.py); None on SQLite (one node).
    nodes: NodeBus | None = None
    #: Shared (Redis) buckets of the per-identity send limit and of new identities per
    #: address, used instead of ``limits.send`` / ``limits.new_identity`` when ``nodes`` is set.
    shared_send: SharedLimiter | None = None
    shared_new_identity: SharedLimiter | None = None
    #: Shared bucket of the per-identity bundle-fetch limit (several nodes).
    shared_fetch_bundle: SharedLimiter | None = None
