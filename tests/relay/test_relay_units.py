"""Sans-I/O pieces of the relay: token buckets, the auth challenge, presence, the relay key."""

from __future__ import annotations

import os
from pathlib import Path

import nacl.signing
import pytest

from messenger_tui.core import wire
from messenger_tui.relay.auth import AuthChallenge, AuthRefused
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.presence import PresenceRegistry
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.relay_key import SEED_FILE, RelayKeyError, load_or_create_relay_key
from messenger_tui.relay.store import StoredEnvelope

from .conftest import ListSink

# ------------------------------------------------------------------------- rate limits


def test_token_bucket_burst_then_rate(clock: ManualClock) -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=10, burst=5), clock)
    alice, bob = b"a" * 32, b"b" * 32
    assert [limiter.allow(alice) for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow(bob)  # per identity
    clock.advance(100)  # 10/s -> one token per 100 ms
    assert limiter.allow(alice)
    assert not limiter.allow(alice)
    clock.advance(10_000)  # refills only up to the burst
    assert [limiter.allow(alice) for _ in range(6)] == [True] * 5 + [False]


def test_refusing_bucket_stays_closed_until_a_tenth_refilled(clock: ManualClock) -> None:
    """Hysteresis: what is pipelined behind a refused send is refused too (keeps order)."""
    limiter = RateLimiter(RateLimit(rate_per_s=1000, burst=100), clock)
    alice = b"a" * 32
    assert all(limiter.allow(alice) for _ in range(100))
    assert not limiter.allow(alice)
    clock.advance(5)  # 5 tokens back: enough for a send, but the bucket stays closed
    assert not limiter.allow(alice)
    clock.advance(5)  # 10 tokens = a tenth of the burst: open again
    assert [limiter.allow(alice) for _ in range(11)] == [True] * 10 + [False]


def test_prune_forgets_full_buckets(clock: ManualClock) -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=1, burst=2), clock)
    limiter.allow(b"a" * 32)
    limiter.allow(b"b" * 32)
    assert limiter.prune() == 0 and len(limiter) == 2
    clock.advance(1000)
    assert limiter.prune() == 2 and len(limiter) == 0


def test_default_limits_allow_a_1000_message_burst(tmp_path: Path, clock: ManualClock) -> None:
    config = RelayConfig(data_dir=tmp_path)
    limiter = RateLimiter(config.send_limit, clock)
    assert all(limiter.allow(b"a" * 32) for _ in range(1000))


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RelayConfig(data_dir=tmp_path, tls_cert=tmp_path / "c.pem")
    with pytest.raises(ValueError):
        RelayConfig(data_dir=tmp_path, echo_identity=b"short")
    with pytest.raises(ValueError):
        RelayConfig(data_dir=tmp_path, max_envelope=wire.MAX_ENVELOPE + 1)
    with pytest.raises(ValueError):
        RateLimit(0, 1)
    assert RelayConfig(data_dir=tmp_path).ttl_ms == 30 * 24 * 3600 * 1000


# ------------------------------------------------------------------------------- auth

RELAY_KEY = bytes(nacl.signing.SigningKey.generate().verify_key)


def answer(
    key: nacl.signing.SigningKey, challenge: AuthChallenge, time_ms: int, nonce: bytes | None = None
) -> wire.Auth:
    identity = bytes(key.verify_key)
    message = wire.auth_message(
        challenge.relay_key, challenge.nonce if nonce is None else nonce, identity, time_ms
    )
    return wire.Auth(identity=identity, time_ms=time_ms, signature=key.sign(message).signature)


def test_auth_accepts_a_fresh_signature() -> None:
    key = nacl.signing.SigningKey.generate()
    challenge = AuthChallenge(RELAY_KEY, 1_000_000, echo=b"e" * 32)
    assert challenge.frame.relay_key == RELAY_KEY and challenge.frame.echo == b"e" * 32
    assert len(challenge.nonce) == 32
    assert challenge.verify(answer(key, challenge, 1_000_000), 1_000_000) == bytes(key.verify_key)


def test_auth_nonces_differ_per_challenge() -> None:
    assert AuthChallenge(RELAY_KEY, 0).nonce != AuthChallenge(RELAY_KEY, 0).nonce


def test_auth_refuses_another_connections_nonce() -> None:
    key = nacl.signing.SigningKey.generate()
    first, second = AuthChallenge(RELAY_KEY, 0), AuthChallenge(RELAY_KEY, 0)
    with pytest.raises(AuthRefused, match="signature"):
        second.verify(answer(key, first, 0), 0)


def test_auth_challenge_is_single_use() -> None:
    key = nacl.signing.SigningKey.generate()
    challenge = AuthChallenge(RELAY_KEY, 0)
    auth = answer(key, challenge, 0)
    challenge.verify(auth, 0)
    with pytest.raises(AuthRefused, match="already answered"):
        challenge.verify(auth, 0)


@pytest.mark.parametrize("skew", [wire.AUTH_MAX_SKEW_MS + 1, -wire.AUTH_MAX_SKEW_MS - 1])
def test_auth_refuses_stale_or_future_timestamps(skew: int) -> None:
    key = nacl.signing.SigningKey.generate()
    now = 10**12
    challenge = AuthChallenge(RELAY_KEY, now)
    with pytest.raises(AuthRefused, match="clock"):
        challenge.verify(answer(key, challenge, now + skew), now)


def test_auth_refuses_wrong_key_and_garbage() -> None:
    key, other = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    challenge = AuthChallenge(RELAY_KEY, 0)
    forged = answer(key, challenge, 0)
    claimed = wire.Auth(identity=bytes(other.verify_key), time_ms=0, signature=forged.signature)
    with pytest.raises(AuthRefused):
        challenge.verify(claimed, 0)
    for auth in (
        wire.Auth(identity=b"short", time_ms=0, signature=b"x" * 64),
        wire.Auth(identity=bytes(key.verify_key), time_ms=0, signature=b"short"),
    ):
        with pytest.raises(AuthRefused):
            AuthChallenge(RELAY_KEY, 0).verify(auth, 0)


# ---------------------------------------------------------------------------- presence


class FakePeer(ListSink):
    def __init__(self, identity: bytes) -> None:
        super().__init__()
        self._identity = identity
        self.offered: list[StoredEnvelope] = []
        self.replaced = False

    @property
    def identity(self) -> bytes:
        return self._identity

    def offer(self, envelope: StoredEnvelope) -> None:
        self.offered.append(envelope)

    def offers_done(self) -> None:
        pass

    def replace(self) -> None:
        self.replaced = True

    def reread(self) -> None:
        pass


def test_presence_notifies_only_watchers_of_real_changes() -> None:
    registry = PresenceRegistry()
    alice, bob, carol = FakePeer(b"a" * 32), FakePeer(b"b" * 32), FakePeer(b"c" * 32)
    registry.connect(alice)
    registry.connect(carol)
    assert registry.subscribe(alice, [bob.identity, carol.identity]) == [
        wire.Presence(identity=bob.identity, online=False),
        wire.Presence(identity=carol.identity, online=True),
    ]
    registry.connect(bob)
    assert alice.take() == [wire.Presence(identity=bob.identity, online=True)]
    assert carol.take() == []  # carol did not subscribe
    newer_bob = FakePeer(bob.identity)
    assert registry.connect(newer_bob) is bob  # replacement: no offline/online flap
    registry.disconnect(bob)
    assert alice.take() == []
    assert registry.peer_for(bob.identity) is newer_bob
    registry.disconnect(newer_bob)
    assert alice.take() == [wire.Presence(identity=bob.identity, online=False)]
    assert not registry.is_online(bob.identity)


def test_presence_subscribe_replaces_and_disconnect_forgets() -> None:
    registry = PresenceRegistry()
    alice, bob, carol = FakePeer(b"a" * 32), FakePeer(b"b" * 32), FakePeer(b"c" * 32)
    registry.connect(alice)
    registry.subscribe(alice, [bob.identity])
    registry.subscribe(alice, [carol.identity])
    registry.connect(bob)
    assert alice.take() == []
    registry.disconnect(alice)
    registry.connect(carol)
    assert alice.take() == []


def test_presence_is_dropped_for_congested_watchers() -> None:
    registry = PresenceRegistry()
    alice, bob = FakePeer(b"a" * 32), FakePeer(b"b" * 32)
    registry.connect(alice)
    registry.subscribe(alice, [bob.identity])
    alice.is_congested = True
    registry.connect(bob)
    assert alice.take() == []


# --------------------------------------------------------------------------- relay key


def test_relay_key_created_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_relay_key(tmp_path)
    assert (tmp_path / SEED_FILE).stat().st_mode & 0o777 == 0o600
    assert bytes(load_or_create_relay_key(tmp_path).verify_key) == bytes(first.verify_key)


def test_relay_key_permissions_tightened_and_corruption_refused(tmp_path: Path) -> None:
    load_or_create_relay_key(tmp_path)
    seed = tmp_path / SEED_FILE
    seed.chmod(0o644)
    load_or_create_relay_key(tmp_path)
    assert seed.stat().st_mode & 0o777 == 0o600
    seed.write_bytes(os.urandom(5))
    with pytest.raises(RelayKeyError, match="5 bytes"):
        load_or_create_relay_key(tmp_path)
