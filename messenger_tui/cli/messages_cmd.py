"""``messenger-tui send``, ``receive``, ``history`` and ``search``: messages without the UI."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import SearchHit
from messenger_tui.app.group_models import Group, GroupMessage, GroupSearchHit
from messenger_tui.app.models import Contact, ContactId, Message
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.contact_names import contact_or_group
from messenger_tui.cli.files_cmd import (
    add_receive_file_arguments,
    finish_downloads,
    prepare_downloads,
)
from messenger_tui.cli.group_cmd import cmd_group, group_message_json, print_group_message
from messenger_tui.cli.output import (
    err,
    message_json,
    out,
    print_message,
    receipt_json,
    terminal_safe,
)
from messenger_tui.cli.profile_service import close_service, open_service
from messenger_tui.core.disappearing import TimerError, describe, parse_duration


def add_message_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``send``, ``receive``, ``history`` and ``search`` (called from
    main.build_parser)."""
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
    add_receive_file_arguments(p)
    p.add_argument(
        "--download-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for each download (default 3600)",
    )
    p.set_defaults(func=cmd_receive)

    p = sub.add_parser("history", parents=[common], help="show a conversation")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "timer",
        parents=[common],
        help="show or set the disappearing-message timer of a contact or a group (every member)",
    )
    p.add_argument("name")
    p.add_argument(
        "duration",
        nargs="?",
        help="off, 30s, 5m, 1h, 1d, 1w or a number of seconds (1 s to 4 weeks); "
        "omitted: show the timer",
    )
    p.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
    p.set_defaults(func=cmd_timer)

    p = sub.add_parser("search", parents=[common], help="search the stored messages (newest first)")
    p.add_argument("text", help="words to find (the last one also matches as a prefix)")
    p.add_argument("--contact", metavar="NAME", help="only in this conversation")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_search)


async def cmd_send(args: argparse.Namespace) -> int:
    service = open_service(args)
    try:
        contact = contact_or_group(service, args.name)
        if contact is not None:
            return await _send_text(service, contact, args)
    finally:
        await close_service(service)
    args.group_cmd = "send"
    return await cmd_group(args)


async def _send_text(service: MessengerService, contact: Contact, args: argparse.Namespace) -> int:
    """Queue the text, then connect and wait until the relay stored it (``--wait``)."""
    message = await service.send_text(contact.id, args.text)
    deadline = asyncio.get_running_loop().time() + args.timeout
    while True:
        try:
            await service.connect(timeout=min(5.0, args.timeout))
            break
        except AppError as exc:
            if not args.wait:
                err(
                    f"{exc}\nthe message is queued in the outbox "
                    f"({service.outbox_count()} waiting) and is sent the next time "
                    "messenger-tui connects"
                )
                return 0
            if asyncio.get_running_loop().time() >= deadline:
                err(f"{exc}\nthe message stays queued in the outbox")
                return 5
            await asyncio.sleep(1.0)
    remaining = max(1.0, deadline - asyncio.get_running_loop().time())
    if await service.wait_outbox_empty(remaining, message_row=message.id):
        err(f"sent to {contact.name} (stored by the relay)")
        # Give receipts and older queued rows a moment to go out too.
        await service.wait_outbox_empty(2.0)
        return 0
    problem = service.bundle_problem(contact.identity) or "the relay did not confirm in time"
    err(f"queued for {contact.name}, not sent yet: {problem}")
    return 10 if args.wait else 0


async def cmd_receive(args: argparse.Namespace) -> int:
    service = open_service(args)
    queue = service.subscribe()
    printed: set[int] = set()
    settled = prepare_downloads(service, args)

    def show(contact: Contact, m: Message) -> None:
        if m.id in printed:
            return
        printed.add(m.id)
        if args.json:
            out(json.dumps({"type": "message", **message_json(contact, m)}))
        else:
            print_message(contact, m)

    async def show_unread() -> int:
        # At least once: each line is printed (and flushed) first, then its message is marked
        # seen in its own commit. A crash between the two prints that one line again on the
        # next run, with the same `id`; nothing is marked seen unprinted. Read receipts go per
        # conversation after the batch (a crash before that loses only the receipt).
        names: set[str] = set()
        read: dict[ContactId, list[bytes]] = {}
        for contact, m in service.unread():
            show(contact, m)
            names.add(contact.name)
            if not args.no_read and service.mark_shown(m):
                read.setdefault(contact.id, []).append(m.message_id)
        for contact_id, ids in read.items():
            service.send_read_receipt(contact_id, ids)
        group_read: dict[int, tuple[Group, list[GroupMessage]]] = {}
        for group, gm in service.groups.unread():
            if gm.id in printed:
                continue
            printed.add(gm.id)
            if args.json:
                out(json.dumps({"type": "message", **group_message_json(group, gm)}))
            else:
                print_group_message(group, gm)
            names.add(f"#{group.id}")
            if not args.no_read and service.groups.mark_shown(gm):
                group_read.setdefault(group.id, (group, []))[1].append(gm)
        for group, shown_messages in group_read.values():
            service.groups.send_read_receipt(group, shown_messages)
        return len(names)

    def report(event: ev.Event) -> None:
        if isinstance(event, ev.MessageFailed):
            who = terminal_safe(event.contact.name) if event.contact else "an unknown sender"
            text = f"a message from {who} was dropped: {event.reason}"
            if args.json:
                out(json.dumps({"type": "error", "from": who, "error": event.reason}))
            else:
                err(f"error: {text}")
        elif isinstance(event, ev.ConnectionChanged) and args.follow and not args.json:
            if event.state == "reconnecting":
                why = f" ({event.error})" if event.error else ""
                err(f"relay connection lost{why}; retrying in {event.retry_in or 0:.1f} s")
            elif event.state == "connected":
                err("connected to the relay")
        elif isinstance(event, ev.GroupMessageStateChanged) and event.message.delivered:
            m = event.message
            if args.json:
                out(json.dumps({"type": "receipt", **group_message_json(event.group, m)}))
            else:
                err(
                    f"#{terminal_safe(event.group.name)}: delivered to {m.delivered} of "
                    f"{m.recipients}, read by {m.read}"
                )
        elif isinstance(event, ev.TimerChanged):
            name = terminal_safe(event.contact.name)
            if args.json:
                out(json.dumps({"type": "timer", "contact": name, "seconds": event.seconds}))
            else:
                err(f"{name}: disappearing messages {describe(event.seconds)}")
        elif isinstance(event, ev.GroupTimerChanged):
            name = terminal_safe(event.group.name)
            if args.json:
                out(json.dumps({"type": "timer", "group": name, "seconds": event.seconds}))
            else:
                err(f"#{name}: disappearing messages {describe(event.seconds)}")
        elif isinstance(event, ev.GroupMessagesExpired) and args.json:
            group = service.groups.by_id(event.group_row)
            whose = terminal_safe(group.name) if group is not None else None
            out(json.dumps({"type": "expired", "group": whose, "count": len(event.message_rows)}))
        elif isinstance(event, ev.MessagesExpired) and args.json:
            owner = service.contact_by_id(event.contact_id)
            whose = terminal_safe(owner.name) if owner is not None else None
            out(json.dumps({"type": "expired", "contact": whose, "count": len(event.message_rows)}))
        elif isinstance(event, ev.MessageStateChanged) and event.state in ("delivered", "read"):
            if not args.json:
                err(f"{terminal_safe(event.contact.name)}: message {event.state}")
                return
            message = service.message(event.message_row)
            if message is not None:
                out(json.dumps(receipt_json(event.contact, message, event.state)))

    try:
        try:
            await service.connect(timeout=5.0)
        except AppError as exc:
            if not args.follow:
                err(f"{exc}; showing what was already stored")
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
            if isinstance(event, ev.MessageReceived | ev.GroupMessageReceived):
                shown += await show_unread()
        code = await finish_downloads(service, args, settled, args.download_timeout)
        await service.wait_outbox_empty(5.0)  # receipts
        await service.groups.wait_sent(5.0)
        return code
    finally:
        await close_service(service)


async def cmd_timer(args: argparse.Namespace) -> int:
    """Show, or set and send, the disappearing-message timer of a conversation."""
    try:
        seconds = None if args.duration is None else parse_duration(args.duration)
    except TimerError as exc:
        err(f"error: {exc}")
        return 2
    service = open_service(args)
    try:
        contact = contact_or_group(service, args.name)
        if contact is None:
            return await _group_timer(service, args, seconds)
        if seconds is None:
            out(f"{terminal_safe(contact.name)}: disappearing messages "
                f"{describe(service.disappearing_timer(contact.id))}")  # fmt: skip
            return 0
        service.set_disappearing_timer(contact.id, seconds)
        try:
            await service.connect(timeout=min(5.0, args.timeout))
        except AppError as exc:
            err(f"{exc}\nthe new timer is stored and queued; it is sent the next time "
                "messenger-tui connects")  # fmt: skip
            return 0
        if await service.wait_outbox_empty(args.timeout):
            err(f"disappearing messages with {terminal_safe(contact.name)}: {describe(seconds)}")
            return 0
        err("the new timer is stored and queued; the relay did not confirm in time")
        return 0
    finally:
        await close_service(service)


async def _group_timer(
    service: MessengerService, args: argparse.Namespace, seconds: int | None
) -> int:
    """``timer GROUP [DURATION]``: show, or set and send, a group's timer."""
    name = terminal_safe(service.groups.group(args.name).name)
    if seconds is None:
        out(f"#{name}: disappearing messages {describe(service.groups.timer(args.name))}")
        return 0
    service.groups.set_timer(args.name, seconds)
    try:
        await service.connect(timeout=min(5.0, args.timeout))
    except AppError as exc:
        err(f"{exc}\nthe new timer is stored and queued; it is sent the next time "
            "messenger-tui connects")  # fmt: skip
        return 0
    if await service.groups.wait_sent(args.timeout):
        err(f"disappearing messages in #{name}: {describe(seconds)}")
        return 0
    err("the new timer is stored and queued; the relay did not confirm in time")
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    service = open_service(args)
    try:
        contact = contact_or_group(service, args.name)
        if contact is not None:
            for m in service.history(contact.id, limit=args.limit):
                if args.json:
                    out(json.dumps(message_json(contact, m)))
                else:
                    print_message(contact, m)
            return 0
    finally:
        await close_service(service)
    args.group_cmd = "history"
    return await cmd_group(args)


async def cmd_search(args: argparse.Namespace) -> int:
    """Full-text search of the stored messages (the database is decrypted in memory only)."""
    service = open_service(args)
    try:
        # Contacts' and groups' messages, newest first (``--contact`` may name a group).
        contact = contact_or_group(service, args.contact) if args.contact is not None else None
        in_group = args.contact is not None and contact is None
        hits: list[SearchHit | GroupSearchHit] = []
        if not in_group:
            contact_id = contact.id if contact is not None else None
            hits += service.search(args.text, contact_id=contact_id, limit=args.limit)
        if args.contact is None or in_group:
            hits += service.groups.search_hits(args.text, name=args.contact, limit=args.limit)
        hits.sort(key=lambda h: h.message.id, reverse=True)
        for hit in hits[: args.limit]:
            if isinstance(hit, GroupSearchHit):
                if args.json:
                    line = {**group_message_json(hit.group, hit.message), "snippet": hit.snippet}
                    out(json.dumps(line))
                else:
                    print_group_message(hit.group, hit.message)
            elif args.json:
                out(json.dumps({**message_json(hit.contact, hit.message), "snippet": hit.snippet}))
            else:
                print_message(hit.contact, hit.message)
    finally:
        await close_service(service)
    return 0
