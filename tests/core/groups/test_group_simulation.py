"""A group of 20 in one process: real crypto, an in-memory network that reorders and
duplicates (distribution messages travel on it too, standing in for the pairwise channel).

3 senders x 1,000 messages; every 50 messages the admin adds or removes a random member
(signed membership changes, delivered to every member); after a removal every remaining
member rotates its sender key before sending again. Every member must decrypt exactly the
messages sent while it was a member (0 failures, 0 extras), and a removed member that keeps
all its keys must decrypt 0 of the messages sent while it was out.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import DuplicateMessage, NoSenderKey
from messenger_tui.core.groups import membership as mb
from messenger_tui.core.groups import pending as pend
from messenger_tui.core.groups import sender_keys as sk
from tests.core.crypto._util import DeterministicRng

POOL = 26  # identities; 20 start in the group
START = 20
SENDERS = 3
PER_SENDER = 1000
CHANGE_EVERY = 50


@dataclass
class Client:
    identity: IdentityKeyPair
    log: mb.GroupLog | None = None
    sending: sk.SendingSenderKey | None = None
    records: dict[bytes, sk.SenderKeyRecord] = field(default_factory=dict)
    pending: pend.PendingGroupMessages | None = None
    received: set[int] = field(default_factory=set)
    failures: int = 0
    duplicates: int = 0
    requests: int = 0

    @property
    def key(self) -> bytes:
        return self.identity.public


def test_twenty_members_three_senders_with_adds_and_removes() -> None:
    # CPU time of this process: the simulation is pure computation (core is sans-I/O), so its
    # cost is the CPU it takes, whatever else the machine runs (wall time counts the others).
    started = time.process_time()
    rng = DeterministicRng(b"group-sim")
    shuffle = random.Random(13)
    clients = [Client(IdentityKeyPair.generate(rng)) for _ in range(POOL)]
    by_key = {c.key: c for c in clients}
    admin, senders = clients[0], clients[:SENDERS]
    group_id = rng(16)

    # the network: (recipient, kind, sender key, payload)
    in_flight: list[tuple[Client, str, bytes, bytes]] = []
    recipients_of: dict[int, frozenset[bytes]] = {}
    ciphertexts: list[tuple[int, bytes, bytes]] = []  # (number, sender, message)

    def receive_group_message(client: Client, sender: bytes, data: bytes, number: int) -> None:
        assert client.log is not None and client.pending is not None
        mb.require_member(client.log.state, sender)
        record = client.records.get(sender)
        try:
            if record is None:
                header = sk.parse_group_header(data)
                raise NoSenderKey("none", group_id=header.group_id, key_id=header.key_id)
            record, plaintext = sk.group_decrypt(record, data)
        except NoSenderKey as exc:
            result = pend.hold_message(client.pending, sender, exc.key_id, data, now_ms=0)
            client.pending = result.pending
            client.requests += result.request is not None
            assert result.evicted == ()
            return
        except DuplicateMessage:
            client.duplicates += 1
            return
        client.records[sender] = record
        assert int(plaintext.split(b":")[1]) == number
        assert number not in client.received
        client.received.add(number)

    def deliver(index: int) -> None:
        client, kind, sender, payload = in_flight[index]
        if kind == "dist":
            distribution = sk.decode_distribution(payload)
            client.records[sender] = sk.process_distribution(
                client.records.get(sender), distribution
            )
            assert client.pending is not None
            client.pending, released = pend.release_messages(
                client.pending, sender, distribution.key_id
            )
            for data in released:
                receive_group_message(client, sender, data, _number(data, client, sender))
        else:
            number = int.from_bytes(payload[:4], "big")
            receive_group_message(client, sender, payload[4:], number)

    numbers_by_message: dict[bytes, int] = {}

    def _number(data: bytes, client: Client, sender: bytes) -> int:
        return numbers_by_message[data]

    def distribute(sender: Client, to: list[bytes]) -> None:
        assert sender.sending is not None
        payload = sk.encode_distribution(sk.distribution_of(sender.sending))
        for key in to:
            if key != sender.key:
                in_flight.append((by_key[key], "dist", sender.key, payload))

    def apply_change(data: bytes, also: list[bytes]) -> None:
        assert admin.log is not None
        for key in set(admin.log.state.member_keys()) | set(also):
            client = by_key[key]
            if client is admin:
                continue
            client.log, outcome = mb.receive_change(client.log, data, client.key)
            assert outcome is mb.ChangeOutcome.APPLIED
            if client.pending is None:
                client.pending = pend.PendingGroupMessages(group_id=group_id)

    # create
    admin.log, create = mb.create_group(
        admin.identity, group_id, "sim", tuple(c.key for c in clients[1:START])
    )
    admin.pending = pend.PendingGroupMessages(group_id=group_id)
    apply_change(create, [])
    for sender in senders:
        sender.sending = sk.new_sender_key(group_id, rng)
        distribute(sender, list(admin.log.state.member_keys()))

    removed_rounds = 0
    for turn in range(SENDERS * PER_SENDER):
        if turn and turn % CHANGE_EVERY == 0:
            members = set(admin.log.state.member_keys())
            outsiders = [c.key for c in clients if c.key not in members]
            removable = [k for k in members if k not in {s.key for s in senders}]
            if outsiders and (shuffle.random() < 0.5 or len(removable) < 10):
                new = shuffle.choice(outsiders)
                admin.log, data = mb.propose(admin.log, admin.identity, mb.Op.ADD, (new,))
                apply_change(data, [new])
                for sender in senders:
                    distribute(sender, [new])
            else:
                gone = shuffle.choice(removable)
                admin.log, data = mb.propose(admin.log, admin.identity, mb.Op.REMOVE, (gone,))
                apply_change(data, [gone])
                assert not by_key[gone].log.state.is_member(gone)  # type: ignore[union-attr]
                removed_rounds += 1
                for sender in senders:  # every remaining member rotates before sending
                    assert sender.sending is not None
                    sender.sending = sk.rotate_sender_key(sender.sending, rng)
                    distribute(sender, list(admin.log.state.member_keys()))
        sender = senders[turn % SENDERS]
        assert sender.sending is not None
        sender.sending, message = sk.group_encrypt(sender.sending, b"msg:%d" % turn)
        numbers_by_message[message] = turn
        recipients = frozenset(admin.log.state.member_keys()) - {sender.key}
        recipients_of[turn] = recipients
        ciphertexts.append((turn, sender.key, message))
        for key in recipients:
            in_flight.append((by_key[key], "msg", sender.key, turn.to_bytes(4, "big") + message))
        # deliver a random handful, in random order, sometimes keeping a duplicate in flight
        # (the network reorders within a window of about 10 turns' traffic)
        while len(in_flight) > shuffle.randint(0, 10 * len(recipients)):
            index = shuffle.randrange(len(in_flight))
            deliver(index)
            if in_flight[index][1] == "msg" and shuffle.random() < 0.1:
                # a duplicate group message stays in flight, delivered again later; the
                # pairwise ratchet already refuses a replayed distribution message
                continue
            in_flight[index] = in_flight[-1]
            in_flight.pop()
    shuffle.shuffle(in_flight)
    while in_flight:
        deliver(len(in_flight) - 1)
        in_flight.pop()

    # every member decrypted exactly the messages sent while it was a member
    failures = extras = held = requests = 0
    for client in clients:
        expected = {n for n, keys in recipients_of.items() if client.key in keys}
        failures += len(expected - client.received)
        extras += len(client.received - expected)
        held += 0 if client.pending is None else len(client.pending.held)
        requests += client.requests
    assert (failures, extras, held) == (0, 0, 0)
    assert requests > 0  # distributions overtaken by messages were asked for and waited for
    assert removed_rounds >= 5

    # a member while it was out, holding every key it ever had, reads none of those messages
    leaked = attempts = 0
    for client in clients:
        for number, sender_key, message in ciphertexts:
            if client.key in recipients_of[number] or client.key == sender_key:
                continue
            record = client.records.get(sender_key)
            if record is None:
                continue
            attempts += 1
            try:
                sk.group_decrypt(record, message)
                leaked += 1
            except (NoSenderKey, DuplicateMessage):
                pass
    assert attempts > 1000
    assert leaked == 0
    assert time.process_time() - started < 60  # ~20 s budget on a loaded 2-core machine
