"""The shared services of one relay node, wired together (the server builds them at start):
mailboxes routing each commit to the recipient's local connection or, with several nodes on
one Redis, to the node bus; the prekey directory; rate limits, shared across nodes when there
are several."""

from __future__ import annotations

from messenger_tui.relay.address_pacing import address_pacers
from messenger_tui.relay.clock import Clock
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.logs import relay_log
from messenger_tui.relay.mailboxes import Mailboxes
from messenger_tui.relay.node_bus import NodeBus
from messenger_tui.relay.node_redis import SharedLimiter, is_redis_url
from messenger_tui.relay.prekey_directory import PrekeyDirectory
from messenger_tui.relay.presence import Peer, PresenceRegistry
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.services import RateLimiters, RelayServices
from messenger_tui.relay.store import RelayStore, StoredEnvelope


def build_services(
    config: RelayConfig, clock: Clock, store: RelayStore, relay_key: bytes
) -> RelayServices:
    """The services of a node on ``store`` (its relay public key: ``relay_key``)."""
    # Several nodes on one Redis: the node bus carries what crosses nodes (node_bus.py).
    several = is_redis_url(config.store_url)
    presence = PresenceRegistry(notify_locally=not several)
    nodes = NodeBus(config.store_url, presence, relay_log) if several else None
    offered: dict[int, Peer] = {}
    send = RateLimiter(config.send_limit, clock)
    new_identity = RateLimiter(config.new_identity_limit, clock)

    def route_stored(envelope: StoredEnvelope) -> None:
        peer = presence.peer_for(envelope.recipient)
        if peer is not None:
            peer.offer(envelope)
            offered[id(peer)] = peer
        elif nodes is not None:
            nodes.wake(envelope.recipient, envelope)  # maybe connected to another node

    def batch_end() -> None:
        for peer in offered.values():
            peer.offers_done()
        offered.clear()

    prekeys = PrekeyDirectory(
        store,
        max_one_time=config.max_one_time_prekeys,
        clock=clock,
        pair_limit=config.prekey_pair_limit,
        target_limit=config.prekey_target_limit,
    )
    fetch_bundle = RateLimiter(config.fetch_bundle_limit, clock)
    if nodes is not None:  # one-time prekeys are scarce: their budgets cross nodes
        pair, target = prekeys.local_budgets
        prekeys.share_budgets(
            None
            if pair is None
            else SharedLimiter(nodes, "opkpair", config.prekey_pair_limit, pair.allow),
            None
            if target is None
            else SharedLimiter(nodes, "opktarget", config.prekey_target_limit, target.allow),
        )
    return RelayServices(
        config=config,
        relay_key=relay_key,
        clock=clock,
        store=store,
        mailboxes=Mailboxes(
            store,
            clock=clock,
            ttl_ms=config.ttl_ms,
            mailbox_limit=config.mailbox_limit,
            quota=config.mailbox_quota,
            on_stored=route_stored,
            on_batch_end=batch_end,
        ),
        prekeys=prekeys,
        presence=presence,
        limits=RateLimiters(
            send=send,
            signal=RateLimiter(config.signal_limit, clock),
            fetch_bundle=fetch_bundle,
            new_identity=new_identity,
            **address_pacers(config, clock),
        ),
        log=relay_log,
        nodes=nodes,
        shared_send=None
        if nodes is None
        else SharedLimiter(nodes, "send", config.send_limit, send.allow),
        shared_new_identity=None
        if nodes is None
        else SharedLimiter(nodes, "newid", config.new_identity_limit, new_identity.allow),
        shared_fetch_bundle=None
        if nodes is None
        else SharedLimiter(nodes, "fetch", config.fetch_bundle_limit, fetch_bundle.allow),
    )
