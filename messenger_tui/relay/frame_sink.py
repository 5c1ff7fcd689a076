"""What domain objects need from a connection: a place to put outgoing frames.

The websocket side (:class:`messenger_tui.relay.frame_queue.FrameQueue` via the session) implements
:class:`FrameSink`; unit tests implement it with a list. Domain code never awaits a send: it
puts a frame and, for ephemeral frames, accepts that it may be dropped.
"""

from __future__ import annotations

from typing import Protocol

from messenger_tui.core import wire


class FrameSink(Protocol):
    """Outgoing side of one authenticated connection."""

    def send_frame(self, frame: wire.RelayFrame) -> None:
        """Queue ``frame`` for sending (in order); never blocks, never drops."""
        ...

    def try_send_frame(self, frame: wire.RelayFrame) -> bool:
        """Queue an ephemeral ``frame`` unless the connection is congested; False = dropped."""
        ...

    def congested(self) -> bool:
        """Whether the outgoing buffer is at its bound (stop pushing until woken)."""
        ...
