"""Opening the profile for a headless command, and closing it again."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from messenger_tui.app.profile import default_home
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.passphrase import open_for_command


def home_dir(args: argparse.Namespace) -> Path:
    """The profile directory: ``--home``, else the default one."""
    home = getattr(args, "home", None)
    return Path(home).expanduser() if home else default_home()


def open_service(args: argparse.Namespace) -> MessengerService:
    """The service on the profile in ``--home``: its lock taken first (a second process says
    "in use" before asking), then the passphrase from ``--passphrase-file``, the
    environment, or a prompt."""
    return MessengerService(open_for_command(args, home_dir(args)))


async def close_service(service: MessengerService, *, quiet: bool = False) -> None:
    """Stop the service and close its profile (always closed, even when stopping fails;
    ``quiet``: a failure to stop is not raised)."""
    try:
        if quiet:
            with contextlib.suppress(Exception):
                await service.close()
        else:
            await service.close()
    finally:
        service.profile.close()
