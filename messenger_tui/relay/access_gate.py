"""The relay's gate for new identities and delivery verifiers.

Identities are free: anyone can make a thousand. What is not free is a source address, so the
relay counts its *first sight* of each identity (the first time it authenticates; the store
remembers every identity it has seen) against a token bucket per source address
(``RelayConfig.new_identity_limit``, default 10 per hour; IPv6 addresses count per /64, the
usual size of one subscriber's network). A known identity always gets in.

Delivery verifiers (:mod:`messenger_tui.core.delivery_access`) are registered here too: the
session forwards ``SetDeliveryVerifier``, and group send grants (relay/group_grants.py):
``SetGroupGrants``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from messenger_tui.core.delivery_access import VERIFIER_LEN
from messenger_tui.relay.group_grants import parse_grants
from messenger_tui.relay.services import RelayServices


def address_key(remote_address: Any) -> bytes:
    """The bucket key of a peer address as websockets reports it ((host, port, ...) or
    None): the packed IPv4 address, or the packed /64 network of an IPv6 address."""
    host = remote_address[0] if isinstance(remote_address, tuple) and remote_address else ""
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return b"?" + str(host).encode("utf-8", "replace")[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped.packed
        return address.packed[:8]
    return address.packed


async def admit_identity(services: RelayServices, identity: bytes, remote_address: Any) -> bool:
    """Whether ``identity`` may use the relay now: True for an identity seen before, and for a
    new one while its source address is within the new-identity budget (then it is recorded);
    False means refuse the connection."""
    store = services.store
    if await store.identity_known(identity):
        return True
    limiter = services.limits.new_identity
    shared = services.shared_new_identity  # several nodes: one budget in Redis
    key = address_key(remote_address)
    if shared is not None:
        allowed = await shared.allow(key)
    else:
        allowed = limiter is None or limiter.allow(key)
    if not allowed:
        services.counters.new_identities_refused += 1
        return False
    await store.record_identity(identity, now_ms=services.clock())
    return True


async def set_verifier(services: RelayServices, identity: bytes, verifier: bytes) -> str | None:
    """Register ``identity``'s delivery verifier; an error message when it is refused."""
    if len(verifier) != VERIFIER_LEN:
        return f"a delivery verifier is {VERIFIER_LEN} bytes (SHA-256), got {len(verifier)}"
    await services.store.set_delivery_verifier(identity, verifier, now_ms=services.clock())
    return None


async def set_grants(services: RelayServices, identity: bytes, packed: bytes) -> str | None:
    """Register ``identity``'s grants; an error message when they are refused."""
    grants = parse_grants(packed)
    if isinstance(grants, str):
        return grants
    await services.store.set_group_grants(identity, grants, now_ms=services.clock())
    return None
