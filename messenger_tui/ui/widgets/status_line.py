"""The status line at the bottom of the main screen: our connection to the relay (with the
countdown to the next attempt), the outbox, our name and address."""

from __future__ import annotations

import time

from textual.timer import Timer
from textual.widgets import Static

from messenger_tui.app import events as ev
from messenger_tui.ui.formatting import connection_text, short_address


def status_line(state: str, retry_in: float | None, waiting: int, name: str, address: str) -> str:
    """The status line's text."""
    conn = connection_text(state, retry_in)
    parts = [("● " if state == "connected" else "○ ") + conn]
    parts.append(f"{waiting} waiting to send" if waiting else "outbox empty")
    parts.append(f"{name}: {short_address(address, 16)}")
    return "  │  ".join(parts)


class StatusLine(Static):
    """Shows :func:`status_line`; counts down to the next connection attempt each second."""

    def __init__(self, name: str, address: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.own_name = name
        self.own_address = address
        self.conn_state = "offline"
        self.conn_error: str | None = None
        self.outbox_waiting = 0
        self._retry_deadline: float | None = None
        self._countdown: Timer | None = None

    def set_connection(self, event: ev.ConnectionChanged) -> None:
        self.conn_state = event.state
        self.conn_error = event.error
        if event.state == "reconnecting" and event.retry_in is not None:
            self._retry_deadline = time.monotonic() + event.retry_in
            if self._countdown is None:
                self._countdown = self.set_interval(1.0, self.redraw)
        else:
            self._retry_deadline = None
            if self._countdown is not None:
                self._countdown.stop()
                self._countdown = None

    @property
    def text(self) -> str:
        retry = None
        if self._retry_deadline is not None:
            retry = max(0.0, self._retry_deadline - time.monotonic())
        return status_line(
            self.conn_state, retry, self.outbox_waiting, self.own_name, self.own_address
        )

    def redraw(self) -> None:
        self.update(self.text)
        self.set_class(self.conn_state == "connected", "-connected")
        self.set_class(self.conn_state != "connected", "-disconnected")
