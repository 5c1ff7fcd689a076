"""What one relay connection still waits to hear back: the envelope submission window and the
requests matched to their answer by ``ref``.

Rules (one set per connection; the relay answers on the connection that asked):

* an envelope waits for the ``Stored`` frame carrying its message id; any number may be in
  flight; submitting an id still in flight returns the future already waiting for it;
* a multi-recipient send waits the same way for the ``StoredMulti`` carrying its message id;
* a request (FetchBundle, PublishPrekeys) waits for the ``Bundle``/``Ok`` with its ``ref``;
  a ref still in flight is refused;
* an ``Error`` whose ref is a message id fails that envelope (or multi-recipient send), one
  whose ref is an int fails that request (:class:`RelayRequestError`); any other Error is
  not an answer;
* when the connection drops, every waiter fails with :class:`NotConnected` (the caller retries
  on the next connection; sends are idempotent by message id).
"""

from __future__ import annotations

import asyncio
from typing import Any

from messenger_tui.core.wire import Bundle, Error, Ok, RelayFrame, Stored, StoredMulti
from messenger_tui.transport.errors import NotConnected, RelayRequestError


class PendingAnswers:
    """Futures awaiting the relay's answer on one connection."""

    def __init__(self) -> None:
        self.stored: dict[bytes, asyncio.Future[Stored]] = {}
        self.stored_multi: dict[bytes, asyncio.Future[StoredMulti]] = {}
        self.requests: dict[int, asyncio.Future[RelayFrame]] = {}

    def envelope(self, id: bytes) -> tuple[asyncio.Future[Stored], bool]:
        """The future for envelope ``id``, and whether it is new (then the caller sends it)."""
        existing = self.stored.get(id)
        if existing is not None:
            return existing, False
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self.stored[id] = future
        return future, True

    def multi(self, id: bytes) -> tuple[asyncio.Future[StoredMulti], bool]:
        """The future for multi-recipient send ``id``, and whether it is new (then the caller
        sends it)."""
        existing = self.stored_multi.get(id)
        if existing is not None:
            return existing, False
        future: asyncio.Future[StoredMulti] = asyncio.get_running_loop().create_future()
        self.stored_multi[id] = future
        return future, True

    def request(self, ref: int) -> asyncio.Future[RelayFrame]:
        """A future for the answer with ``ref``; ValueError if that ref is in flight."""
        if ref in self.requests:
            raise ValueError(f"a request with ref {ref} is already in flight")
        future: asyncio.Future[RelayFrame] = asyncio.get_running_loop().create_future()
        self.requests[ref] = future
        return future

    def forget(self, ref: int, future: asyncio.Future[RelayFrame]) -> None:
        """The request is over (answered, timed out or cancelled)."""
        if self.requests.get(ref) is future:
            del self.requests[ref]

    def answer(self, frame: Stored | StoredMulti | Bundle | Ok) -> bool:
        """Resolve the waiter ``frame`` answers; False if none waits for it."""
        if isinstance(frame, Stored):
            return _settle(self.stored.pop(frame.id, None), frame)
        if isinstance(frame, StoredMulti):
            return _settle(self.stored_multi.pop(frame.id, None), frame)
        return _settle(self.requests.pop(frame.ref, None), frame)

    def refuse(self, frame: Error) -> bool:
        """Fail the waiter an Error answers; False if it answers none (unsolicited)."""
        ref = frame.ref
        waiter: asyncio.Future[Any] | None = None
        if isinstance(ref, bytes):
            waiter = self.stored.pop(ref, None)
            if waiter is None:
                waiter = self.stored_multi.pop(ref, None)
        elif isinstance(ref, int) and not isinstance(ref, bool):
            waiter = self.requests.pop(ref, None)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_exception(RelayRequestError(frame.code, frame.message))
        return True

    def fail_all(self, message: str) -> None:
        """The connection dropped: every waiter fails with :class:`NotConnected`."""
        pending: list[asyncio.Future[Any]] = [
            *self.stored.values(),
            *self.stored_multi.values(),
            *self.requests.values(),
        ]
        self.stored.clear()
        self.stored_multi.clear()
        self.requests.clear()
        for future in pending:
            if not future.done():
                future.set_exception(NotConnected(message))


def _settle(waiter: asyncio.Future[Any] | None, frame: RelayFrame) -> bool:
    if waiter is None:
        return False
    if not waiter.done():
        waiter.set_result(frame)
    return True
