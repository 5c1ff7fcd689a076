"""The relay command: ``messenger-tui relay`` and its alias ``python -m messenger_tui.relay``.

Both run :func:`serve` with the options of
:func:`~messenger_tui.relay.command_args.add_relay_arguments` (``messenger-tui relay``
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

import asyncio
import logging
import resource
import sys
from collections.abc import Awaitable, Callable
from typing import Final

from messenger_tui.relay.command_args import build_parser, config_from_args
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.errors import RelayStartError
from messenger_tui.relay.logs import relay_log
from messenger_tui.relay.server import RelayServer, run_relay

#: Exit status when the relay could not start (an invalid option exits 2, as argparse does).
EXIT_START_FAILED: Final = 1

Companion = Callable[[RelayServer], Awaitable[None]]


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
