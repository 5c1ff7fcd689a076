"""Pushing one identity's mailbox to its live connection, oldest first, with a window.

One :class:`DeliveryPusher` per authenticated connection. The session creates it, runs
:meth:`DeliveryPusher.run` as a task after sending AuthOk, forwards every Ack to
:meth:`acked`, newly stored envelopes to :meth:`offer`, and calls :meth:`wake` when the
connection's outgoing buffer has room again. The pusher:

* starts at the oldest envelope (cursor 0), so a new connection gets every unacked envelope
  again, in order;
* keeps at most ``window`` deliveries unacknowledged and stops while the sink is congested;
* pushes an envelope stored while it is caught up straight away from memory (no database
  read, no task switch), and falls back to reading the store when it lags behind;
* with several relay nodes on one store (``shared``), pushes an offered envelope from memory
  only when its seq directly follows the last one seen here: a gap means another node
  committed envelopes in between whose wake-up has not arrived yet, so the pusher reads the
  store after its cursor instead (pushing the later one first would move the cursor past
  them, and the re-read on their wake-up would start after them: never delivered), and
  ignores one at or before the last seen (read from the store before its wake-up came);
* sends ``Drained`` after the initial backlog (always, even when empty) and each later time it
  catches up after having pushed something: for live envelopes, when the caller signals the
  end of a commit batch with :meth:`offers_done` (once per batch, in the same write).
"""

from __future__ import annotations

from collections import deque

from messenger_tui.core import wire
from messenger_tui.relay.clock import Clock
from messenger_tui.relay.frame_sink import FrameSink
from messenger_tui.relay.store import MailboxStore, StoredEnvelope
from messenger_tui.relay.wakeup import Wakeup


class DeliveryPusher:
    """Windowed, ordered delivery of one mailbox to one connection."""

    def __init__(
        self,
        identity: bytes,
        store: MailboxStore,
        sink: FrameSink,
        *,
        window: int,
        clock: Clock,
        shared: bool = False,
    ) -> None:
        self.identity = identity
        self._shared = shared  # other relay nodes commit to this mailbox too
        self._store = store
        self._sink = sink
        self._window = window
        self._clock = clock
        self._cursor = 0  # highest seq pushed on this connection
        self._inflight: dict[bytes, int] = {}  # msg_id -> seq, pushed but not acked
        self._live: deque[StoredEnvelope] = deque()
        self._caught_up = False  # everything stored up to _cursor/_live has been seen
        self._fetching = False
        self._missed = False  # an envelope was stored during a fetch: fetch again
        self._drained_once = False
        self._pushed_since_drained = 0
        self._wake = Wakeup()
        #: Deliveries pushed on this connection so far.
        self.pushed = 0

    @property
    def in_flight(self) -> int:
        """Deliveries pushed and not yet acknowledged."""
        return len(self._inflight)

    def offer(self, envelope: StoredEnvelope) -> None:
        """A new envelope for this identity was committed; push it now or when there is room.
        Several nodes: an envelope at or before the last one seen here was read from the
        store already (its wake-up came late) and is ignored."""
        if self._shared and envelope.seq <= (self._live[-1].seq if self._live else self._cursor):
            return
        if self._caught_up and not self._fetching and not self._follows(envelope):
            # Another node's envelopes may lie between (see the module docstring).
            self._caught_up = False
            self._live.clear()
        elif self._caught_up and not self._fetching:
            if not self._live and len(self._inflight) < self._window and not self._sink.congested():
                self._push(envelope)
                return
            if len(self._live) >= self._window:
                # Too far behind to keep them in memory: read them from the store later.
                self._caught_up = False
                self._live.clear()
            else:
                self._live.append(envelope)
        else:
            self._missed = True
        self._wake.set()

    def _follows(self, envelope: StoredEnvelope) -> bool:
        """Whether nothing can have been committed between the last envelope seen here and
        ``envelope`` (always true on one node: every commit is offered, in seq order)."""
        if not self._shared:
            return True
        last = self._live[-1].seq if self._live else self._cursor
        return envelope.seq == last + 1

    def offers_done(self) -> None:
        """The commit batch that produced the last offers is complete: send Drained if the
        pusher is caught up after pushing something."""
        self._send_drained_if_caught_up()

    def acked(self, msg_ids: list[bytes]) -> None:
        """The client acknowledged these ids: free their window slots."""
        inflight = self._inflight
        for msg_id in msg_ids:
            inflight.pop(msg_id, None)
        if self._live or not self._caught_up:
            self._wake.set()

    def reread(self) -> None:
        """Envelopes may have been committed that were never offered (another relay node
        stored them): read the mailbox from the store again, after the cursor."""
        if self._fetching:
            self._missed = True
        else:
            self._caught_up = False
            self._live.clear()
        self._wake.set()

    def wake(self) -> None:
        """Re-check for work (call when the sink stops being congested)."""
        self._wake.set()

    async def run(self) -> None:
        """Push until cancelled. Store errors propagate: the caller closes the connection."""
        while True:
            self._wake.clear()
            await self._push_available()
            self._send_drained_if_caught_up()
            await self._wake.wait()

    def _send_drained_if_caught_up(self) -> None:
        if not self._caught_up or self._live:
            return
        if self._drained_once and not self._pushed_since_drained:
            return
        self._sink.send_frame(wire.Drained(pushed=self.pushed))
        self._drained_once = True
        self._pushed_since_drained = 0

    async def _push_available(self) -> None:
        while len(self._inflight) < self._window and not self._sink.congested():
            if self._caught_up:
                if not self._live:
                    return
                envelope = self._live.popleft()
                if envelope.seq > self._cursor:
                    self._push(envelope)
                continue
            room = self._window - len(self._inflight)
            self._fetching = True
            self._missed = False
            try:
                # One row more than there is room for tells "this is the end" apart from
                # "exactly a window full", so Drained is not held back until the next ack.
                rows = await self._store.fetch_after(
                    self.identity, self._cursor, room + 1, now_ms=self._clock()
                )
            finally:
                self._fetching = False
            for envelope in rows[:room]:
                if envelope.seq > self._cursor:
                    self._push(envelope)
            if len(rows) <= room and not self._missed:
                self._caught_up = True

    def _push(self, envelope: StoredEnvelope) -> None:
        self._cursor = envelope.seq
        self._inflight[envelope.msg_id] = envelope.seq
        self.pushed += 1
        self._pushed_since_drained += 1
        self._sink.send_frame(
            wire.Deliver(
                id=envelope.msg_id,
                sender=envelope.sender,
                body=envelope.body,
                stored_at_ms=envelope.stored_at_ms,
                header=envelope.header,
            )
        )
