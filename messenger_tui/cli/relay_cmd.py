"""``messenger-tui relay``: run a relay, optionally with the Echo contact beside it.

The CLI is the only place that composes the relay (server side) with a client-side
participant (Echo); the layers themselves never import each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ssl
from pathlib import Path

import platformdirs

from messenger_tui.app.echo import ensure_echo_profile, run_echo
from messenger_tui.app.errors import AppError
from messenger_tui.core.address import encode_address
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.server import RelayServer


def certificate_pin(cert_path: Path) -> str:
    """The ``#sha256=...`` URL fragment that pins this certificate."""
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    return "sha256=" + hashlib.sha256(der).hexdigest()


def loopback_url(server: RelayServer, config: RelayConfig) -> str:
    """How a participant on this machine (Echo) reaches the relay."""
    if config.tls_cert is not None:
        return f"wss://127.0.0.1:{server.port}#{certificate_pin(config.tls_cert)}"
    return f"ws://127.0.0.1:{server.port}"


async def serve_relay(
    config: RelayConfig, *, echo_home: Path | None, announce: bool = True
) -> None:
    """Run the relay (and Echo) until cancelled."""
    server = RelayServer(config)
    try:
        await server.start()
    except OSError as exc:
        raise AppError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; is another "
            "relay running there? pick another --port"
        ) from None
    echo_task: asyncio.Task[None] | None = None
    try:
        if announce:
            print(f"relay listening on {server.url} relay_key={server.relay_key.hex()}", flush=True)
            print(f"relay data: {config.data_dir}", flush=True)
        if echo_home is not None:
            ready = asyncio.Event()
            echo_task = asyncio.create_task(
                run_echo(echo_home, loopback_url(server, config), ready)
            )
            await asyncio.wait(
                [asyncio.create_task(ready.wait()), echo_task], return_when=asyncio.FIRST_COMPLETED
            )
            if echo_task.done():
                echo_task.result()
            if announce and config.echo_identity is not None:
                print(f"echo contact: {encode_address(config.echo_identity)}", flush=True)
        if echo_task is not None:
            await asyncio.gather(server.serve_forever(), echo_task)
        else:
            await server.serve_forever()
    finally:
        if echo_task is not None:
            echo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await echo_task
        await server.stop()


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
    data = (
        Path(args.data).expanduser()
        if args.data
        else Path(platformdirs.user_data_dir("messenger-tui")) / "relay"
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise AppError("--tls-cert and --tls-key go together")
    echo_home = data / "echo" if args.echo else None
    config = relay_config(
        data, args.host, args.port, echo_home=echo_home, cert=args.tls_cert, key=args.tls_key
    )
    await serve_relay(config, echo_home=echo_home)
    return 0
