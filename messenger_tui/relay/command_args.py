"""The relay command's options (:func:`add_relay_arguments`, shared by ``messenger-tui relay``
and ``python -m messenger_tui.relay``) and the :class:`RelayConfig` they make.

Apart from :mod:`messenger_tui.relay.command` (which runs the server) so that every client
command's parser can offer ``relay``'s options without importing the server, its stores and
redis-py: a client command starts ~0.2 s of CPU sooner (docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

import platformdirs

from messenger_tui.core import wire
from messenger_tui.relay.blob_args import add_blob_arguments, blob_config
from messenger_tui.relay.config import DAY_SECONDS, RateLimit, RelayConfig
from messenger_tui.relay.quota_args import add_quota_arguments, quota_config

DEFAULT_PORT: Final = 47800


def default_data_dir() -> Path:
    """``<user data dir>/relay``: where the relay keeps its data without ``--data``."""
    return Path(platformdirs.user_data_dir("messenger-tui")) / "relay"


def add_relay_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of the relay command (shared by both entry points)."""
    p.add_argument(
        "--data",
        type=Path,
        help=f"data directory, created 0700 (default: {default_data_dir()})",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = pick a free one)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve wss://")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--echo-identity", help="hex identity key of an Echo contact to announce")
    p.add_argument("--ttl-days", type=float, default=30.0, help="envelope lifetime")
    p.add_argument("--mailbox-limit", type=int, default=100_000, help="envelopes per mailbox")
    for name, default in (("send", (1000.0, 5000)), ("signal", (1000.0, 5000))):
        p.add_argument(f"--{name}-rate", type=float, default=default[0], help="per second")
        p.add_argument(f"--{name}-burst", type=int, default=default[1])
    p.add_argument("--fetch-rate", type=float, default=20.0, help="FetchBundle per second")
    p.add_argument("--fetch-burst", type=int, default=200)
    p.add_argument("--media-rate", type=float, default=200.0, help="media frames/s per call leg")
    p.add_argument("--media-burst", type=int, default=400)
    p.add_argument(
        "--media-alone-timeout", type=float, default=60.0, help="seconds a call leg may wait alone"
    )
    p.add_argument(
        "--max-connections-per-address",
        type=int,
        default=64,
        metavar="N",
        help="concurrent connections one source address (IPv6: one /64) may hold; more are "
        "refused with HTTP 429 (default 64; 0 = no cap)",
    )
    p.add_argument(
        "--max-malformed",
        type=int,
        default=20,
        metavar="N",
        help="malformed frames one connection may send before it is closed (default 20)",
    )
    add_quota_arguments(p)
    add_blob_arguments(p)
    p.add_argument("--durable-fsync", action="store_true", help="fsync every commit")
    p.add_argument(
        "--store",
        default="sqlite",
        metavar="URL",
        help="where mailboxes and prekeys live: sqlite (default: the data directory, one "
        "node), redis://[user:pass@]host:port[/db], rediss://... (TLS) or "
        "redis+cluster://host:port (a seed node of a Redis Cluster); several relay nodes on "
        "one Redis serve one user base (docs/operations.md)",
    )
    p.add_argument(
        "--accept-volatile-store",
        action="store_true",
        help="start on a Redis that could lose acknowledged envelopes in a crash (not AOF "
        "with appendfsync always)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    """Turn parsed arguments into a :class:`RelayConfig` (raises ValueError when invalid)."""
    echo = None
    if args.echo_identity:
        try:
            echo = bytes.fromhex(args.echo_identity)
        except ValueError:
            echo = b""
        if len(echo) != wire.KEY_LEN:
            raise ValueError("--echo-identity must be 64 hex digits")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a port number (0..65535)")
    data = Path(args.data).expanduser() if args.data else default_data_dir()
    return RelayConfig(
        data_dir=data,
        host=args.host,
        port=args.port,
        ttl_seconds=max(1, int(args.ttl_days * DAY_SECONDS)),
        mailbox_limit=args.mailbox_limit,
        send_limit=RateLimit(args.send_rate, args.send_burst),
        signal_limit=RateLimit(args.signal_rate, args.signal_burst),
        fetch_bundle_limit=RateLimit(args.fetch_rate, args.fetch_burst),
        durable_fsync=args.durable_fsync,
        store_url=args.store,
        accept_volatile_store=args.accept_volatile_store,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        echo_identity=echo,
        media_rate_limit=RateLimit(args.media_rate, args.media_burst),
        media_alone_timeout_s=args.media_alone_timeout,
        max_connections_per_address=args.max_connections_per_address,
        max_malformed=args.max_malformed,
        blob=blob_config(args),
        **quota_config(args),
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m messenger_tui.relay`` (the alias of ``messenger-tui relay``)."""
    p = argparse.ArgumentParser(
        prog="python -m messenger_tui.relay",
        description="Run a messenger_tui relay (store-and-forward, prekeys, presence, call "
        "media). The same command as `messenger-tui relay` (which also offers --echo).",
    )
    add_relay_arguments(p)
    return p
