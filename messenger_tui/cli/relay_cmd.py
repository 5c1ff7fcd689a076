"""``messenger-tui relay``: run a relay, optionally with the Echo contact beside it.

The CLI is the only place that composes the relay (server side) with a client-side
participant (Echo); the layers themselves never import each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from messenger_tui.app.echo import ensure_echo_profile, run_echo
from messenger_tui.core.address import encode_address
from messenger_tui.relay.command import EXIT_START_FAILED, error_line, serve
from messenger_tui.relay.command_args import config_from_args
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.errors import RelayStartError
from messenger_tui.relay.server import RelayServer, prepare_data_dir


def certificate_pin(cert_path: Path) -> str:
    """The ``#sha256=...`` URL fragment that pins this certificate."""
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    return "sha256=" + hashlib.sha256(der).hexdigest()


def loopback_url(server: RelayServer, config: RelayConfig) -> str:
    """How a participant on this machine (Echo) reaches the relay."""
    if config.tls_cert is not None:
        return f"wss://127.0.0.1:{server.port}#{certificate_pin(config.tls_cert)}"
    return f"ws://127.0.0.1:{server.port}"


def echo_companion(
    config: RelayConfig, echo_home: Path
) -> Callable[[RelayServer], Awaitable[None]]:
    """Echo as the relay command's companion: it starts once the relay listens, announces
    its address, and runs until the relay stops."""

    async def run(server: RelayServer) -> None:
        ready = asyncio.Event()
        echo_task = asyncio.create_task(run_echo(echo_home, loopback_url(server, config), ready))
        try:
            await asyncio.wait(
                [asyncio.create_task(ready.wait()), echo_task],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if echo_task.done():
                echo_task.result()
            if config.echo_identity is not None:
                print(f"echo contact: {encode_address(config.echo_identity)}", flush=True)
            await echo_task
        finally:
            echo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await echo_task

    return run


def relay_config(
    data: Path, host: str, port: int, *, echo_home: Path | None, cert: str | None, key: str | None
) -> RelayConfig:
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    echo_identity = ensure_echo_profile(echo_home) if echo_home is not None else None
    return RelayConfig(
        data_dir=data,
        host=host,
        port=port,
        tls_cert=Path(cert) if cert else None,
        tls_key=Path(key) if key else None,
        echo_identity=echo_identity,
    )


async def run_relay_command(args: argparse.Namespace) -> int:
    """The relay command (:func:`messenger_tui.relay.command.serve`), with Echo if asked."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        error_line(str(exc))
        return 2
    companion = None
    if args.echo:
        try:
            prepare_data_dir(config.data_dir)
        except RelayStartError as exc:
            error_line(str(exc))
            return EXIT_START_FAILED
        echo_home = config.data_dir / "echo"
        config = dataclasses.replace(config, echo_identity=ensure_echo_profile(echo_home))
        companion = echo_companion(config, echo_home)
    return await serve(config, companion=companion)
