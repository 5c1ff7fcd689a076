"""``messenger-tui group ACTION``: create, add, remove, leave, rename, members, list, send.

A change or a message is stored (and queued) before the command connects; it then waits
until the relay stored what was queued, as ``send`` does. Offline, it stays queued and goes
out the next time messenger-tui connects.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from messenger_tui.app.errors import AppError
from messenger_tui.app.group_models import Group, GroupMessage
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.output import err, iso, out, short_time, terminal_safe
from messenger_tui.cli.profile_service import close_service, open_service


def add_group_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``group`` (called from main.build_parser)."""
    p = sub.add_parser("group", parents=[common], help="group chats")
    gsub = p.add_subparsers(dest="group_cmd", metavar="ACTION", required=True)
    g = gsub.add_parser("create", parents=[common], help="create a group with contacts")
    g.add_argument("name")
    g.add_argument("members", nargs="*", metavar="MEMBER", help="contact names")
    g.add_argument("--members", dest="member_list", metavar="A,B", help="contact names, comma")
    for action, text in (
        ("add", "add contacts"),
        ("remove", "remove members (admins)"),
        ("promote", "make members admins (admins)"),
        ("demote", "make admins plain members (admins)"),
    ):
        g = gsub.add_parser(action, parents=[common], help=text)
        g.add_argument("name")
        g.add_argument("members", nargs="+", metavar="MEMBER")
    g = gsub.add_parser("leave", parents=[common], help="leave a group")
    g.add_argument("name")
    g = gsub.add_parser("rename", parents=[common], help="rename a group (admins)")
    g.add_argument("name")
    g.add_argument("new_name")
    g = gsub.add_parser("members", parents=[common], help="a group's members")
    g.add_argument("name")
    g.add_argument("--json", action="store_true")
    g = gsub.add_parser("list", parents=[common], help="your groups")
    g.add_argument("--json", action="store_true")
    g = gsub.add_parser("send", parents=[common], help="send a message to a group")
    g.add_argument("name")
    g.add_argument("text")
    g.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
    g = gsub.add_parser("history", parents=[common], help="show a group's conversation")
    g.add_argument("name")
    g.add_argument("--json", action="store_true")
    g.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_group)


def group_json(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "id": group.group_id.hex(),
        "member": group.is_member,
        "admin": group.admin,
        "members": [m.name for m in group.members],
        "unread": group.unread,
        "dropped": group.dropped,
    }


def group_message_json(group: Group, m: GroupMessage) -> dict[str, Any]:
    """A group message as ``receive --json`` and ``group history --json`` print it."""
    return {
        "id": m.message_id.hex(),
        "group": group.name,
        "from": m.sender_name,
        "sender": m.sender.hex(),
        "direction": "out" if m.outgoing else "in",
        "kind": m.kind,
        "text": m.text,
        "sent_at": iso(m.sent_at_ms),
        "sent_at_ms": m.sent_at_ms,
        "state": m.state,
        **(
            {"delivered": m.delivered, "read": m.read, "recipients": m.recipients}
            if m.outgoing
            else {}
        ),
    }


def print_group_message(group: Group, m: GroupMessage) -> None:
    where = f"[{short_time(m.sent_at_ms)}] #{terminal_safe(group.name)}"
    text = terminal_safe(m.text)
    if m.kind == "notice":
        out(f"{where} ! {text}")
        return
    state = ""
    if m.outgoing:
        state = f"  ({m.state}; delivered to {m.delivered} of {m.recipients}, read by {m.read})"
    out(f"{where} {terminal_safe(m.sender_name)}: {text}{state}")


async def _upload(service: MessengerService, timeout: float) -> None:
    """Connect and wait until the relay stored what was queued (or say it stays queued)."""
    try:
        await service.connect(timeout=min(5.0, timeout))
    except AppError as exc:
        err(f"{exc}\nqueued; it is sent the next time messenger-tui connects")
        return
    if not await service.groups.wait_sent(timeout):
        err("queued, not all sent yet (a member has no published keys, or the relay is slow)")


async def cmd_group(args: argparse.Namespace) -> int:
    service = open_service(args)
    groups = service.groups
    action = args.group_cmd
    try:
        if action == "create":
            names = list(args.members)
            if args.member_list:
                names += [n for n in args.member_list.split(",") if n.strip()]
            group = groups.create(args.name, names)
            out(f"created {group.name} with {len(group.members) - 1} members")
            await _upload(service, 15.0)
        elif action in ("add", "remove"):
            change = groups.add if action == "add" else groups.remove
            group = change(args.name, args.members)
            out(f"{group.name}: {len(group.members)} members")
            await _upload(service, 15.0)
        elif action in ("promote", "demote"):
            group = groups.set_admin(args.name, args.members, action == "promote")
            admins = ", ".join(m.name for m in group.members if m.admin)
            out(f"{group.name}: admins {admins}")
            await _upload(service, 15.0)
        elif action == "leave":
            group = groups.leave(args.name)
            out(f"left {group.name}")
            await _upload(service, 15.0)
        elif action == "rename":
            group = groups.rename(args.name, args.new_name)
            out(f"renamed to {group.name}")
            await _upload(service, 15.0)
        elif action == "members":
            group = groups.group(args.name)
            for member in group.members:
                if args.json:
                    out(
                        json.dumps(
                            {
                                "name": member.name,
                                "identity": member.identity.hex(),
                                "admin": member.admin,
                                "contact": member.contact_id is not None,
                                "me": member.me,
                            }
                        )
                    )
                else:
                    flags = " (admin)" if member.admin else ""
                    out(f"{terminal_safe(member.name)}{flags}")
        elif action == "list":
            listed = groups.all()
            if not listed and not args.json:
                err("no groups yet: messenger-tui group create NAME MEMBER...")
            for group in listed:
                if args.json:
                    out(json.dumps(group_json(group)))
                else:
                    left = "" if group.is_member else " (left)"
                    out(
                        f"{terminal_safe(group.name)}{left}: {len(group.members)} members, "
                        f"{group.unread} unread"
                    )
        elif action == "send":
            message = groups.send_text(args.name, args.text)
            await _upload(service, args.timeout)
            sent = groups.message(message.id)
            err(f"sent to {args.name}" if sent and sent.state != "queued" else "queued")
        elif action == "history":
            group = groups.group(args.name)
            for m in groups.history(args.name, limit=args.limit):
                if args.json:
                    out(json.dumps(group_message_json(group, m)))
                else:
                    print_group_message(group, m)
    finally:
        await close_service(service)
    return 0
