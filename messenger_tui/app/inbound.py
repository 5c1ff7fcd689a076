"""Inbound delivery: frames from the relay turned into stored messages, events and acks.

* Deliveries arriving together are decrypted and committed together
  (:meth:`~messenger_tui.app.receiver.Receiver.process`): a batch is cut at ``DELIVERY_BATCH``
  envelopes or at the end of the event-loop turn, and every other frame first processes the
  batch so the relay's order is kept.
* Acks go out only after the batch committed, and the acks of one burst are coalesced into
  one frame (the next loop turn). An ack lost to a drop is harmless: the envelope comes back
  and the dedupe record turns it into a silent re-ack.
* ``Drained`` flushes the acks and marks the backlog done; signals (typing, calls), presence,
  low-prekey hints and relay errors are handed to the service's callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from messenger_tui.app import events as ev
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.receiver import Receiver
from messenger_tui.app.rows import contact_model
from messenger_tui.core import wire
from messenger_tui.core.calls.group_keys import GroupCallMessage
from messenger_tui.core.calls.messages import CallMessage
from messenger_tui.core.turns import OncePerTurn
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import NotConnected, TransportError

log = logging.getLogger(__name__)

#: Deliveries decrypted and committed together at most: one commit per batch instead of one
#: per message, yet short enough (about 0.6 ms each, ~40 ms a batch) that a UI on the same
#: event loop stays responsive during a backlog (benchmarks/ui_backlog_stall.py).
DELIVERY_BATCH = 32
#: What a group message (a delivery with a fan-out header) counts for in a batch: opening one
#: costs about twice a 1:1 text (a signature check, the sender's key record read and written,
#: ~1.2 ms), so a batch of them stays as short (benchmarks/ui_group_backlog_stall.py).
GROUP_DELIVERY_COST = 2


@dataclass(frozen=True)
class InboundHooks:
    """What inbound delivery asks of the rest of the service."""

    emit: Callable[[ev.Event], None]
    wake_sender: Callable[[], None]
    refresh_prekeys: Callable[[], None]
    on_call: Callable[[bytes, CallMessage], None]
    on_relay_error: Callable[[str], None]
    on_group_call: Callable[[bytes, GroupCallMessage], None] = lambda sender, message: None


class Inbound:
    """Handles every frame the relay pushes (``RelayClient(on_frame=inbound.on_frame)``)."""

    def __init__(
        self,
        receiver: Receiver,
        client: RelayClient,
        directory: ContactDirectory,
        hooks: InboundHooks,
    ) -> None:
        self._receiver = receiver
        self._client = client
        self._directory = directory
        self._hooks = hooks
        self._deliveries: list[wire.Deliver] = []
        self._batch_cost = 0
        self._deliveries_soon = OncePerTurn(self.process_deliveries, asyncio.get_running_loop)
        self._pending_acks: list[bytes] = []
        self._ack_task: asyncio.Task[None] | None = None
        #: Set when the relay has pushed, and we have stored, everything queued for us.
        self.drained = asyncio.Event()

    async def on_frame(self, frame: wire.RelayFrame) -> None:
        hooks = self._hooks
        if isinstance(frame, wire.Deliver):
            # Deliveries arriving together are decrypted and committed together.
            self._deliveries.append(frame)
            self._batch_cost += GROUP_DELIVERY_COST if frame.header is not None else 1
            if self._batch_cost >= DELIVERY_BATCH:
                self.process_deliveries()
                # The reader would go on with the next buffered frames in this same turn;
                # let the UI (and timers) in between batches of a backlog.
                await asyncio.sleep(0)
            else:
                self._deliveries_soon.request()
            return
        self.process_deliveries()  # keep the relay's order for every other frame
        if isinstance(frame, wire.Drained):
            await self.flush_acks()
            self.drained.set()
            hooks.emit(ev.BacklogDrained())
        elif isinstance(frame, wire.SignalDeliver):
            signal_in = self._receiver.process_signal(frame)
            if signal_in is not None:
                if signal_in.event is not None:
                    hooks.emit(signal_in.event)
                if signal_in.call is not None:
                    hooks.on_call(frame.sender, signal_in.call)
                if signal_in.group_call is not None:
                    hooks.on_group_call(frame.sender, signal_in.group_call)
                if signal_in.used_prekey:
                    hooks.refresh_prekeys()
        elif isinstance(frame, wire.Presence):
            row = self._directory.by_identity(frame.identity)
            if row is not None:
                hooks.emit(ev.PresenceChanged(contact_model(row), frame.online))
        elif isinstance(frame, wire.Ok) and frame.prekeys_remaining is not None:
            hooks.refresh_prekeys()  # the relay says our one-time prekeys run low
        elif isinstance(frame, wire.Error):
            hooks.on_relay_error(f"{frame.code}: {frame.message}")
            log.warning("relay error %s: %s", frame.code, frame.message)

    def process_deliveries(self) -> None:
        """Decrypt and commit the deliveries received so far; schedule their acks."""
        frames, self._deliveries = self._deliveries, []
        self._batch_cost = 0
        if not frames:
            return
        outcome = self._receiver.process(frames)
        self._pending_acks.extend(outcome.acks)
        if self._pending_acks and (self._ack_task is None or self._ack_task.done()):
            self._ack_task = asyncio.get_running_loop().create_task(self._flush_acks_soon())
        for event in outcome.events:
            self._hooks.emit(event)
        if outcome.queued_receipts or outcome.new_session:
            self._hooks.wake_sender()
        if outcome.used_prekey:
            self._hooks.refresh_prekeys()

    async def _flush_acks_soon(self) -> None:
        await asyncio.sleep(0)  # coalesce the acks of one burst into one frame
        await self.flush_acks()

    async def flush_acks(self) -> None:
        if not self._pending_acks:
            return
        ids, self._pending_acks = self._pending_acks, []
        try:
            await self._client.ack(ids)
        except (NotConnected, TransportError):
            pass  # unacked envelopes are redelivered and re-acked via the dedupe record

    async def close(self) -> None:
        """Store what was delivered and flush the acks (before the connection closes)."""
        self.process_deliveries()
        await self.flush_acks()
