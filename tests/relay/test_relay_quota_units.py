"""Quota logic without a network: mailbox classes, prekey budgets and new-identity buckets
(with a fake clock), address keys, and the store's classification by delivery secret."""

from __future__ import annotations

import os

from messenger_tui.core import wire
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import generate_one_time_prekeys, generate_signed_prekey
from messenger_tui.core.delivery_access import delivery_verifier
from messenger_tui.relay.access_gate import address_key
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.config import RateLimit
from messenger_tui.relay.prekey_directory import PrekeyDirectory
from messenger_tui.relay.quotas import MailboxQuota, MailboxUsage, admit
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import InsertOutcome, NewEnvelope

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))
Q = MailboxQuota(
    contact_count=3, contact_bytes=100, request_count=4, request_bytes=50, request_per_sender=2
)


def test_requests_fill_their_own_budget_and_never_the_contacts() -> None:
    usage = MailboxUsage()
    for sender in (A, A, B, B):
        assert admit(usage, Q, request=True, sender=sender, size=1) is InsertOutcome.STORED
        usage.add(request=True, sender=sender, size=1)
    assert admit(usage, Q, request=True, sender=A, size=1) is InsertOutcome.SENDER_REQUESTS_FULL
    assert admit(usage, Q, request=True, sender=C, size=1) is InsertOutcome.REQUESTS_FULL
    assert admit(usage, Q, request=False, sender=C, size=1) is InsertOutcome.STORED
    usage.remove(request=True, sender=A, size=1)
    assert admit(usage, Q, request=True, sender=C, size=1) is InsertOutcome.STORED
    assert admit(usage, Q, request=True, sender=C, size=60) is InsertOutcome.REQUESTS_FULL
    assert admit(usage, Q, request=False, sender=C, size=101) is InsertOutcome.MAILBOX_FULL


async def test_store_classifies_by_the_registered_verifier(store: SqliteStore) -> None:
    secret = os.urandom(32)

    async def put(access: bytes | None) -> bool:
        (r,) = await store.write(
            [NewEnvelope(B, A, os.urandom(16), b"x", access)],
            [],
            now_ms=1,
            ttl_ms=10**6,
            mailbox_limit=10,
            quota=Q,
        )
        return r.request

    assert await put(None) is False  # no verifier registered: one quota, as before
    await store.set_delivery_verifier(B, delivery_verifier(secret), now_ms=1)
    assert [await put(secret), await put(None), await put(secret[::-1])] == [False, True, True]


async def test_prekey_budget_refills_with_the_clock(store: SqliteStore) -> None:
    clock = ManualClock()
    owner = IdentityKeyPair.generate()
    directory = PrekeyDirectory(
        store,
        max_one_time=100,
        clock=clock,
        pair_limit=RateLimit(1 / 600, 2),
        target_limit=RateLimit(1.0, 50),
    )
    spk = generate_signed_prekey(owner, 1, now_ms=0)
    await directory.publish(
        owner.public,
        wire.PublishPrekeys(
            ref=1,
            spk_id=1,
            spk=spk.public,
            spk_sig=spk.signature,
            opks=[wire.OneTimePrekeyWire(k.id, k.public) for k in generate_one_time_prekeys(1, 10)],
        ),
    )
    got = [(await directory.fetch(owner.public, A)).one_time is not None for _ in range(5)]
    assert got == [True, True, False, False, False]
    clock.advance(600_000)
    assert (await directory.fetch(owner.public, A)).one_time is not None
    assert (await directory.fetch(owner.public, B)).one_time is not None  # another requester


def test_new_identity_bucket_and_address_keys() -> None:
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(10 / 3600, 10), clock)
    key = address_key(("203.0.113.9", 5000))
    assert [limiter.allow(key) for _ in range(11)] == [True] * 10 + [False]
    clock.advance(3_600_000)
    assert limiter.allow(key)
    assert address_key(("2001:db8::1", 1, 0, 0)) == address_key(("2001:db8::ffff", 2, 0, 0))
    assert address_key(("::ffff:203.0.113.9", 1, 0, 0)) == key
    assert address_key(None) != key
