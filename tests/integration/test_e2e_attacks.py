"""Tampered, replayed and impersonating envelopes through a real relay are refused visibly,
and they change nothing: the next genuine message still decrypts."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.errors import KeyChangeBlocked
from messenger_tui.app.sender import prekey_bundle
from messenger_tui.app.service import MessengerService
from messenger_tui.core import payload as pl
from messenger_tui.core.crypto import session as cs
from tests.helpers.clients import client, introduce, next_event, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def _texts(service: MessengerService) -> list[str]:
    return [
        m.text for m in service.history(service.contact("alice").id, limit=100) if m.kind == "text"
    ]


def _sealed(alice: MessengerService, text: str) -> bytes:
    """Seal a text with alice's current session *without* saving the advanced state."""
    active = alice.store.sessions.active(bob_key(alice))
    assert active is not None
    _base_key, state = active
    body = pl.encode_payload(pl.Text(id=os.urandom(16), text=text, sent_at_ms=1))
    _, envelope = cs.encrypt(cs.deserialize_session(state), body)
    return envelope


def bob_key(alice: MessengerService) -> bytes:
    return alice.contact("bob").identity


async def test_tampered_ciphertext_is_refused_visibly_and_changes_nothing(
    tmp_path: Path, relay: RelayProcess
) -> None:
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
    ):
        await introduce(alice, bob)
        events = bob.subscribe()
        await bob.start()
        await alice.start()
        await alice.send_text(alice.contact("bob").id, "first")
        await next_event(events, ev.MessageReceived)

        envelope = bytearray(_sealed(alice, "tampered"))
        envelope[-3] ^= 0x01
        await alice._client.submit_envelope(os.urandom(16), bob_key(alice), bytes(envelope))
        failure = await next_event(events, ev.MessageFailed)
        assert "failed authentication" in failure.reason
        notices = [m.text for m in bob.history(bob.contact("alice").id) if m.kind == "notice"]
        assert any("could not be opened" in n for n in notices)

        await alice.send_text(
            alice.contact("bob").id, "second"
        )  # same ratchet position as the tampered one
        await next_event(events, ev.MessageReceived)
        assert _texts(bob) == ["first", "second"]


async def test_replayed_envelope_is_shown_once(tmp_path: Path, relay: RelayProcess) -> None:
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
    ):
        await introduce(alice, bob)
        events = bob.subscribe()
        await bob.start()
        await alice.start()
        await alice.send_text(alice.contact("bob").id, "hello")
        await next_event(events, ev.MessageReceived)
        # alice seals one message (saving her ratchet state, as the app does) ...
        payload = pl.encode_payload(pl.Text(id=os.urandom(16), text="only once", sent_at_ms=1))
        body = alice._sender.seal_ephemeral(bob_key(alice), payload)
        assert body is not None  # alice has a session with bob
        await alice._client.submit_envelope(os.urandom(16), bob_key(alice), body)
        await next_event(events, ev.MessageReceived)
        # ... and an attacker (or the relay) replays it under a fresh envelope id.
        await alice._client.submit_envelope(os.urandom(16), bob_key(alice), body)
        await alice.send_text(alice.contact("bob").id, "after replay")
        await next_event(events, ev.MessageReceived)
        assert _texts(bob) == ["hello", "only once", "after replay"]
        assert not [m for m in bob.history(bob.contact("alice").id) if m.kind == "notice"]


async def test_impersonation_in_the_handshake_is_refused(
    tmp_path: Path, relay: RelayProcess
) -> None:
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
        client(tmp_path, "mallory", relay.url) as mallory,
    ):
        await introduce(alice, bob)
        await mallory.connect(timeout=10)
        bundle = await mallory._client.fetch_bundle(bob.identity.public)
        session = cs.initiate_session(mallory.identity, prekey_bundle(bundle))
        body = pl.encode_payload(pl.Text(id=os.urandom(16), text="I am alice", sent_at_ms=1))
        _, raw = cs.encrypt(session, body)
        env = cs.parse_envelope(raw)
        assert env.prekey is not None  # a first message carries the prekey header
        forged = msgspec.structs.replace(
            env, prekey=msgspec.structs.replace(env.prekey, identity=alice.identity.public)
        )
        events = bob.subscribe()
        await bob.start()
        await mallory._client.submit_envelope(
            os.urandom(16), bob.identity.public, msgspec.msgpack.encode(forged)
        )
        failure = await next_event(events, ev.MessageFailed)
        assert "impersonation" in failure.reason or "authentication" in failure.reason
        assert _texts(bob) == []
        assert bob.store.contacts.by_identity(mallory.identity.public) is None


async def test_key_change_blocks_sending_until_accepted(
    tmp_path: Path, relay: RelayProcess
) -> None:
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
        client(tmp_path, "bob-reinstalled", relay.url) as bob2,
    ):
        await introduce(alice, bob)
        await bob2.connect(timeout=10)
        changed = alice.add_contact(bob2.address, "bob")
        assert changed.key_changed
        with pytest.raises(KeyChangeBlocked, match="accept"):
            await alice.send_text(alice.contact("bob").id, "blocked")
        notices = [m.text for m in alice.history(alice.contact("bob").id) if m.kind == "notice"]
        assert any("identity key changed" in n for n in notices)
        alice.accept_key(alice.contact("bob").id)
        await alice.connect(timeout=10)
        bob2.add_contact(alice.address, "alice")
        events = bob2.subscribe()
        await bob2.start()
        await alice.send_text(alice.contact("bob").id, "to the new key")
        received = await next_event(events, ev.MessageReceived)
        assert received.message.text == "to the new key"
        await wait_for(lambda: alice.outbox_count() == 0)


async def test_replayed_handshake_after_session_eviction_is_not_shown_again(
    tmp_path: Path, relay: RelayProcess
) -> None:
    """A handshake without a one-time prekey stays valid while the signed prekey lives; the
    relay replaying it later (under a new id) must neither resurrect the message nor rewind
    the session."""
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
    ):
        await introduce(alice, bob)
        fetched = await alice._client.fetch_bundle(bob.identity.public)
        without_opk = msgspec.structs.replace(prekey_bundle(fetched), opk_id=None, opk=None)
        session = cs.initiate_session(alice.identity, without_opk)
        payload = pl.encode_payload(pl.Text(id=os.urandom(16), text="handshake", sent_at_ms=1))
        _, body = cs.encrypt(session, payload)
        events = bob.subscribe()
        await bob.start()
        await alice._client.submit_envelope(os.urandom(16), bob.identity.public, body)
        await next_event(events, ev.MessageReceived)
        with bob.store.db.transaction():  # as if the session had left the bounded archive
            bob.store.sessions.delete_peer(alice.identity.public)
        replay_id = os.urandom(16)
        await alice._client.submit_envelope(replay_id, bob.identity.public, body)
        await wait_for(lambda: bob.store.received.seen(alice.identity.public, replay_id))
        assert _texts(bob) == ["handshake"]
        assert not [m for m in bob.history(bob.contact("alice").id) if m.kind == "notice"]
        # Accepting it again would install a rewound session, making bob reuse message keys.
        assert bob.store.sessions.for_peer(alice.identity.public) == []
