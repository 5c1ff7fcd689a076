"""Pacing per source address (sans-I/O): the relay's budget per attacker, not per identity.

Identities are free, source addresses are not. An :class:`AddressPacer` gives each source
address (the key from :func:`messenger_tui.relay.access_gate.address_key`: an IPv4 address or
an IPv6 /64) one schedule for one kind of work (Sends, authentication handshakes), shared by
every connection and identity coming from it.

Over its rate, the work is *delayed*, not refused: :meth:`AddressPacer.reserve` books the next
free slot and returns how long to wait for it, and the session does not read the
connection's next frame until then. The websocket's receive queue fills, the relay stops
reading the socket, and TCP pushes back on the sender: an address over its rate costs the
relay a timer per paced frame instead of the work (and the refusal) per frame. Since nothing
is refused, the order of a connection's frames is untouched.

A Send takes one slot per started :data:`SEND_SLOT_BYTES` of body (:func:`send_slots`), so
the budget bounds bytes too: at the default 200 slots/s an address stores at most 800 KiB/s
of envelopes, whatever their size.

The schedule is a GCRA (generic cell rate algorithm, the virtual-scheduling form of a token
bucket): each address has a theoretical arrival time ``tat``; work of ``n`` slots at ``now``
moves it to ``max(tat, now) + n * interval`` and may start once that is at most ``burst``
intervals ahead of the clock. A connection waiting for its turn reads nothing, so it holds at
most one reservation: the backlog of one address is bounded by its number of connections.
"""

from __future__ import annotations

import math
from typing import Final

from messenger_tui.relay.clock import Clock
from messenger_tui.relay.config import RateLimit, RelayConfig

#: Body bytes one Send slot covers; bigger envelopes take one slot per started block.
SEND_SLOT_BYTES: Final = 4096


def send_slots(body_len: int) -> int:
    """Slots a Send of ``body_len`` body bytes takes (at least one)."""
    return max(1, -(-body_len // SEND_SLOT_BYTES))


class AddressPacer:
    """One GCRA schedule per source address for one kind of work."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._interval_ms = 1000.0 / limit.rate_per_s
        self._ahead_ms = limit.burst * self._interval_ms
        self._tat: dict[bytes, float] = {}

    def reserve(self, address: bytes, max_wait_s: float = math.inf, slots: int = 1) -> float | None:
        """Book ``slots`` of ``address``'s schedule and return the seconds to wait before the
        work (0.0: go now); None, with nothing booked, when the wait would exceed
        ``max_wait_s``."""
        now = float(self._clock())
        tat = max(self._tat.get(address, now), now) + slots * self._interval_ms
        wait_ms = tat - self._ahead_ms - now
        if wait_ms > max_wait_s * 1000.0:
            return None
        self._tat[address] = tat
        return max(0.0, wait_ms) / 1000.0

    def prune(self) -> int:
        """Forget addresses whose schedule has caught up with now (a full burst again)."""
        now = float(self._clock())
        idle = [address for address, tat in self._tat.items() if tat <= now]
        for address in idle:
            del self._tat[address]
        return len(idle)

    def __len__(self) -> int:
        return len(self._tat)


def address_pacers(config: RelayConfig, clock: Clock) -> dict[str, AddressPacer | None]:
    """The ``address_send`` / ``address_auth`` pacers of ``config`` (for RateLimiters)."""
    send, auth = config.address_send_limit, config.address_auth_limit
    return {
        "address_send": None if send is None else AddressPacer(send, clock),
        "address_auth": None if auth is None else AddressPacer(auth, clock),
    }
