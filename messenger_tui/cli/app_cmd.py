"""``messenger-tui`` without a command (``make run``): the app on an embedded local relay.

Until the Textual UI lands this sets everything up (profile, embedded relay with Echo, Echo
as a contact) and tells the user how to talk to Echo with the headless commands, then keeps the
relay running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import getpass
import logging
from pathlib import Path

from messenger_tui.app.echo import ECHO_NAME
from messenger_tui.app.errors import AppError
from messenger_tui.app.profile import (
    create_profile,
    default_home,
    default_relay_data,
    open_profile,
    profile_exists,
)
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.passphrase import passphrase_for
from messenger_tui.cli.relay_cmd import relay_config, serve_relay
from messenger_tui.core.address import encode_address


def _default_name() -> str:
    try:
        return getpass.getuser() or "me"
    except (KeyError, OSError):
        return "me"


async def run_app(args: argparse.Namespace, home: Path) -> int:
    # The terminal belongs to the user here: relay INFO lines go to its relay.log only.
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    relay_data = default_relay_data() if home == default_home() else home / "embedded-relay"
    echo_home = relay_data / "echo"
    port = args.relay_port
    embedded_url = f"ws://127.0.0.1:{port}"
    config = relay_config(relay_data, "127.0.0.1", port, echo_home=echo_home, cert=None, key=None)
    assert config.echo_identity is not None
    if not profile_exists(home):
        profile = create_profile(home, _default_name(), embedded_url, None)
        created = True
    else:
        profile = open_profile(home, passphrase_for(args, home))
        created = False
    try:
        service = MessengerService(profile)
        if service.store.contacts.by_identity(config.echo_identity) is None:
            try:
                service.add_contact(encode_address(config.echo_identity), ECHO_NAME)
            except AppError:
                service.add_contact(encode_address(config.echo_identity), f"{ECHO_NAME}-relay")
        address, name, relay_url = service.address, profile.name, profile.relay_url
    finally:
        profile.close()
    home_opt = "" if home == default_home() else f" --home {home}"
    print(
        f"""messenger-tui: {"created your profile" if created else "profile"} {name!r} in {home}
your address: {address}

The embedded relay runs on {embedded_url} with the Echo contact. In another terminal:

  messenger-tui{home_opt} send {ECHO_NAME} "hello"
  messenger-tui{home_opt} receive --timeout 5
  messenger-tui{home_opt} history {ECHO_NAME}

(inside the repository, prefix with .venv/bin/). Ctrl-C stops the relay.""",
        flush=True,
    )
    if relay_url != embedded_url:
        print(f"note: this profile uses the relay {relay_url}, not the embedded one", flush=True)
    try:
        await serve_relay(config, echo_home=echo_home, announce=False)
    except KeyboardInterrupt:
        pass
    return 0
