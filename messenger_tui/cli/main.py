"""The ``messenger-tui`` command line: headless commands shared by users, tests and scripts.

Every command has ``--help``; machine-readable output uses ``--json``. Exit codes are listed in
:data:`EXIT_CODES` and in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from messenger_tui import __version__
from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError, StorageProblem, TimedOut
from messenger_tui.app.models import Contact, Message
from messenger_tui.app.profile import (
    DEFAULT_RELAY_PORT,
    DEFAULT_RELAY_URL,
    create_profile,
    default_home,
    open_profile,
)
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.call_cmd import add_call_parsers
from messenger_tui.cli.passphrase import (
    claim_then_passphrase,
    open_for_command,
    read_passphrase_file,
)
from messenger_tui.cli.ui_cmd import add_ui_parser
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
    130: "interrupted (Ctrl-C)",
}

log = logging.getLogger("messenger_tui.cli")


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def _short_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- profile helpers


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser() if args.home else default_home()


def _service(args: argparse.Namespace) -> MessengerService:
    return MessengerService(open_for_command(args, _home(args)))


async def _close(service: MessengerService) -> None:
    try:
        await service.close()
    finally:
        service.profile.close()


def _contact_json(c: Contact) -> dict[str, Any]:
    return {
        "name": c.name,
        "address": c.address,
        "verified": c.verified,
        "key_changed": c.key_changed,
        "blocked": c.blocked,
        "message_request": c.auto_added,
    }


def _message_json(contact: Contact, m: Message) -> dict[str, Any]:
    return {
        "id": m.message_id.hex(),
        "from": "me" if m.outgoing else contact.name,
        "to": contact.name if m.outgoing else "me",
        "contact": contact.name,
        "direction": "out" if m.outgoing else "in",
        "kind": m.kind,
        "text": m.text,
        "sent_at": _iso(m.sent_at_ms),
        "sent_at_ms": m.sent_at_ms,
        "state": m.state,
    }


def _receipt_json(contact: Contact, m: Message, state: str) -> dict[str, Any]:
    """A delivery or read receipt for one of our messages, as ``receive --json`` prints it."""
    return {
        "type": "receipt",
        "state": state,
        "id": m.message_id.hex(),
        "contact": contact.name,
        "text": m.text,
        "sent_at_ms": m.sent_at_ms,
    }


def terminal_safe(text: str) -> str:
    """Text from a peer, made harmless for a terminal: control characters (ESC sequences that
    could clear the screen, retitle the window or write the clipboard) become visible escapes;
    newlines and tabs stay."""
    return "".join(
        ch
        if ch in "\n\t" or (ch.isprintable() and not 0x80 <= ord(ch) < 0xA0)
        else f"\\x{ord(ch):02x}"
        if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}"
        for ch in text
    )


def _print_message(contact: Contact, m: Message) -> None:
    who = "me" if m.outgoing else terminal_safe(contact.name)
    text = terminal_safe(m.text)
    if m.kind == "notice":
        _out(f"[{_short_time(m.sent_at_ms)}] ! {text}")
        return
    if m.kind == "call":
        _out(f"[{_short_time(m.sent_at_ms)}] (call) {text}")
        return
    state = f"  ({m.state})" if m.outgoing else ""
    _out(f"[{_short_time(m.sent_at_ms)}] {who}: {text}{state}")


# ---------------------------------------------------------------- commands


async def cmd_init(args: argparse.Namespace) -> int:
    home = _home(args)
    passphrase = read_passphrase_file(args.passphrase_file) if args.passphrase_file else None
    profile = create_profile(home, args.name, args.relay or DEFAULT_RELAY_URL, passphrase)
    service = MessengerService(profile)
    try:
        _out(service.address)
        _err(f"created the profile {profile.name!r} in {home}")
        _err(f"relay: {profile.relay_url}")
        try:
            await service.connect(timeout=5.0)
            _err("connected: your prekeys are published, people can write to you now")
        except AppError as exc:
            _err(f"note: {exc}; your keys are published the next time you connect")
    finally:
        await _close(service)
    return 0


async def cmd_id(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        _out(service.address)
        if args.qr:
            import segno

            segno.make(service.address, error="m").terminal(compact=True)
    finally:
        await _close(service)
    return 0


async def cmd_contacts(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        if args.contacts_cmd == "add":
            contact = service.add_contact(args.address, args.name)
            if contact.key_changed:
                _err(
                    f"warning: {contact.name}'s identity key CHANGED. Sending is blocked until you "
                    f"compare the new safety number: messenger-tui contacts verify {contact.name}"
                )
            else:
                _out(f"added {contact.name}")
        elif args.contacts_cmd == "list":
            contacts = service.contacts()
            if args.json:
                for c in contacts:
                    _out(json.dumps(_contact_json(c)))
            elif not contacts:
                _err("no contacts yet: messenger-tui contacts add ADDRESS --name NAME")
            else:
                for c in contacts:
                    flags = [
                        f
                        for f, on in (
                            ("verified", c.verified),
                            ("KEY CHANGED", c.key_changed),
                            ("blocked", c.blocked),
                            ("request", c.auto_added),
                        )
                        if on
                    ]
                    extra = f"  [{', '.join(flags)}]" if flags else ""
                    _out(f"{c.name}  {c.address}{extra}")
        elif args.contacts_cmd == "verify":
            number = service.safety_number(args.name)
            contact = number.contact
            if args.accept:
                service.accept_key(args.name)
                _out(
                    f"{contact.name} is now verified"
                    + (
                        "; the new key is accepted and sending is unblocked"
                        if contact.key_changed
                        else ""
                    )
                )
            else:
                if contact.key_changed:
                    _out(f"{contact.name}'s identity key CHANGED; sending is blocked.")
                _out(f"safety number with {contact.name}:")
                groups = number.formatted.split()
                for i in range(0, len(groups), 4):
                    _out("  " + " ".join(groups[i : i + 4]))
                _out(
                    "compare it with the one on their screen (in person or a trusted call); if "
                    f"it matches: messenger-tui contacts verify {contact.name} --accept"
                )
        elif args.contacts_cmd == "rename":
            contact = service.rename_contact(args.name, args.new_name)
            _out(f"renamed to {contact.name}")
        elif args.contacts_cmd in ("block", "unblock"):
            service.set_blocked(args.name, args.contacts_cmd == "block")
            _out(f"{args.name} {args.contacts_cmd}ed")
        elif args.contacts_cmd == "remove":
            service.delete_contact(args.name)
            _out(f"removed {args.name} and the conversation")
    finally:
        await _close(service)
    return 0


async def cmd_send(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        message = await service.send_text(args.name, args.text)
        contact = service.contact(args.name)
        deadline = asyncio.get_running_loop().time() + args.timeout
        while True:
            try:
                await service.connect(timeout=min(5.0, args.timeout))
                break
            except AppError as exc:
                if not args.wait:
                    _err(
                        f"{exc}\nthe message is queued in the outbox "
                        f"({service.outbox_count()} waiting) and is sent the next time "
                        "messenger-tui connects"
                    )
                    return 0
                if asyncio.get_running_loop().time() >= deadline:
                    _err(f"{exc}\nthe message stays queued in the outbox")
                    return 5
                await asyncio.sleep(1.0)
        remaining = max(1.0, deadline - asyncio.get_running_loop().time())
        if await service.wait_outbox_empty(remaining, message_row=message.id):
            _err(f"sent to {contact.name} (stored by the relay)")
            # Give receipts and older queued rows a moment to go out too.
            await service.wait_outbox_empty(2.0)
            return 0
        problem = service.bundle_problem(contact.identity) or "the relay did not confirm in time"
        _err(f"queued for {contact.name}, not sent yet: {problem}")
        return 10 if args.wait else 0
    finally:
        await _close(service)


async def cmd_receive(args: argparse.Namespace) -> int:
    service = _service(args)
    queue = service.subscribe()
    printed: set[int] = set()

    def show(contact: Contact, m: Message) -> None:
        if m.id in printed:
            return
        printed.add(m.id)
        if args.json:
            _out(json.dumps({"type": "message", **_message_json(contact, m)}))
        else:
            _print_message(contact, m)

    async def show_unread() -> int:
        # At least once: each line is printed (and flushed) first, then its message is marked
        # seen in its own commit. A crash between the two prints that one line again on the
        # next run, with the same `id`; nothing is marked seen unprinted. Read receipts go per
        # conversation after the batch (a crash before that loses only the receipt).
        names: set[str] = set()
        read: dict[str, list[bytes]] = {}
        for contact, m in service.unread():
            show(contact, m)
            names.add(contact.name)
            if not args.no_read and service.mark_shown(m):
                read.setdefault(contact.name, []).append(m.message_id)
        for name, ids in read.items():
            service.send_read_receipt(name, ids)
        return len(names)

    def report(event: ev.Event) -> None:
        if isinstance(event, ev.MessageFailed):
            who = terminal_safe(event.contact.name) if event.contact else "an unknown sender"
            text = f"a message from {who} was dropped: {event.reason}"
            if args.json:
                _out(json.dumps({"type": "error", "from": who, "error": event.reason}))
            else:
                _err(f"error: {text}")
        elif isinstance(event, ev.ConnectionChanged) and args.follow and not args.json:
            if event.state == "reconnecting":
                why = f" ({event.error})" if event.error else ""
                _err(f"relay connection lost{why}; retrying in {event.retry_in or 0:.1f} s")
            elif event.state == "connected":
                _err("connected to the relay")
        elif isinstance(event, ev.MessageStateChanged) and event.state in ("delivered", "read"):
            if not args.json:
                _err(f"{terminal_safe(event.contact.name)}: message {event.state}")
                return
            message = service.message(event.message_row)
            if message is not None:
                _out(json.dumps(_receipt_json(event.contact, message, event.state)))

    try:
        try:
            await service.connect(timeout=5.0)
        except AppError as exc:
            if not args.follow:
                _err(f"{exc}; showing what was already stored")
                await show_unread()
                return 0
            await service.start()
        else:
            if args.follow:
                await service.start()
        if service.connected:
            await service.wait_backlog(30.0)
        while not queue.empty():
            report(queue.get_nowait())
        shown = await show_unread()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (args.timeout or 0.0)
        while args.follow or (shown == 0 and loop.time() < deadline):
            remaining = None if args.follow else max(0.0, deadline - loop.time())
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            report(event)
            if isinstance(event, ev.MessageReceived):
                shown += await show_unread()
        await service.wait_outbox_empty(5.0)  # receipts
        return 0
    finally:
        await _close(service)


async def cmd_history(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        contact = service.contact(args.name)
        for m in service.history(args.name, limit=args.limit):
            if args.json:
                _out(json.dumps(_message_json(contact, m)))
            else:
                _print_message(contact, m)
    finally:
        await _close(service)
    return 0


async def cmd_search(args: argparse.Namespace) -> int:
    """Full-text search of the stored messages (the database is decrypted in memory only)."""
    service = _service(args)
    try:
        for hit in service.search(args.text, name=args.contact, limit=args.limit):
            if args.json:
                _out(
                    json.dumps({**_message_json(hit.contact, hit.message), "snippet": hit.snippet})
                )
            else:
                _print_message(hit.contact, hit.message)
    finally:
        await _close(service)
    return 0


async def cmd_passphrase(args: argparse.Namespace) -> int:
    """Set, change or remove the passphrase: the identity key file is sealed again and the
    database re-encrypted under the new key (a crash leaves the old or the new state)."""
    home = _home(args)
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
            _err("passphrase set: the identity key and the database are encrypted under it")
        else:
            _err(
                "passphrase removed: the database key is stored with the identity key, and "
                "only the files' permissions protect them"
            )
    finally:
        await _close(service)
    return 0


async def cmd_relay(args: argparse.Namespace) -> int:
    from messenger_tui.cli.relay_cmd import run_relay_command

    return await run_relay_command(args)


async def cmd_doctor(args: argparse.Namespace) -> int:
    from messenger_tui.cli.doctor import run_doctor

    return await run_doctor(_home(args), args)


async def cmd_app(args: argparse.Namespace) -> int:
    from messenger_tui.cli.ui_cmd import run_ui

    return await run_ui(args, _home(args))


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

    p = sub.add_parser("init", parents=[common], help="create the identity; print the address")
    p.add_argument("--name", required=True, help="your display name")
    p.add_argument(
        "--relay",
        help=f"relay URL (default {DEFAULT_RELAY_URL}; "
        "wss://host:port#sha256=HEX pins a self-signed certificate)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("id", parents=[common], help="print your address")
    p.add_argument("--qr", action="store_true", help="also draw it as a QR code")
    p.set_defaults(func=cmd_id)

    p = sub.add_parser("contacts", parents=[common], help="manage contacts")
    csub = p.add_subparsers(dest="contacts_cmd", metavar="ACTION", required=True)
    c = csub.add_parser("add", parents=[common], help="add a contact by address")
    c.add_argument("address")
    c.add_argument("--name", required=True)
    c = csub.add_parser("list", parents=[common], help="list contacts")
    c.add_argument("--json", action="store_true", help="one JSON object per line")
    c = csub.add_parser("verify", parents=[common], help="show the safety number")
    c.add_argument("name")
    c.add_argument(
        "--accept",
        action="store_true",
        help="mark verified (also accepts a changed key and unblocks sending)",
    )
    c = csub.add_parser("rename", parents=[common], help="rename a contact")
    c.add_argument("name")
    c.add_argument("new_name")
    for action in ("block", "unblock", "remove"):
        c = csub.add_parser(action, parents=[common], help=f"{action} a contact")
        c.add_argument("name")
    p.set_defaults(func=cmd_contacts)

    p = sub.add_parser(
        "send",
        parents=[common],
        help="send a message; exits 0 once the relay stored it, or once it is queued when "
        "the relay is down",
    )
    p.add_argument("name")
    p.add_argument("text")
    p.add_argument(
        "--wait",
        action="store_true",
        help="keep trying until the relay stores it; exit 5 on timeout",
    )
    p.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser(
        "receive", parents=[common], help="fetch, decrypt, store, ack and print queued messages"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help=(
            "one JSON object per line: messages (type message), receipts for your messages "
            "(type receipt: delivered/read) and dropped messages (type error). Messages are "
            "printed at least once: after a crash the last line may come again on the next "
            "run with the same id; dedupe by `id`"
        ),
    )
    p.add_argument("--follow", action="store_true", help="keep listening")
    p.add_argument(
        "--timeout", type=float, default=0.0, help="wait up to S seconds when nothing is queued yet"
    )
    p.add_argument("--no-read", action="store_true", help="do not send read receipts")
    p.set_defaults(func=cmd_receive)

    p = sub.add_parser("history", parents=[common], help="show a conversation")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("search", parents=[common], help="search the stored messages (newest first)")
    p.add_argument("text", help="words to find (the last one also matches as a prefix)")
    p.add_argument("--contact", metavar="NAME", help="only in this conversation")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "passphrase",
        parents=[common],
        help="set, change or remove the passphrase (the current one from --passphrase-file)",
    )
    new = p.add_mutually_exclusive_group(required=True)
    new.add_argument("--new-passphrase-file", metavar="FILE", help="file holding the new one")
    new.add_argument("--remove", action="store_true", help="remove the passphrase")
    p.set_defaults(func=cmd_passphrase)

    p = sub.add_parser(
        "relay",
        parents=[common],
        help="run a relay server",
        description="Run a relay until SIGTERM/SIGINT (clients get close code 1001). "
        "`python -m messenger_tui.relay` is the same command without --echo.",
    )
    from messenger_tui.cli.relay_cmd import add_relay_command_arguments

    add_relay_command_arguments(p)
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
        _err(f"error: {exc}")
        code = exc.exit_code
    except StorageError as exc:
        _err(f"error: {exc}")
        code = StorageProblem.exit_code
    except TimedOut as exc:
        _err(f"error: {exc}")
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
