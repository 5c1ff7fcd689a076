"""Command-line options of the relay's quotas (mailbox classes, new identities, prekeys).

Kept apart from the entry point so every relay command shares them: call
:func:`add_quota_arguments` on the parser and pass :func:`quota_config` to ``RelayConfig``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from messenger_tui.relay.config import RateLimit, RelayConfig

_HOUR = 3600.0


def add_quota_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the quota options (defaults: :class:`RelayConfig`'s)."""
    d = RelayConfig(data_dir=Path("."))
    g = parser.add_argument_group("quotas (see docs/protocol.md, delivery access)")
    g.add_argument(
        "--mailbox-bytes", type=int, default=d.mailbox_bytes, help="contact bytes per mailbox"
    )
    g.add_argument(
        "--request-limit", type=int, default=d.request_limit, help="message requests per mailbox"
    )
    g.add_argument(
        "--request-bytes", type=int, default=d.request_bytes, help="request bytes per mailbox"
    )
    g.add_argument(
        "--request-per-sender",
        type=int,
        default=d.request_per_sender,
        help="message requests one sender may have waiting in one mailbox",
    )
    g.add_argument(
        "--new-identities-per-hour",
        type=float,
        default=d.new_identity_limit.burst,
        help="identities first seen per source address (IPv6 /64) per hour (also the burst)",
    )
    g.add_argument(
        "--prekeys-per-target-per-hour",
        type=float,
        default=d.prekey_target_limit.rate_per_s * _HOUR,
        help="one-time prekeys handed out per identity per hour (burst 20)",
    )
    send, auth = d.address_send_limit, d.address_auth_limit
    assert send is not None and auth is not None
    a = parser.add_argument_group(
        "per source address (IPv6 /64), all identities together; over the rate the relay "
        "stops reading from the connection until its turn (docs/protocol.md)"
    )
    a.add_argument(
        "--address-send-rate",
        type=float,
        default=send.rate_per_s,
        help="Sends per second (a Send takes one slot per started 4 KiB of body)",
    )
    a.add_argument("--address-send-burst", type=int, default=send.burst)
    a.add_argument(
        "--address-auth-rate",
        type=float,
        default=auth.rate_per_s,
        help="new connections (authentication handshakes) per second",
    )
    a.add_argument("--address-auth-burst", type=int, default=auth.burst)


def quota_config(args: argparse.Namespace) -> dict[str, Any]:
    """The RelayConfig fields the quota options set."""
    per_hour = args.new_identities_per_hour
    target = args.prekeys_per_target_per_hour
    if per_hour <= 0 or target <= 0:
        raise ValueError("per-hour limits must be positive")
    return {
        "mailbox_bytes": args.mailbox_bytes,
        "request_limit": args.request_limit,
        "request_bytes": args.request_bytes,
        "request_per_sender": args.request_per_sender,
        "new_identity_limit": RateLimit(per_hour / _HOUR, max(1, int(per_hour))),
        "prekey_target_limit": RateLimit(target / _HOUR, 20),
        "address_send_limit": RateLimit(args.address_send_rate, args.address_send_burst),
        "address_auth_limit": RateLimit(args.address_auth_rate, args.address_auth_burst),
    }
