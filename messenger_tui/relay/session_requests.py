"""The requests of an authenticated connection besides sending and subscribing: signals,
prekey bundles and publishing, delivery verifiers and group send grants (a part of
:class:`~messenger_tui.relay.session.MessageRouteConnection`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Final

from messenger_tui.core import wire
from messenger_tui.core.wire import ErrorCode
from messenger_tui.relay.access_gate import set_grants, set_verifier
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.frame_queue import FrameQueue
from messenger_tui.relay.node_redis import LeasedBucket
from messenger_tui.relay.prekey_directory import PrekeyRejected
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.store import StoreUnavailable

#: Tell an online owner its one-time prekeys run low (``Ok(ref=0, prekeys_remaining)``) when
#: a fetch leaves this many or fewer (clients top up below 25).
PREKEY_LOW_NOTIFY: Final = 25


class SessionRequests(ABC):
    """Handlers the session dispatches to; the session provides the state below."""

    _s: RelayServices
    _config: RelayConfig
    _frames: FrameQueue
    _label: str
    _fetch_credit: LeasedBucket | None

    @property
    @abstractmethod
    def identity(self) -> bytes:
        """The authenticated identity (the session's)."""

    @abstractmethod
    def _error(self, code: str, message: str, ref: int | bytes | None = None) -> None:
        """Queue an Error frame (the session's)."""

    def _on_signal(self, frame: wire.Signal) -> None:
        services = self._s
        if len(frame.to) != wire.KEY_LEN:
            self._error(ErrorCode.BAD_REQUEST, "recipient must be a 32-byte identity")
        elif len(frame.body) > self._config.max_envelope:
            self._error(
                ErrorCode.TOO_LARGE,
                f"signal is {len(frame.body)} bytes, the limit is {self._config.max_envelope}",
            )
        elif not services.limits.signal.allow(self.identity):
            self._error(ErrorCode.RATE_LIMITED, "too many signals; retry later")
        else:
            peer = services.presence.peer_for(frame.to)
            if peer is None and services.nodes is not None:
                # Maybe on another node: forwarded through Redis, never stored (node_bus).
                services.nodes.signal(frame.to, self.identity, frame.body)
                services.counters.signals_forwarded += 1
                return
            forwarded = peer is not None and peer.try_send_frame(
                wire.SignalDeliver(sender=self.identity, body=frame.body)
            )
            if forwarded:
                services.counters.signals_forwarded += 1
            else:
                services.counters.signals_dropped += 1

    async def _on_fetch_bundle(self, frame: wire.FetchBundle) -> None:
        credit = self._fetch_credit
        if not (
            self._s.limits.fetch_bundle.allow(self.identity)
            if credit is None
            else await credit.allow()
        ):
            self._error(ErrorCode.RATE_LIMITED, "too many bundle fetches; retry later", frame.ref)
            return
        try:
            bundle = await self._s.prekeys.fetch(frame.identity, self.identity)
        except PrekeyRejected as exc:
            self._error(exc.code, str(exc), frame.ref)
            return
        opk = bundle.one_time
        if opk is not None:
            await self._notify_prekeys_low(frame.identity)
        self._frames.put(
            wire.Bundle(
                ref=frame.ref,
                identity=bundle.identity,
                spk_id=bundle.signed.spk_id,
                spk=bundle.signed.spk,
                spk_sig=bundle.signed.spk_sig,
                opk_id=None if opk is None else opk.opk_id,
                opk=None if opk is None else opk.key,
            )
        )

    async def _on_publish_prekeys(self, frame: wire.PublishPrekeys) -> None:
        try:
            remaining = await self._s.prekeys.publish(self.identity, frame)
        except PrekeyRejected as exc:
            self._error(exc.code, str(exc), frame.ref)
            return
        self._s.log.info(
            "%s: published signed prekey %d and %d one-time prekeys (%d held)",
            self._label,
            frame.spk_id,
            len(frame.opks),
            remaining,
        )
        self._frames.put(wire.Ok(ref=frame.ref, prekeys_remaining=remaining))

    async def _notify_prekeys_low(self, owner: bytes) -> None:
        owner_peer = self._s.presence.peer_for(owner)
        nodes = self._s.nodes
        if owner_peer is None and nodes is None:
            return
        remaining = (await self._s.prekeys.status(owner)).one_time_remaining
        if remaining > PREKEY_LOW_NOTIFY:
            return
        if owner_peer is not None:
            owner_peer.try_send_frame(wire.Ok(ref=0, prekeys_remaining=remaining))
        elif nodes is not None:  # the owner may be connected to another node
            nodes.prekeys_low(owner, remaining)

    async def _on_set_verifier(self, frame: wire.SetDeliveryVerifier) -> None:
        problem = await set_verifier(self._s, self.identity, frame.verifier)
        if problem is not None:
            self._error(ErrorCode.BAD_REQUEST, problem, frame.ref)
        else:
            self._frames.put(wire.Ok(ref=frame.ref))

    async def _on_set_grants(self, frame: wire.SetGroupGrants) -> None:
        try:
            problem = await set_grants(self._s, self.identity, frame.grants)
        except StoreUnavailable:
            problem = "relay storage unavailable; retry"
            self._error(ErrorCode.INTERNAL, problem, frame.ref)
            return
        if problem is not None:
            self._error(ErrorCode.BAD_REQUEST, problem, frame.ref)
        else:
            self._frames.put(wire.Ok(ref=frame.ref))
