"""``messenger-tui init``, ``id`` and ``passphrase``: create the identity, print the address,
set, change or remove the passphrase."""

from __future__ import annotations

import argparse
from typing import Any

from messenger_tui.app.errors import AppError
from messenger_tui.app.profile import DEFAULT_RELAY_URL, create_profile, open_profile
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.output import err, out
from messenger_tui.cli.passphrase import claim_then_passphrase, read_passphrase_file
from messenger_tui.cli.profile_service import close_service, home_dir, open_service


def add_identity_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``init`` and ``id`` (called from main.build_parser)."""
    p = sub.add_parser("init", parents=[common], help="create the identity; print the address")
    p.add_argument("--name", required=True, help="your display name")
    p.add_argument(
        "--relay",
        help=f"relay URL (default {DEFAULT_RELAY_URL}; "
        "wss://host:port#sha256=HEX pins a self-signed certificate); several nodes of one "
        "relay: URL1,URL2 (the client fails over between them)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("id", parents=[common], help="print your address")
    p.add_argument("--qr", action="store_true", help="also draw it as a QR code")
    p.set_defaults(func=cmd_id)


def add_passphrase_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``passphrase`` (called from main.build_parser, after the message commands)."""
    p = sub.add_parser(
        "passphrase",
        parents=[common],
        help="set, change or remove the passphrase (the current one from --passphrase-file)",
    )
    new = p.add_mutually_exclusive_group(required=True)
    new.add_argument("--new-passphrase-file", metavar="FILE", help="file holding the new one")
    new.add_argument("--remove", action="store_true", help="remove the passphrase")
    p.set_defaults(func=cmd_passphrase)


async def cmd_init(args: argparse.Namespace) -> int:
    home = home_dir(args)
    passphrase = read_passphrase_file(args.passphrase_file) if args.passphrase_file else None
    profile = create_profile(home, args.name, args.relay or DEFAULT_RELAY_URL, passphrase)
    service = MessengerService(profile)
    try:
        out(service.address)
        err(f"created the profile {profile.name!r} in {home}")
        err(f"relay: {profile.relay_url}")
        try:
            await service.connect(timeout=5.0)
            err("connected: your prekeys are published, people can write to you now")
        except AppError as exc:
            err(f"note: {exc}; your keys are published the next time you connect")
    finally:
        await close_service(service)
    return 0


async def cmd_id(args: argparse.Namespace) -> int:
    service = open_service(args)
    try:
        out(service.address)
        if args.qr:
            import segno

            segno.make(service.address, error="m").terminal(compact=True)
    finally:
        await close_service(service)
    return 0


async def cmd_passphrase(args: argparse.Namespace) -> int:
    """Set, change or remove the passphrase: the identity key file is sealed again and the
    database re-encrypted under the new key (a crash leaves the old or the new state)."""
    home = home_dir(args)
    lock, current = claim_then_passphrase(args, home)
    try:
        profile = open_profile(home, current, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    service = MessengerService(profile)
    try:
        new = None if args.remove else read_passphrase_file(args.new_passphrase_file)
        settings = await service.change_passphrase(current, new)
        if settings.passphrase_set:
            err("passphrase set: the identity key and the database are encrypted under it")
        else:
            err(
                "passphrase removed: the database key is stored with the identity key, and "
                "only the files' permissions protect them"
            )
    finally:
        await close_service(service)
    return 0
