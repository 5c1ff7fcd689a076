"""``python -m messenger_tui.relay --data DIR [--host H] [--port P] [--tls-cert F --tls-key F]``

Runs a relay until SIGTERM/SIGINT. Once it listens it prints exactly one line to stdout::

    relay listening on ws://127.0.0.1:PORT relay_key=<64 hex digits>

(tests and benchmarks start it with ``--port 0`` and read that line). Logs go to stderr and to
``relay.log`` in the data directory. Exit status 0 after a signal, 1 if it could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from messenger_tui.core import wire
from messenger_tui.relay.config import DAY_SECONDS, RateLimit, RelayConfig
from messenger_tui.relay.quota_args import add_quota_arguments, quota_config
from messenger_tui.relay.server import RelayServer, run_relay


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of the relay."""
    p = argparse.ArgumentParser(
        prog="python -m messenger_tui.relay",
        description="Run a messenger_tui relay (store-and-forward, prekeys, presence).",
    )
    p.add_argument("--data", type=Path, required=True, help="data directory (created 0700)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve wss://")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--echo-identity", help="hex identity key of the Echo contact to announce")
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
    add_quota_arguments(p)
    p.add_argument("--durable-fsync", action="store_true", help="fsync every commit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    """Turn parsed arguments into a :class:`RelayConfig` (raises ValueError when invalid)."""
    echo = None
    if args.echo_identity:
        echo = bytes.fromhex(args.echo_identity)
        if len(echo) != wire.KEY_LEN:
            raise ValueError("--echo-identity must be 64 hex digits")
    return RelayConfig(
        data_dir=args.data,
        host=args.host,
        port=args.port,
        ttl_seconds=max(1, int(args.ttl_days * DAY_SECONDS)),
        mailbox_limit=args.mailbox_limit,
        send_limit=RateLimit(args.send_rate, args.send_burst),
        signal_limit=RateLimit(args.signal_rate, args.signal_burst),
        fetch_bundle_limit=RateLimit(args.fetch_rate, args.fetch_burst),
        durable_fsync=args.durable_fsync,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        echo_identity=echo,
        media_rate_limit=RateLimit(args.media_rate, args.media_burst),
        media_alone_timeout_s=args.media_alone_timeout,
        **quota_config(args),
    )


def _announce(server: RelayServer) -> None:
    print(f"relay listening on {server.url} relay_key={server.relay_key.hex()}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
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
    logging.getLogger("messenger_tui.relay").setLevel(args.log_level)
    try:
        asyncio.run(run_relay(config, on_ready=_announce))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(f"relay failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
