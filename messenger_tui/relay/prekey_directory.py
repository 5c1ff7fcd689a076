"""The prekey directory: verified publishing and one-shot handing out of prekey bundles.

Sessions call :meth:`PrekeyDirectory.publish` for PublishPrekeys (the signed prekey is checked
with the crypto layer's own :func:`messenger_tui.core.crypto.prekeys.verify_bundle`, i.e. an
Ed25519 signature by the identity over ``SPK_SIGNATURE_CONTEXT || spk``) and
:meth:`PrekeyDirectory.fetch` for FetchBundle. Refusals raise :class:`PrekeyRejected` carrying
the wire error code; the session turns it into an Error frame.

One-time prekeys are a scarce resource of their owner, so handing one out has a budget: a
token bucket per (requester, target) pair and one per target. A fetch within both gets a
one-time prekey (while any is left); a fetch over either gets the signed-prekey-only bundle,
which X3DH allows (the session is a little weaker against a later compromise of the signed
prekey). The fetch itself still succeeds, so nobody is locked out of starting a session.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from messenger_tui.core import wire
from messenger_tui.core.crypto import prekeys as crypto_prekeys
from messenger_tui.core.crypto.primitives import X25519_KEY_LEN
from messenger_tui.core.errors import CoreError
from messenger_tui.relay.clock import Clock
from messenger_tui.relay.config import RateLimit
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.store import (
    PrekeyStatus,
    PrekeyStore,
    StoredOneTimePrekey,
    StoredPrekeyBundle,
    StoredSignedPrekey,
)


class SharedBudget(Protocol):
    """A budget kept where every relay node counts it (relay/node_redis.SharedLimiter)."""

    def allow(self, key: bytes, tokens: float = 1.0) -> Awaitable[bool]: ...


class PrekeyRejected(Exception):
    """A publish or fetch the directory refuses; ``code`` is a :class:`wire.ErrorCode`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PrekeyDirectory:
    """Signed and one-time prekeys per identity, behind a :class:`PrekeyStore`."""

    def __init__(
        self,
        store: PrekeyStore,
        *,
        max_one_time: int,
        clock: Clock,
        pair_limit: RateLimit | None = None,
        target_limit: RateLimit | None = None,
    ) -> None:
        """Without ``pair_limit``/``target_limit`` one-time prekeys have no budget."""
        self._store = store
        self._max_one_time = max_one_time
        self._clock = clock
        self._pair = None if pair_limit is None else RateLimiter(pair_limit, clock)
        self._target = None if target_limit is None else RateLimiter(target_limit, clock)
        self._shared: tuple[SharedBudget | None, SharedBudget | None] | None = None
        #: Fetches answered without a one-time prekey because of the budget.
        self.over_budget = 0

    @property
    def local_budgets(self) -> tuple[RateLimiter | None, RateLimiter | None]:
        """This node's own (pair, target) budgets: what shared budgets fall back to."""
        return self._pair, self._target

    def share_budgets(self, pair: SharedBudget | None, target: SharedBudget | None) -> None:
        """Several relay nodes: count the (pair, target) budgets in Redis, so a requester
        spreading its fetches over nodes does not get one budget per node."""
        self._shared = (pair, target)

    async def publish(self, identity: bytes, frame: wire.PublishPrekeys) -> int:
        """Verify and store ``identity``'s prekeys; return the one-time prekeys now held.

        The signed prekey replaces the previous one. One-time prekeys beyond the bound are
        dropped (clients should publish at most ``bound - prekeys_remaining``); ids already
        held keep their old key. Raises :class:`PrekeyRejected` (bad_request) for a bad
        signature, key size or id.
        """
        try:
            crypto_prekeys.verify_bundle(
                crypto_prekeys.PrekeyBundle(
                    identity=identity, spk_id=frame.spk_id, spk=frame.spk, spk_sig=frame.spk_sig
                )
            )
        except CoreError as exc:
            raise PrekeyRejected(
                wire.ErrorCode.BAD_REQUEST, f"signed prekey refused: {exc}"
            ) from None
        one_time: list[StoredOneTimePrekey] = []
        for opk in frame.opks:
            if not 0 <= opk.id <= crypto_prekeys.MAX_PREKEY_ID:
                raise PrekeyRejected(
                    wire.ErrorCode.BAD_REQUEST, "one-time prekey ids are unsigned 32-bit"
                )
            if len(opk.key) != X25519_KEY_LEN:
                raise PrekeyRejected(
                    wire.ErrorCode.BAD_REQUEST, "one-time prekeys are 32-byte X25519 keys"
                )
            one_time.append(StoredOneTimePrekey(opk.id, opk.key))
        return await self._store.put_prekeys(
            identity,
            StoredSignedPrekey(frame.spk_id, frame.spk, frame.spk_sig),
            one_time,
            max_one_time=self._max_one_time,
            now_ms=self._clock(),
        )

    async def fetch(self, identity: bytes, requester: bytes | None = None) -> StoredPrekeyBundle:
        """Hand out ``identity``'s bundle, consuming one one-time prekey if any is left and
        the fetch is within the budget of (``requester``, ``identity``) and of ``identity``.

        Raises :class:`PrekeyRejected` (not_found) when the identity never published.
        """
        if len(identity) != wire.KEY_LEN:
            raise PrekeyRejected(
                wire.ErrorCode.BAD_REQUEST, "identity must be a 32-byte Ed25519 public key"
            )
        one_time = await self._within_budget(identity, requester)
        if not one_time:
            self.over_budget += 1
        bundle = await self._store.take_bundle(identity, one_time=one_time)
        if bundle is None:
            raise PrekeyRejected(wire.ErrorCode.NOT_FOUND, "no prekeys published for that identity")
        return bundle

    async def _within_budget(self, identity: bytes, requester: bytes | None) -> bool:
        if self._shared is not None:
            shared_pair, shared_target = self._shared
            if (
                shared_pair is not None
                and requester is not None
                and not await shared_pair.allow(requester + identity)
            ):
                return False
            return shared_target is None or await shared_target.allow(identity)
        pair = self._pair
        if pair is not None and requester is not None and not pair.allow(requester + identity):
            return False
        return self._target is None or self._target.allow(identity)

    def prune(self) -> int:
        """Forget refilled budget buckets; return how many were dropped."""
        return sum(limiter.prune() for limiter in (self._pair, self._target) if limiter)

    async def status(self, identity: bytes) -> PrekeyStatus:
        """One-time prekeys held and the signed prekey id, for AuthOk and Ok replies."""
        return await self._store.prekey_status(identity)
