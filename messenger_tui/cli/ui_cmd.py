"""``messenger-tui ui``: the Textual app.

Opens the profile in ``--home`` (first-run onboarding when there is none, the unlock screen
when its key has a passphrase). A profile that uses the default local relay URL gets the
embedded relay with the Echo contact, run inside this process, as ``make run`` does; a profile
with another relay URL just connects to it.

The terminal belongs to the app while it runs: log records go to ``messenger-tui.log`` in the
profile directory (the relay's own to its ``relay.log``), never to the screen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from messenger_tui.app.config import Config
from messenger_tui.app.errors import AppError
from messenger_tui.app.profile import (
    DEFAULT_RELAY_PORT,
    default_home,
    default_relay_data,
    profile_exists,
)
from messenger_tui.cli.profile_service import home_dir

LOG_FILE = "messenger-tui.log"


def add_ui_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``messenger-tui ui`` (called from main.build_parser)."""
    p = sub.add_parser(
        "ui",
        parents=[common],
        help="open the Textual app (first run: create the profile there)",
        description="Open the Textual app on the profile in --home. A profile using the "
        "default local relay gets the embedded relay with the Echo contact.",
    )
    p.set_defaults(func=cmd_ui)


async def cmd_ui(args: argparse.Namespace) -> int:
    return await run_ui(args, home_dir(args))


class InProcessRelay:
    """The embedded relay and Echo, started on demand inside the app's event loop."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"
        self._server: Any = None  # RelayServer (imported when started)
        self._tasks: list[asyncio.Task[None]] = []
        self._echo_identity: bytes | None = None

    async def start(self) -> bytes | None:
        from messenger_tui.app.echo import run_echo
        from messenger_tui.cli.relay_cmd import loopback_url, relay_config
        from messenger_tui.relay.server import RelayServer

        if self._server is not None:
            return self._echo_identity
        echo_home = self.data_dir / "echo"
        config = relay_config(
            self.data_dir, "127.0.0.1", self.port, echo_home=echo_home, cert=None, key=None
        )
        server = RelayServer(config)
        try:
            await server.start()
        except Exception as exc:  # port taken, data directory locked by another relay
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise AppError(
                f"the embedded relay could not start on port {self.port} ({reason}); "
                "connecting to whatever relay runs there"
            ) from None
        self._server = server
        self._echo_identity = config.echo_identity
        ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(server.serve_forever(), name="embedded-relay"),
            loop.create_task(run_echo(echo_home, loopback_url(server, config), ready), name="echo"),
        ]
        waiter = loop.create_task(ready.wait())
        await asyncio.wait([waiter, self._tasks[1]], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return self._echo_identity

    async def stop(self) -> None:
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._server is not None:
            await self._server.stop()
            self._server = None


@contextlib.contextmanager
def _log_to_file(home: Path, verbose: bool) -> Iterator[None]:
    """Swap the stderr log handlers for a file in the profile directory while the app runs."""
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_file = home / LOG_FILE
    os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(log_file, 0o600)  # every profile file is the user's only (older ones were 0644)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in saved:
            root.addHandler(h)


def load_ui_config(home: Path) -> Config:
    """``config.toml`` in the profile directory: keymap overrides (checked against the app's
    binding ids and Textual's key names) and setting defaults. Problems in it are shown in
    the app, which starts anyway, without the entries they name."""
    from messenger_tui.app.config import load_config
    from messenger_tui.ui.keymap import binding_ids, key_problem

    return load_config(home, binding_ids=binding_ids(), key_problem=key_problem)


async def run_ui(args: argparse.Namespace, home: Path) -> int:
    from messenger_tui.app.launcher import EmbeddedRelay, Launcher
    from messenger_tui.cli.passphrase import read_passphrase_file
    from messenger_tui.ui import make_app  # Textual loads only for this command

    config = load_ui_config(home)
    relay_data = default_relay_data() if home == default_home() else home / "embedded-relay"
    embedded = InProcessRelay(relay_data, getattr(args, "relay_port", None) or DEFAULT_RELAY_PORT)
    launcher = Launcher(
        home,
        embedded=EmbeddedRelay(embedded.url, embedded.start),
        setting_defaults=config.defaults,
    )
    service = None
    passphrase_file = getattr(args, "passphrase_file", None) or os.environ.get(
        "MESSENGER_TUI_PASSPHRASE_FILE"
    )
    if passphrase_file and profile_exists(home):
        service = await launcher.open(read_passphrase_file(passphrase_file))
    app = make_app(
        service,
        launcher=launcher,
        keymap=config.keymap,
        notices=config.problems,
        freeze_gc=True,
    )
    with _log_to_file(home, bool(getattr(args, "verbose", False))):
        try:
            await app.run_async()
        finally:
            await app.close_service()
            await embedded.stop()
    if app.startup_error is not None:
        raise app.startup_error  # main() prints it and exits with its code
    return 0
