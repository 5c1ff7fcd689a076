"""Group send grants and the short fan-out form of SendMulti (core/groups/send_credential.py,
relay/group_grants.py): the grant store on each backend, and a real relay process (SQLite
and Redis) accepting a granted short send, refusing an ungranted reference, an old sender
key's credential, and more grants than the bound."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from messenger_tui.core import wire
from messenger_tui.core.delivery_access import delivery_verifier
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.relay.group_grants import parse_grants
from messenger_tui.relay.store import NewEnvelope, RelayStore, SharedUpload
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key
from tests.relay.conftest import STORE_BACKENDS

GROUP_ID = bytes(range(16))
F = TypeVar("F", bound=wire.RelayFrame)


def credential(key_id: int = 1) -> bytes:
    return sc.send_credential(GROUP_ID, key_id, os.urandom(32))


def grant(sender: bytes, cred: bytes) -> bytes:
    return sender + sc.grant_verifier(cred)


# ---------------------------------------------------------------- core derivations


def test_credential_is_domain_separated_per_key_and_group() -> None:
    public = os.urandom(32)
    one = sc.send_credential(GROUP_ID, 1, public)
    assert len(one) == sc.CREDENTIAL_LEN
    assert one == sc.send_credential(GROUP_ID, 1, public)
    assert one != sc.send_credential(GROUP_ID, 2, public)
    assert one != sc.send_credential(bytes(16), 1, public)
    assert one != sc.send_credential(GROUP_ID, 1, os.urandom(32))
    assert sc.grant_verifier(one) != one
    a, b = os.urandom(32), os.urandom(32)
    assert len(sc.recipient_ref(one, a)) == sc.REF_LEN
    assert sc.recipient_ref(one, a) != sc.recipient_ref(one, b)
    with pytest.raises(ValueError):
        sc.split_refs(b"\x00" * 9)


def test_grant_list_bounds() -> None:
    sender, cred = os.urandom(32), credential()
    assert parse_grants(grant(sender, cred) * 2) == [(sender, sc.grant_verifier(cred))]
    assert isinstance(parse_grants(b"\x00" * 65), str)
    full = b"".join(os.urandom(sc.GRANT_LEN) for _ in range(sc.MAX_GRANTS))
    assert isinstance(parse_grants(full), list)
    over = parse_grants(full + os.urandom(sc.GRANT_LEN))
    assert isinstance(over, str) and str(sc.MAX_GRANTS) in over


# ---------------------------------------------------------------- the stores


async def test_grants_replace_and_look_up(store: RelayStore) -> None:
    alice, bob, carol = os.urandom(32), os.urandom(32), os.urandom(32)
    old, new = sc.grant_verifier(credential(1)), sc.grant_verifier(credential(2))
    await store.set_group_grants(bob, [(alice, old)], now_ms=1)
    await store.set_group_grants(carol, [(alice, old), (bob, new)], now_ms=1)
    assert sorted(await store.grantees(alice, old)) == sorted([bob, carol])
    assert await store.grantees(bob, new) == [carol]
    # Replacing drops what is not listed any more (the old key, a removed sender).
    await store.set_group_grants(carol, [(alice, new)], now_ms=2)
    assert await store.grantees(alice, old) == [bob]
    assert await store.grantees(alice, new) == [carol]
    assert await store.grantees(bob, new) == []
    await store.set_group_grants(bob, [], now_ms=3)
    assert await store.grantees(alice, old) == []


async def test_granted_envelope_counts_as_a_contacts(store: RelayStore) -> None:
    sender, recipient = os.urandom(32), os.urandom(32)
    await store.set_delivery_verifier(recipient, delivery_verifier(os.urandom(32)), now_ms=0)
    upload = SharedUpload()
    envs = [
        NewEnvelope(recipient, sender, new_id(), b"body", None, b"", upload, granted=True),
        NewEnvelope(recipient, os.urandom(32), new_id(), b"body", None, b"", SharedUpload()),
    ]
    results = await store.write(envs, [], now_ms=0, ttl_ms=60_000, mailbox_limit=100)
    assert [r.request for r in results] == [False, True]


# ---------------------------------------------------------------- a real relay


@pytest.fixture(params=STORE_BACKENDS)
async def relay(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RelayProcess]:
    store = "sqlite"
    if request.param == "redis":
        server: RedisProcess = request.getfixturevalue("redis_server")
        store = server.url
    with RelayProcess(tmp_path_factory.mktemp("relay") / "data", store=store) as process:
        yield process


async def first(client: WireClient, kind: type[F]) -> F:
    """The next frame of ``kind`` (pushes and Drained before it are skipped)."""
    frame, _ = await client.recv_until(kind)
    return frame


def short(cred: bytes, recipients: list[bytes], body: bytes = b"group body") -> wire.SendMulti:
    refs = b"".join(sc.recipient_ref(cred, r) for r in recipients)
    return wire.SendMulti(id=new_id(), body=body, to=[], cred=cred, refs=refs)


@pytest.mark.slow
async def test_short_send_through_a_real_relay(relay: RelayProcess) -> None:
    sender_key, bob_key, carol_key, dave_key = (new_key() for _ in range(4))
    sender = await WireClient.connect(relay.url, sender_key)
    bob = await WireClient.connect(relay.url, bob_key)
    carol = await WireClient.connect(relay.url, carol_key)
    dave = await WireClient.connect(relay.url, dave_key)
    try:
        for client in (sender, bob, carol, dave):
            await client.recv_until(wire.Drained)
        # Bob has a delivery verifier (so a request would be a request): the grant makes
        # the group message a contact's.
        await bob.send(wire.SetDeliveryVerifier(ref=1, verifier=delivery_verifier(os.urandom(32))))
        await first(bob, wire.Ok)
        old = credential(1)
        for member in (bob, carol):
            await member.send(wire.SetGroupGrants(ref=2, grants=grant(sender.identity, old)))
            await first(member, wire.Ok)

        # Granted: stored for bob and carol; dave granted nothing: not_granted, by reference.
        frame = short(old, [bob.identity, carol.identity, dave.identity])
        await sender.send(frame)
        answer = await first(sender, wire.StoredMulti)
        refs = sc.split_refs(frame.refs)
        assert [(r.to, r.code, r.request) for r in answer.results] == [
            (refs[0], None, False),
            (refs[1], None, False),
            (refs[2], wire.ErrorCode.NOT_GRANTED, False),
        ]
        # Idempotent by message id per recipient: the same frame again (before the acks)
        # stores nothing new; each member gets it once.
        await sender.send(frame)
        again = await first(sender, wire.StoredMulti)
        assert [r.code for r in again.results][:2] == [None, None]
        for member in (bob, carol):
            (delivery,) = await member.drain_deliveries()
            assert (delivery.id, delivery.sender, delivery.body) == (
                frame.id,
                sender.identity,
                b"group body",
            )
            await member.send(wire.Ack(ids=[delivery.id]))
        assert not [f for f in await dave.nothing_for(0.3) if isinstance(f, wire.Deliver)]

        # The sender rotated its key: bob and carol now grant the new credential only. The
        # old credential is refused for both, the new one accepted.
        new = credential(2)
        for member in (bob, carol):
            await member.send(wire.SetGroupGrants(ref=3, grants=grant(sender.identity, new)))
            await first(member, wire.Ok)
        await sender.send(short(old, [bob.identity, carol.identity]))
        refused = await first(sender, wire.StoredMulti)
        assert [r.code for r in refused.results] == [wire.ErrorCode.NOT_GRANTED] * 2
        await sender.send(short(new, [bob.identity, carol.identity]))
        accepted = await first(sender, wire.StoredMulti)
        assert [r.code for r in accepted.results] == [None, None]

        # A credential granted to another sender does not work for this one.
        await dave.send(short(new, [bob.identity]))
        other = await first(dave, wire.StoredMulti)
        assert [r.code for r in other.results] == [wire.ErrorCode.NOT_GRANTED]

        # Bounds: more than MAX_GRANTS grants are refused whole (the old ones stay).
        too_many = b"".join(os.urandom(sc.GRANT_LEN) for _ in range(sc.MAX_GRANTS + 1))
        await carol.send(wire.SetGroupGrants(ref=4, grants=too_many))
        error = await first(carol, wire.Error)
        assert (error.code, error.ref) == (wire.ErrorCode.BAD_REQUEST, 4)
        # A malformed short send is refused whole.
        await sender.send(wire.SendMulti(id=new_id(), body=b"x", to=[], cred=new, refs=b"123"))
        bad = await first(sender, wire.Error)
        assert bad.code == wire.ErrorCode.BAD_REQUEST
    finally:
        for client in (sender, bob, carol, dave):
            await client.close()
