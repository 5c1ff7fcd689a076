"""What the client can ask of the relay over its current connection: queue a frame, submit
an envelope (answered by ``Stored``) or one body to many recipients (answered by
``StoredMulti``), make a ``ref``-matched request (FetchBundle,
PublishPrekeys), ack, subscribe to presence, forward a signal.

:class:`RelayRequests` is the request side of
:class:`~messenger_tui.transport.client.RelayClient`, which keeps the connection (its
``_link``) up; the waiting itself is per connection
(:class:`~messenger_tui.transport.pending_answers.PendingAnswers`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from messenger_tui.core.wire import (
    KEY_LEN,
    MAX_FRAME,
    MAX_MULTI_HEADER,
    MAX_MULTI_RECIPIENTS,
    MESSAGE_ID_LEN,
    Ack,
    Auth,
    Bundle,
    ClientFrame,
    FetchBundle,
    MultiRecipient,
    Ok,
    PublishPrekeys,
    RelayFrame,
    Send,
    SendMulti,
    Signal,
    Stored,
    StoredMulti,
    Subscribe,
    encode,
)
from messenger_tui.transport.errors import NotConnected, RelayProtocolError, RequestTimeout
from messenger_tui.transport.relay_connection import RelayConnection, frame_tag
from messenger_tui.transport.urls import RelayEndpoint

#: Largest number of ids in one Ack frame (16-byte ids stay far below MAX_FRAME).
ACK_CHUNK = 4096


class RelayRequests:
    """Requests over the current connection (``_link``, kept by the subclass)."""

    endpoint: RelayEndpoint

    def __init__(self) -> None:
        self._link: RelayConnection | None = None
        self._refs = itertools.count(1)
        #: Identities whose presence we follow: sent again on every new connection.
        self._subscription: list[bytes] | None = None

    @property
    def pending_envelopes(self) -> int:
        """Envelopes submitted on the current connection that await their Stored frame."""
        return len(self._link.pending.stored) if self._link is not None else 0

    @property
    def outbound_queued(self) -> int:
        """Encoded frames waiting to be written to the socket."""
        return len(self._link.outq) if self._link is not None else 0

    async def send(self, frame: ClientFrame) -> None:
        """Queue ``frame`` on the current connection (written in call order).

        Raises :class:`NotConnected` without an authenticated connection. A frame queued
        just before a drop is lost silently: use it for frames whose loss is harmless or
        retried anyway (Ack, Subscribe, Signal); use :meth:`submit_envelope` and
        :meth:`request` when the answer matters."""
        if isinstance(frame, Auth):
            raise ValueError("Auth frames are sent by the client itself during connect")
        self._require_link().enqueue(encode(frame))

    def submit_envelope(
        self, id: bytes, to: bytes, body: bytes, access: bytes | None = None
    ) -> asyncio.Future[Stored]:
        """Send an envelope; the returned future resolves with the relay's Stored frame.

        The future fails with :class:`RelayRequestError` if the relay refuses it (an Error
        frame whose ref is ``id``) and with :class:`NotConnected` if the connection drops
        first; then keep the envelope and submit it again after reconnecting (the relay
        dedupes by id). Await the future or add a done callback. Raises NotConnected at
        once when offline, ValueError for a bad id/recipient length or an oversized body.
        Submitting an id that is still in flight returns the existing future. Any number
        of envelopes may be in flight at once. ``access`` is the recipient's delivery secret
        when we have it (see :mod:`messenger_tui.core.delivery_access`).
        """
        link = self._require_link()
        if len(id) != MESSAGE_ID_LEN:
            raise ValueError(f"message id must be {MESSAGE_ID_LEN} bytes, got {len(id)}")
        if len(to) != KEY_LEN:
            raise ValueError(f"recipient identity must be {KEY_LEN} bytes, got {len(to)}")
        if len(body) > link.challenge.max_envelope:
            raise ValueError(
                f"envelope of {len(body)} bytes exceeds the relay's limit of "
                f"{link.challenge.max_envelope} bytes"
            )
        future, new = link.pending.envelope(id)
        if new:
            link.enqueue(encode(Send(id=id, to=to, body=body, access=access)))
        return future

    def submit_multi(
        self, id: bytes, body: bytes, recipients: Sequence[MultiRecipient]
    ) -> asyncio.Future[StoredMulti]:
        """Upload ``body`` once for every recipient (a group message; docs/protocol.md,
        "Multi-recipient send"); the future resolves with the relay's StoredMulti, which
        reports each recipient (retry the refused ones later with the same ``id``).

        Fails as :meth:`submit_envelope` does (RelayRequestError when the whole frame is
        refused, NotConnected on a drop); ValueError at once for a bad id, no or too many
        recipients, one named twice, a bad identity, an oversized header, body or frame.
        """
        link = self._require_link()
        if len(id) != MESSAGE_ID_LEN:
            raise ValueError(f"message id must be {MESSAGE_ID_LEN} bytes, got {len(id)}")
        if not 1 <= len(recipients) <= MAX_MULTI_RECIPIENTS:
            raise ValueError(f"1 to {MAX_MULTI_RECIPIENTS} recipients, got {len(recipients)}")
        if any(len(r.to) != KEY_LEN for r in recipients):
            raise ValueError(f"recipient identities must be {KEY_LEN} bytes")
        if len({r.to for r in recipients}) != len(recipients):
            raise ValueError("a recipient is named twice")
        if any(len(r.header) > MAX_MULTI_HEADER for r in recipients):
            raise ValueError(f"a recipient header is over {MAX_MULTI_HEADER} bytes")
        if len(body) > link.challenge.max_envelope:
            raise ValueError(
                f"body of {len(body)} bytes exceeds the relay's limit of "
                f"{link.challenge.max_envelope} bytes"
            )
        existing = link.pending.stored_multi.get(id)
        if existing is not None:
            return existing
        data = encode(SendMulti(id=id, body=body, to=list(recipients)))
        if len(data) > MAX_FRAME:
            raise ValueError(
                f"the send is {len(data)} bytes with its {len(recipients)} recipients, over the "
                f"frame limit of {MAX_FRAME}: send a smaller body or split the recipients"
            )
        future, _ = link.pending.multi(id)
        link.enqueue(data)
        return future

    def submit_short(
        self, id: bytes, body: bytes, cred: bytes, refs: bytes
    ) -> asyncio.Future[StoredMulti]:
        """:meth:`submit_multi` in the short fan-out form: the send credential and the
        recipients' 8-byte references (core/groups/send_credential.py); the answer names each
        recipient by its reference, ``not_granted`` for the ones to send in the long form."""
        link = self._require_link()
        if len(id) != MESSAGE_ID_LEN:
            raise ValueError(f"message id must be {MESSAGE_ID_LEN} bytes, got {len(id)}")
        data = encode(SendMulti(id=id, body=body, to=[], cred=cred, refs=refs))
        if len(data) > MAX_FRAME:
            raise ValueError(f"the send is {len(data)} bytes, over the frame limit of {MAX_FRAME}")
        future, _ = link.pending.multi(id)
        link.enqueue(data)
        return future

    async def request(self, frame: Any, timeout: float = 10.0) -> RelayFrame:
        """Send a frame that carries ``ref`` (FetchBundle, PublishPrekeys) and return the
        relay's answer (Bundle or Ok) with the same ref.

        A ``ref`` of 0 is replaced by a fresh one. Raises :class:`RelayRequestError` for an
        Error answer, :class:`RequestTimeout` after ``timeout`` seconds (the request may
        still take effect), :class:`NotConnected` when offline or on a drop."""
        link = self._require_link()
        ref = frame.ref
        if ref == 0:
            ref = next(self._refs)
            frame = msgspec.structs.replace(frame, ref=ref)
        future = link.pending.request(ref)
        link.enqueue(encode(frame))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(
                f"relay {self.endpoint.display} did not answer {type(frame).__name__} "
                f"within {timeout:g} s"
            ) from None
        finally:
            link.pending.forget(ref, future)

    async def fetch_bundle(self, identity: bytes, timeout: float = 10.0) -> Bundle:
        """Fetch ``identity``'s prekey bundle (consumes one one-time prekey on the relay).

        The caller MUST verify ``spk_sig`` before using it. Raises RelayRequestError with
        code ``not_found`` when the identity published none, plus :meth:`request`'s errors."""
        answer = await self.request(FetchBundle(ref=0, identity=identity), timeout)
        if not isinstance(answer, Bundle):
            raise RelayProtocolError(f"relay answered fetch_bundle with {frame_tag(answer)}")
        if answer.identity != identity:
            raise RelayProtocolError("relay answered fetch_bundle with another identity's bundle")
        return answer

    async def publish_prekeys(self, frame: PublishPrekeys, timeout: float = 10.0) -> Ok:
        """Publish the signed prekey and one-time prekeys; returns the relay's Ok (with
        ``prekeys_remaining``). Raises like :meth:`request`."""
        answer = await self.request(frame, timeout)
        if not isinstance(answer, Ok):
            raise RelayProtocolError(f"relay answered publish_prekeys with {frame_tag(answer)}")
        return answer

    async def ack(self, ids: list[bytes]) -> None:
        """Delete delivered envelopes from the mailbox. Call only after they are durably
        stored; an ack lost to a drop just means a redelivery (dedupe by id)."""
        link = self._require_link()
        for start in range(0, len(ids), ACK_CHUNK):
            link.enqueue(encode(Ack(ids=list(ids[start : start + ACK_CHUNK]))))

    async def subscribe(self, identities: Iterable[bytes]) -> None:
        """Receive Presence for these identities (replaces the previous set).

        The set is remembered and sent again after every reconnect, so this never raises
        NotConnected: offline, it is sent on the next connection."""
        self._subscription = list(identities)
        link = self._link
        if link is not None and link.alive:
            link.enqueue(encode(Subscribe(identities=self._subscription)))

    async def signal(self, to: bytes, body: bytes) -> None:
        """Forward an ephemeral body (typing, ringing) to ``to`` if online; never stored.
        Raises NotConnected when offline."""
        await self.send(Signal(to=to, body=body))

    def _require_link(self) -> RelayConnection:
        link = self._link
        if link is None or not link.alive:
            raise NotConnected(f"not connected to relay {self.endpoint.display}")
        return link
