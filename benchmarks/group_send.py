"""One message to a 100-member group beside 100 pairwise sends of the same text (issue 13).

In one process and one run, on one real profile database (SQLCipher, as the app's) with 100
contacts and a ratchet session with each:

- **group**: ``GroupChats.send_text`` (encode, one sender-key encryption and signature, the
  message row, one group outbox row and its 100 recipients) and the ``SendMulti`` frame the
  group outbox uploads in the short fan-out form (one body, our send credential and an
  8-byte reference per recipient, as ``GroupSender`` builds it: the credential cached, one
  HMAC per recipient), after the sender key was distributed and the members registered
  their grants (the steady state: both happen once per key);
- **group, long form**: the same with the long-form frame (each recipient's identity and
  delivery secret), what a recipient without a grant of our current key is sent; reported
  beside the others, not part of the aim;
- **pairwise**: ``Outgoing.send_text`` to each of the 100 contacts (the same text), the
  outbox sealing them (``OutboxSender._seal``: one Double Ratchet encryption each, the
  session saved) and the 100 ``Send`` frames.

Sender CPU = ``time.process_time`` of this process over the work, per message; bytes
uploaded = the encoded frames (websocket framing aside), per message. Rounds alternate.

    python -m benchmarks.group_send [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.group_book import GroupBook
from messenger_tui.app.group_sender import GroupSender
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.models import Settings as AppSettings
from messenger_tui.app.outgoing import Outgoing
from messenger_tui.app.rows import contact_model
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.session_book import SessionBook
from messenger_tui.core import wire
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto import session as cs
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient

NAME = "group_send"
TITLE = "Group send: one upload vs pairwise sends"
MEMBERS = 100
TEXT = "Meeting moved to 15:00, same room. Bring the printed agenda please!"
AIM = 20.0


async def _run(settings: Settings, workdir: Path) -> dict[str, Any]:
    now = int(time.time() * 1000)
    store = Store.open(workdir / "messenger.db", os.urandom(32))
    me = IdentityKeyPair.generate()
    directory = ContactDirectory(store.contacts)
    names = [f"member{i:03d}" for i in range(MEMBERS)]
    with store.db.transaction():
        book = SessionBook(store.sessions, now)
        for name in names:
            peer = IdentityKeyPair.generate()
            spk = pk.generate_signed_prekey(peer, 1, now)
            bundle = pk.PrekeyBundle(
                identity=peer.public, spk_id=1, spk=spk.public, spk_sig=spk.signature
            )
            store.contacts.insert(name, peer.public, now)
            store.contacts.set_delivery_access(peer.public, os.urandom(32))
            book.put(peer.public, cs.initiate_session(me, bundle))
        book.flush()
    directory.invalidate()

    async def ignore(frame: wire.RelayFrame) -> None:
        return None

    client = RelayClient("ws://127.0.0.1:9", me.public, me.sign, on_frame=ignore)
    sender = OutboxSender(store, me, client, directory, lambda: now, lambda e: None, lambda: None)
    outgoing = Outgoing(
        store,
        client,
        sender,
        AccessKeys(store),
        now_ms=lambda: now,
        own_name=lambda: "me",
        settings=AppSettings,
        outbox_changed=lambda: None,
    )
    group_book = GroupBook(store, me.public, directory, lambda: now)

    def contact(name: str) -> Any:
        row = store.contacts.by_name(name)
        assert row is not None
        return contact_model(row)

    chats = GroupChats(
        store,
        me,
        group_book,
        contact=contact,
        own_name=lambda: "me",
        now_ms=lambda: now,
        emit=lambda e: None,
        wake=lambda: None,
    )
    chats.create("bench", names)
    chats.send_text("bench", "warm-up: distributes the sender key")

    def clear() -> None:
        with store.db.transaction():
            store.db.execute("DELETE FROM outbox")
            store.db.execute("DELETE FROM group_outbox")

    clear()
    contacts = [contact(name) for name in names]

    shape: dict[str, float] = {}

    group_sender = GroupSender(store, client, group_book, lambda e: None)

    def group_once() -> int:
        chats.send_text("bench", TEXT)
        (row,) = store.groups.pending_sends()
        credential = group_sender.credential(row.group_row)  # as GroupSender does
        assert credential is not None
        refs = b"".join(sc.recipient_ref(credential, to) for to in row.recipients)
        frame = wire.encode(
            wire.SendMulti(id=row.envelope_id, body=row.body, to=[], cred=credential, refs=refs)
        )
        bare = wire.encode(wire.SendMulti(id=row.envelope_id, body=row.body, to=[]))
        shape["body_frame"] = len(bare)
        shape["per_recipient"] = (len(frame) - len(bare)) / len(row.recipients)
        with store.db.transaction():
            store.groups.stored_for(row.seq, list(row.recipients))
        return len(frame)

    def group_long_once() -> int:
        chats.send_text("bench", TEXT)
        (row,) = store.groups.pending_sends()
        access = store.groups.delivery_access(list(row.recipients))  # as GroupSender does
        recipients = [wire.MultiRecipient(to=to, access=access[to]) for to in row.recipients]
        frame = wire.encode(wire.SendMulti(id=row.envelope_id, body=row.body, to=recipients))
        bare = wire.encode(wire.SendMulti(id=row.envelope_id, body=row.body, to=[]))
        shape["long_per_recipient"] = (len(frame) - len(bare)) / len(recipients)
        with store.db.transaction():
            store.groups.stored_for(row.seq, list(row.recipients))
        return len(frame)

    def pairwise_once() -> int:
        for c in contacts:
            outgoing.send_text(c, TEXT)
        rows = store.outbox.pending(limit=10_000)
        bodies = sender._seal(rows)
        size = 0
        for r in rows:
            access = store.contacts.delivery_access(r.recipient)
            size += len(
                wire.encode(
                    wire.Send(id=r.envelope_id, to=r.recipient, body=bodies[r.seq], access=access)
                )
            )
        with store.db.transaction():
            for r in rows:
                store.outbox.remove(r.seq)
        return size

    rounds = 3 if settings.quick else 7
    per_round = 3 if settings.quick else 10
    samples: dict[str, list[tuple[float, int]]] = {"group": [], "group_long": [], "pairwise": []}
    work_of = {"group": group_once, "group_long": group_long_once, "pairwise": pairwise_once}
    for _ in range(rounds):
        for key, work in work_of.items():
            cpu = time.process_time()
            size = sum(work() for _ in range(per_round))
            samples[key].append(((time.process_time() - cpu) / per_round, size // per_round))
    store.close()
    result: dict[str, Any] = {"members": MEMBERS, "rounds": rounds, "messages_per_round": per_round}
    for key, values in samples.items():
        cpus = sorted(v[0] for v in values)
        result[key] = {
            "cpu_ms_per_message": round(cpus[len(cpus) // 2] * 1000, 3),
            "bytes_per_message": values[-1][1],
        }
    result["cpu_ratio"] = round(
        result["pairwise"]["cpu_ms_per_message"] / result["group"]["cpu_ms_per_message"], 1
    )
    result["bytes_ratio"] = round(
        result["pairwise"]["bytes_per_message"] / result["group"]["bytes_per_message"], 1
    )
    result["long_cpu_ratio"] = round(
        result["pairwise"]["cpu_ms_per_message"] / result["group_long"]["cpu_ms_per_message"], 1
    )
    result["long_bytes_ratio"] = round(
        result["pairwise"]["bytes_per_message"] / result["group_long"]["bytes_per_message"], 1
    )
    result["group_long_bytes_per_recipient"] = round(shape["long_per_recipient"], 1)
    result["aim"] = AIM
    result["group_frame_without_recipients"] = int(shape["body_frame"])
    result["group_bytes_per_recipient"] = round(shape["per_recipient"], 1)
    return result


def run(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=settings.workdir) as workdir:
        return asyncio.run(_run(settings, Path(workdir)))


def render(result: dict[str, Any]) -> str:
    def mark(ratio: float) -> str:
        return fmt(ratio, 1) + ("x ✓" if ratio >= result["aim"] else "x ✗")

    rows = [
        [
            "one group message (SendMulti, short form)",
            fmt(result["group"]["cpu_ms_per_message"], 2),
            fmt(result["group"]["bytes_per_message"]),
            mark(result["cpu_ratio"]),
            mark(result["bytes_ratio"]),
        ],
        [
            "one group message (SendMulti, long form: no grants)",
            fmt(result["group_long"]["cpu_ms_per_message"], 2),
            fmt(result["group_long"]["bytes_per_message"]),
            fmt(result["long_cpu_ratio"], 1) + "x",
            fmt(result["long_bytes_ratio"], 1) + "x",
        ],
        [
            f"{result['members']} pairwise sends (Send)",
            fmt(result["pairwise"]["cpu_ms_per_message"], 2),
            fmt(result["pairwise"]["bytes_per_message"]),
            "",
            "",
        ],
    ]
    table = md_table(
        ["send", "sender CPU ms/message", "bytes up/message", "CPU saved", "bytes saved"],
        rows,
    )
    return (
        f"{result['members']} recipients, the same {len(TEXT)}-character text, "
        f"{result['messages_per_round']} messages x {result['rounds']} alternating rounds "
        f"(median round); aim: at least {result['aim']:.0f}x less of each.\n\n{table}\n\n"
        f"The short-form frame is {result['group_frame_without_recipients']:,} bytes of body "
        f"and framing, then {result['group_bytes_per_recipient']} bytes per recipient (its "
        "8-byte reference, with the 32-byte send credential, sent once, spread over them); "
        f"the long form spends {result['group_long_bytes_per_recipient']} bytes per recipient "
        "(its 32-byte identity and 32-byte delivery secret, msgpack-framed).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Settings(workdir=Path(tmp), quick=args.quick))
    print(render(result))


if __name__ == "__main__":
    main()
