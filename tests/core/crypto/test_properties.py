"""Property tests: two parties talk through a network that drops, reorders and duplicates.

Whatever the network does, every message delivered for the first time decrypts to what was
sent, every repeat raises DuplicateMessage (and changes nothing), and after a final clean
exchange both sides agree on the chain keys again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.crypto import session as sess
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import (
    PrekeyBundle,
    generate_one_time_prekeys,
    generate_signed_prekey,
)
from messenger_tui.core.errors import DuplicateMessage

from ._util import DeterministicRng

SIDES = ("alice", "bob")

# (kind, side, index, keep): "send" from side; "deliver" the index-th in-flight message to
# side, keeping a copy in flight when keep (a duplicate later); "drop" it; "reload" the side's
# session through serialize/deserialize, as the app does between messages. Weighted so that
# most messages are delivered, some lost.
KINDS = ["send"] * 3 + ["deliver"] * 4 + ["drop", "reload"]
op = st.tuples(st.sampled_from(KINDS), st.sampled_from(SIDES), st.integers(0, 63), st.booleans())


@dataclass
class Packet:
    msg_id: int
    data: bytes
    plaintext: bytes


@dataclass
class World:
    seed: bytes
    rng: DeterministicRng = field(init=False)
    alice_id: IdentityKeyPair = field(init=False)
    bob_id: IdentityKeyPair = field(init=False)
    sessions: dict[str, sess.Session | None] = field(init=False)
    in_flight: dict[str, list[Packet]] = field(init=False)  # keyed by receiver
    seen: dict[str, set[int]] = field(init=False)
    next_id: int = 0

    def __post_init__(self) -> None:
        self.rng = DeterministicRng(self.seed)
        self.alice_id = IdentityKeyPair.generate(self.rng)
        self.bob_id = IdentityKeyPair.generate(self.rng)
        self.spk = generate_signed_prekey(self.bob_id, 1, 0, self.rng)
        (self.opk,) = generate_one_time_prekeys(1, 1, self.rng)
        bundle = PrekeyBundle(
            identity=self.bob_id.public,
            spk_id=self.spk.id,
            spk=self.spk.public,
            spk_sig=self.spk.signature,
            opk_id=self.opk.id,
            opk=self.opk.public,
        )
        self.sessions = {
            "alice": sess.initiate_session(self.alice_id, bundle, self.rng),
            "bob": None,
        }
        self.in_flight = {"alice": [], "bob": []}
        self.seen = {"alice": set(), "bob": set()}

    def send(self, sender: str) -> Packet | None:
        session = self.sessions[sender]
        if session is None:
            return None  # bob cannot talk before the handshake reached him
        plaintext = f"{sender} #{self.next_id}".encode()
        session, data = sess.encrypt(session, plaintext)
        self.sessions[sender] = session
        packet = Packet(self.next_id, data, plaintext)
        self.next_id += 1
        receiver = "bob" if sender == "alice" else "alice"
        self.in_flight[receiver].append(packet)
        return packet

    def deliver(self, receiver: str, packet: Packet) -> None:
        env = sess.parse_envelope(packet.data)
        session = self.sessions[receiver]
        first_time = packet.msg_id not in self.seen[receiver]
        try:
            if session is None:
                assert receiver == "bob" and env.prekey is not None
                assert sess.envelope_session_key(env) is not None
                new, plaintext = sess.accept_session(
                    self.bob_id, env, self.alice_id.public, self.spk, self.opk, self.rng
                )
            else:
                key = sess.envelope_session_key(env)
                assert key is None or key == session.base_key
                new, plaintext = sess.decrypt(session, env, self.rng)
        except DuplicateMessage:
            assert not first_time, f"message {packet.msg_id} was new but called a duplicate"
            return
        assert first_time, f"message {packet.msg_id} decrypted twice"
        assert plaintext == packet.plaintext
        self.seen[receiver].add(packet.msg_id)
        self.sessions[receiver] = new

    def reload(self, side: str) -> None:
        session = self.sessions[side]
        if session is not None:
            self.sessions[side] = sess.deserialize_session(sess.serialize_session(session))


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(op, min_size=10, max_size=80), seed=st.binary(min_size=1, max_size=4))
def test_lossy_reordering_duplicating_network(
    ops: list[tuple[str, str, int, bool]], seed: bytes
) -> None:
    world = World(seed)
    for kind, side, index, keep in ops:
        if kind == "send":
            world.send(side)
        elif kind == "reload":
            world.reload(side)
        else:
            queue = world.in_flight[side]
            if not queue:
                continue
            index %= len(queue)
            if kind == "drop":
                queue.pop(index)
            else:
                packet = queue[index] if keep else queue.pop(index)
                world.deliver(side, packet)

    # every packet still in flight arrives now, twice, in reverse order
    for side in SIDES:
        for packet in reversed(world.in_flight[side]):
            world.deliver(side, packet)
            world.deliver(side, packet)
        world.in_flight[side].clear()

    # a final clean exchange: both sides converge
    for sender in ("alice", "bob", "alice", "alice", "bob"):
        sent = world.send(sender)
        assert sent is not None
        receiver = "bob" if sender == "alice" else "alice"
        world.in_flight[receiver].clear()
        world.deliver(receiver, sent)
    alice, bob = world.sessions["alice"], world.sessions["bob"]
    assert alice is not None and bob is not None
    assert alice.confirmed and bob.confirmed
    assert alice.pending_prekey is None and bob.pending_prekey is None
    assert alice.base_key == bob.base_key
    a, b = alice.ratchet, bob.ratchet
    # bob sent last: alice's receiving chain is bob's sending chain
    assert a.dhr == b.dhs_public and a.ckr == b.cks and a.nr == b.ns
    # one more from alice: bob's receiving chain is then alice's sending chain
    alice, probe = sess.encrypt(alice, b"probe")
    bob, plaintext = sess.decrypt(bob, sess.parse_envelope(probe), world.rng)
    assert plaintext == b"probe"
    a, b = alice.ratchet, bob.ratchet
    assert b.dhr == a.dhs_public and b.ckr == a.cks and b.nr == a.ns
