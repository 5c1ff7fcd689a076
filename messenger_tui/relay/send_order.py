"""The order rule of one connection's sends: nothing overtakes a refused envelope.

A client pipelines its sends. When the relay refuses one for now (``rate_limited``,
``mailbox_full``, ``internal``: the client keeps it and resends it later), the sends pipelined
behind it must not be stored before it, or the recipient would get them first. So after such
a refusal the relay refuses every later send on the connection with the same code, and
remembers the refused ids; the gate opens again when the client resends one of them (its
retry, which starts from the oldest unsent envelope). Sans-I/O: the session asks
:meth:`SendGate.admit` for each Send in the order they arrive and reports refusals with
:meth:`SendGate.refused`.

Rules (state -> event -> state):

- open   -> admit(id)            -> open,   admit
- open   -> refused(id, code)    -> closed(code, {id})
- closed -> admit(id in refused) -> open,   admit (a resend: the client's retry)
- closed -> admit(other id)      -> closed, refuse with ``code`` (the id is remembered)
- closed -> refused(id, code)    -> closed (the id is remembered; the first code stays)

At most :data:`MAX_REMEMBERED` ids are remembered (beyond that an id is still refused, and the
client's retry opens the gate with an earlier one), so a closed gate costs a bounded amount
of memory per connection; an open gate holds nothing.
"""

from __future__ import annotations

from typing import Final

#: Refused ids kept per connection while the gate is closed (16 B each, plus set overhead).
MAX_REMEMBERED: Final = 1024


class SendGate:
    """See the module docstring."""

    __slots__ = ("_code", "_refused")

    def __init__(self) -> None:
        self._code: str | None = None
        self._refused: set[bytes] = set()

    @property
    def closed(self) -> bool:
        return self._code is not None

    def admit(self, msg_id: bytes) -> str | None:
        """None: process this Send. Otherwise the error code to refuse it with."""
        code = self._code
        if code is None:
            return None
        if msg_id in self._refused:
            self._code = None
            self._refused = set()
            return None
        self._remember(msg_id)
        return code

    def refused(self, msg_id: bytes, code: str) -> None:
        """A Send was refused for now with ``code``: close the gate behind it."""
        if self._code is None:
            self._code = code
            self._refused = {msg_id}
        else:
            self._remember(msg_id)

    def _remember(self, msg_id: bytes) -> None:
        if len(self._refused) < MAX_REMEMBERED:
            self._refused.add(msg_id)
