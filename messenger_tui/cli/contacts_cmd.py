"""``messenger-tui contacts ACTION``: add, list, verify, rename, block, unblock, remove."""

from __future__ import annotations

import argparse
import json
from typing import Any

from messenger_tui.cli.contact_names import contact_named
from messenger_tui.cli.output import contact_json, err, out
from messenger_tui.cli.profile_service import close_service, open_service


def add_contacts_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``contacts`` (called from main.build_parser)."""
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


async def cmd_contacts(args: argparse.Namespace) -> int:
    service = open_service(args)
    try:
        if args.contacts_cmd == "add":
            contact = service.add_contact(args.address, args.name)
            if contact.key_changed:
                err(
                    f"warning: {contact.name}'s identity key CHANGED. Sending is blocked until you "
                    f"compare the new safety number: messenger-tui contacts verify {contact.name}"
                )
            else:
                out(f"added {contact.name}")
        elif args.contacts_cmd == "list":
            contacts = service.contacts()
            if args.json:
                for c in contacts:
                    out(json.dumps(contact_json(c)))
            elif not contacts:
                err("no contacts yet: messenger-tui contacts add ADDRESS --name NAME")
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
                    out(f"{c.name}  {c.address}{extra}")
        elif args.contacts_cmd == "verify":
            number = service.safety_number(contact_named(service, args.name).id)
            contact = number.contact
            if args.accept:
                service.accept_key(number.contact.id)
                out(
                    f"{contact.name} is now verified"
                    + (
                        "; the new key is accepted and sending is unblocked"
                        if contact.key_changed
                        else ""
                    )
                )
            else:
                if contact.key_changed:
                    out(f"{contact.name}'s identity key CHANGED; sending is blocked.")
                out(f"safety number with {contact.name}:")
                groups = number.formatted.split()
                for i in range(0, len(groups), 4):
                    out("  " + " ".join(groups[i : i + 4]))
                out(
                    "compare it with the one on their screen (in person or a trusted call); if "
                    f"it matches: messenger-tui contacts verify {contact.name} --accept"
                )
        elif args.contacts_cmd == "rename":
            contact = service.rename_contact(contact_named(service, args.name).id, args.new_name)
            out(f"renamed to {contact.name}")
        elif args.contacts_cmd in ("block", "unblock"):
            contact = service.set_blocked(
                contact_named(service, args.name).id, args.contacts_cmd == "block"
            )
            out(f"{contact.name} {args.contacts_cmd}ed")
        elif args.contacts_cmd == "remove":
            contact = contact_named(service, args.name)
            service.delete_contact(contact.id)
            out(f"removed {contact.name} and the conversation")
    finally:
        await close_service(service)
    return 0
