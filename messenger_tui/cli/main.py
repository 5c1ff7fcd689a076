"""The ``messenger-tui`` command line: headless commands shared by users, tests and scripts.

Every command has ``--help``; machine-readable output uses ``--json``. Exit codes are listed in
:data:`EXIT_CODES` and in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from messenger_tui import __version__
from messenger_tui.app.errors import AppError, StorageProblem, TimedOut
from messenger_tui.app.profile import DEFAULT_RELAY_PORT
from messenger_tui.cli.call_cmd import add_call_parsers
from messenger_tui.cli.contacts_cmd import add_contacts_parser
from messenger_tui.cli.files_cmd import add_file_parsers
from messenger_tui.cli.group_cmd import add_group_parser
from messenger_tui.cli.identity_cmd import add_identity_parsers, add_passphrase_parser
from messenger_tui.cli.messages_cmd import add_message_parsers
from messenger_tui.cli.output import err, terminal_safe
from messenger_tui.cli.profile_service import home_dir
from messenger_tui.cli.ui_cmd import add_ui_parser
from messenger_tui.relay.command_args import add_relay_arguments
from messenger_tui.storage.errors import StorageError

EXIT_CODES = {
    0: "success",
    1: "unexpected error",
    2: "usage error (bad options)",
    3: "no profile here, or one already exists",
    4: "bad input: bad address or checksum, unknown contact, taken name, empty or long message",
    5: "relay unreachable (send --wait and receive --follow only) or refused the request",
    6: "wrong or missing passphrase",
    7: "database damaged or locked, key file unreadable",
    8: "the profile is in use by another messenger-tui process",
    9: "the contact's identity key changed: sending blocked until accepted",
    10: "timed out (answer: no call rang in time)",
    11: "call not answered: declined, busy or no answer",
    12: "call failed, or lost before it was connected",
    13: "call connected, then its connection was lost",
    14: "a file transfer failed: refused by the relay, or the download did not pass its checks",
    130: "interrupted (Ctrl-C)",
}

#: ``terminal_safe`` is imported from here by older callers.
__all__ = ["EXIT_CODES", "build_parser", "main", "run_command", "terminal_safe"]

log = logging.getLogger("messenger_tui.cli")


async def cmd_relay(args: argparse.Namespace) -> int:
    from messenger_tui.cli.relay_cmd import run_relay_command

    return await run_relay_command(args)


async def cmd_doctor(args: argparse.Namespace) -> int:
    from messenger_tui.cli.doctor import run_doctor

    return await run_doctor(home_dir(args), args)


async def cmd_app(args: argparse.Namespace) -> int:
    from messenger_tui.cli.ui_cmd import run_ui

    return await run_ui(args, home_dir(args))


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger-tui",
        description="End-to-end encrypted terminal messenger. Without a command: the Textual "
        "app (the same as `ui`) on an embedded local relay with the Echo contact.",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    # The common options work before or after the command. In the subcommands they default
    # to SUPPRESS so that an unset option there does not erase a value given before it.
    def add_common(p: argparse.ArgumentParser, default: Any) -> None:
        p.add_argument(
            "--home",
            default=default,
            help="profile directory (default: $MESSENGER_TUI_HOME or the user data dir)",
        )
        p.add_argument(
            "--passphrase-file",
            default=default,
            help="file holding the passphrase of the identity key "
            "(default: $MESSENGER_TUI_PASSPHRASE_FILE; prompted on a terminal)",
        )
        p.add_argument(
            "-v", "--verbose", action="store_true", default=default, help="log more to stderr"
        )

    add_common(parser, None)
    parser.add_argument(
        "--relay-port",
        type=int,
        default=DEFAULT_RELAY_PORT,
        help=f"without a command: the embedded relay's port (default {DEFAULT_RELAY_PORT})",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, argparse.SUPPRESS)
    parser.set_defaults(func=cmd_app)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    add_identity_parsers(sub, common)
    add_contacts_parser(sub, common)
    add_group_parser(sub, common)

    add_message_parsers(sub, common)
    add_file_parsers(sub, common)
    add_passphrase_parser(sub, common)

    p = sub.add_parser(
        "relay",
        parents=[common],
        help="run a relay server",
        description="Run a relay until SIGTERM/SIGINT (clients get close code 1001). "
        "`python -m messenger_tui.relay` is the same command without --echo.",
    )
    add_relay_arguments(p)  # (the light module: the server is imported only to run it)
    p.add_argument("--echo", action="store_true", help="also run the Echo contact")
    p.set_defaults(func=cmd_relay)

    p = sub.add_parser(
        "doctor", parents=[common], help="check libraries, audio devices and the relay; print fixes"
    )
    p.set_defaults(func=cmd_doctor)
    add_ui_parser(sub, common)
    add_call_parsers(sub, common)
    return parser


def run_command(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine to completion on uvloop (libuv's event loop: asyncio's
    per-iteration and per-callback work in C; a headless call costs about half a percent of a
    core less, docs/performance.md), or on asyncio's own loop where uvloop is missing or
    ``MESSENGER_TUI_LOOP=asyncio`` asks for it."""
    if os.environ.get("MESSENGER_TUI_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            result: int = uvloop.run(coro)
            return result
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        code = run_command(func(args))
    except AppError as exc:
        err(f"error: {exc}")
        code = exc.exit_code
    except StorageError as exc:
        err(f"error: {exc}")
        code = StorageProblem.exit_code
    except TimedOut as exc:
        err(f"error: {exc}")
        code = TimedOut.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `messenger-tui ... | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        code = 0
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
