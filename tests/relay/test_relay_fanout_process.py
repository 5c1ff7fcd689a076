"""Multi-recipient send against the relay as a real process: one upload to 50 recipients,
each receives it exactly once and acks, and the relay's database then holds no body.
The sender is the app's RelayClient (``submit_multi``), the recipients raw wire clients."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from messenger_tui.core import wire
from messenger_tui.core.delivery_access import delivery_verifier
from messenger_tui.relay.sqlite_store import DB_FILE
from messenger_tui.transport.client import RelayClient
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key

pytestmark = pytest.mark.slow

GROUP = 50


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    with RelayProcess(extra_args=["--max-connections-per-address", "200"]) as process:
        yield process


def db_counts(data_dir: Path) -> tuple[int, int]:
    """(shared body rows, envelope rows) in the running relay's database (WAL: readable)."""
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        (bodies,) = db.execute("SELECT COUNT(*) FROM shared_bodies").fetchone()
        (envelopes,) = db.execute("SELECT COUNT(*) FROM envelopes").fetchone()
        return int(bodies), int(envelopes)
    finally:
        db.close()


async def until_counts(data_dir: Path, want: tuple[int, int], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := db_counts(data_dir)) != want:
        assert asyncio.get_running_loop().time() < deadline, f"database holds {got}, not {want}"
        await asyncio.sleep(0.05)


async def sender_client(relay: RelayProcess) -> tuple[RelayClient, list[wire.RelayFrame]]:
    key = nacl.signing.SigningKey.generate()
    frames: list[wire.RelayFrame] = []

    async def on_frame(frame: wire.RelayFrame) -> None:
        frames.append(frame)

    client = RelayClient(
        relay.url,
        bytes(key.verify_key),
        lambda message: key.sign(message).signature,
        on_frame=on_frame,
    )
    await client.connect_once()
    return client, frames


async def test_one_upload_to_50_recipients_each_once_then_no_body(relay: RelayProcess) -> None:
    keys = [new_key() for _ in range(GROUP)]
    # Half are online when the message is sent (live push), half connect later (mailbox).
    online = [await WireClient.connect(relay.url, k) for k in keys[: GROUP // 2]]
    for client in online:
        await client.recv_until(wire.Drained)
    # One member registered a delivery verifier and is given its secret: a contact.
    secret = os.urandom(32)
    await online[0].send(wire.SetDeliveryVerifier(ref=1, verifier=delivery_verifier(secret)))
    await online[0].expect(wire.Ok)
    identities = [bytes(k.verify_key) for k in keys]
    headers = {identities[1]: b"pairwise-sealed", identities[-1]: b"\x07" * wire.MAX_MULTI_HEADER}
    recipients = [
        wire.MultiRecipient(
            to=who, header=headers.get(who, b""), access=secret if who == identities[0] else None
        )
        for who in identities
    ]
    body = os.urandom(2000)
    msg_id = new_id()
    sender, _ = await sender_client(relay)
    try:
        stored = await sender.submit_multi(msg_id, body, recipients)
        assert stored.id == msg_id
        assert [(r.to, r.code) for r in stored.results] == [(who, None) for who in identities]
        assert [r.request for r in stored.results] == [False] * GROUP  # no verifier: contact
        # Stored once: one body row, one reference per recipient.
        await until_counts(relay.data_dir, (1, GROUP))
        # The retry of the same upload (a client that lost the answer) stores nothing new.
        again = await sender.submit_multi(msg_id, body, recipients)
        assert [r.code for r in again.results] == [None] * GROUP
        assert db_counts(relay.data_dir) == (1, GROUP)

        later = [await WireClient.connect(relay.url, k) for k in keys[GROUP // 2 :]]
        received: dict[bytes, list[wire.Deliver]] = {}
        for client in online:
            delivery, before = await client.recv_until(wire.Deliver)
            assert not [f for f in before if isinstance(f, wire.Deliver)]
            received[client.identity] = [delivery]
        for client in later:
            received[client.identity] = await client.drain_deliveries()
        for client in online + later:
            (delivery,) = received[client.identity]
            assert (delivery.id, delivery.sender, delivery.body) == (
                msg_id,
                sender_id(sender),
                body,
            )
            assert delivery.header == headers.get(client.identity, b"")
            await client.send(wire.Ack(ids=[delivery.id]))
        # Every reference acked: the body went with the last one.
        await until_counts(relay.data_dir, (0, 0))
        # Exactly once: nothing more arrives, and a reconnect redelivers nothing.
        for client in online + later:
            assert [f for f in await client.nothing_for(0.05) if isinstance(f, wire.Deliver)] == []
            await client.close()
        again_client = await WireClient.connect(relay.url, keys[0])
        assert await again_client.drain_deliveries() == []
        await again_client.close()
    finally:
        await sender.close()


def sender_id(client: RelayClient) -> bytes:
    auth = client.auth
    assert auth is not None
    return auth.identity


async def test_whole_frame_refusals(relay: RelayProcess) -> None:
    client = await WireClient.connect(relay.url)
    await client.recv_until(wire.Drained)
    someone = bytes(new_key().verify_key)
    bad = {
        "no recipient": wire.SendMulti(id=new_id(), body=b"x", to=[]),
        "too many": wire.SendMulti(
            id=new_id(),
            body=b"x",
            to=[wire.MultiRecipient(os.urandom(32)) for _ in range(wire.MAX_MULTI_RECIPIENTS + 1)],
        ),
        "twice": wire.SendMulti(
            id=new_id(), body=b"x", to=[wire.MultiRecipient(someone), wire.MultiRecipient(someone)]
        ),
        "header": wire.SendMulti(
            id=new_id(),
            body=b"x",
            to=[wire.MultiRecipient(someone, b"h" * (wire.MAX_MULTI_HEADER + 1))],
        ),
        "short identity": wire.SendMulti(id=new_id(), body=b"x", to=[wire.MultiRecipient(b"s")]),
    }
    for name, frame in bad.items():
        await client.send(frame)
        error = await client.expect(wire.Error)
        assert (error.code, error.ref) == (wire.ErrorCode.BAD_REQUEST, frame.id), name
    big = wire.SendMulti(
        id=new_id(), body=b"b" * (wire.MAX_ENVELOPE + 1), to=[wire.MultiRecipient(someone)]
    )
    await client.send(big)
    error = await client.expect(wire.Error)
    assert (error.code, error.ref) == (wire.ErrorCode.TOO_LARGE, big.id)
    # The connection still works and nothing was stored for anyone.
    ok = wire.SendMulti(id=new_id(), body=b"fine", to=[wire.MultiRecipient(someone)])
    await client.send(ok)
    answer = await client.expect(wire.StoredMulti)
    assert answer.results == [wire.MultiOutcome(to=someone)]
    await client.close()


async def test_client_checks_before_sending(relay: RelayProcess) -> None:
    sender, _ = await sender_client(relay)
    try:
        someone = wire.MultiRecipient(bytes(new_key().verify_key))
        with pytest.raises(ValueError, match="named twice"):
            sender.submit_multi(new_id(), b"x", [someone, someone])
        with pytest.raises(ValueError, match="frame limit"):
            many = [
                wire.MultiRecipient(os.urandom(32), os.urandom(wire.MAX_MULTI_HEADER))
                for _ in range(wire.MAX_MULTI_RECIPIENTS)
            ]
            sender.submit_multi(new_id(), os.urandom(wire.MAX_ENVELOPE), many)
        # The largest body to the most recipients with secrets but no headers does fit.
        full = [
            wire.MultiRecipient(os.urandom(32), access=os.urandom(32))
            for _ in range(wire.MAX_MULTI_RECIPIENTS)
        ]
        answer = await sender.submit_multi(new_id(), os.urandom(wire.MAX_ENVELOPE), full)
        assert [r.code for r in answer.results] == [None] * wire.MAX_MULTI_RECIPIENTS
    finally:
        await sender.close()
