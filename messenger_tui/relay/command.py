"""The relay command: ``messenger-tui relay`` and its alias ``python -m messenger_tui.relay``.

Both run :func:`serve` with the options of :func:`add_relay_arguments` (``messenger-tui relay``
adds ``--echo``, which runs the Echo contact beside the relay as a *companion*: client code the
relay layer never imports). Once the relay listens it prints to stdout::

    relay listening on ws://127.0.0.1:PORT relay_key=<64 hex digits>
    relay data: DIR

(tests and benchmarks start it with ``--port 0`` and read the first line). SIGTERM and SIGINT
stop it cleanly: clients get close code 1001, pending writes commit, the database closes (no
-wal or -shm left behind), exit status 0. A relay that cannot start prints one line,
``error: <why>``, to stderr and exits 1 (2 for an invalid option). Logs go to stderr and to
``relay.log`` in the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import platformdirs

from messenger_tui.core import wire
from messenger_tui.relay.blob_args import add_blob_arguments, blob_config
from messenger_tui.relay.config import DAY_SECONDS, RateLimit, RelayConfig
from messenger_tui.relay.errors import RelayStartError
from messenger_tui.relay.logs import relay_log
from messenger_tui.relay.quota_args import add_quota_arguments, quota_config
from messenger_tui.relay.server import RelayServer, run_relay

DEFAULT_PORT: Final = 47800
#: Exit status when the relay could not start (an invalid option exits 2, as argparse does).
EXIT_START_FAILED: Final = 1

Companion = Callable[[RelayServer], Awaitable[None]]


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


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each connection holds a descriptor);
    return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def _announce(server: RelayServer) -> None:
    print(f"relay listening on {server.url} relay_key={server.relay_key.hex()}", flush=True)
    print(f"relay data: {server.config.data_dir}", flush=True)


def error_line(message: str) -> None:
    """The one line a relay that cannot start prints."""
    print(f"error: {message}", file=sys.stderr, flush=True)


async def serve(config: RelayConfig, *, companion: Companion | None = None) -> int:
    """Run the relay until SIGTERM/SIGINT; the exit status (1 when it could not start)."""
    before, after = raise_open_files_limit()
    if after != before:
        relay_log.debug("open files limit raised from %d to %d", before, after)
    try:
        await run_relay(config, on_ready=_announce, companion=companion)
    except RelayStartError as exc:
        error_line(str(exc))
        return EXIT_START_FAILED
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m messenger_tui.relay`` (the alias of ``messenger-tui relay``)."""
    p = argparse.ArgumentParser(
        prog="python -m messenger_tui.relay",
        description="Run a messenger_tui relay (store-and-forward, prekeys, presence, call "
        "media). The same command as `messenger-tui relay` (which also offers --echo).",
    )
    add_relay_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m messenger_tui.relay``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    relay_log.setLevel(args.log_level)
    return asyncio.run(serve(config))
