"""The call pane: who, state and timer, mute, level meters, live statistics with sparklines,
and the health line that answers "why can't they hear me".

It sits above the conversation while a call is live (ringing, connecting, active) and shows
the end reason for a few seconds after. It is fed by the service's ``CallChanged`` and
``CallStatsChanged`` events (:meth:`CallPane.show_call`, :meth:`CallPane.show_stats`); its only
timer redraws the call clock once a second.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from messenger_tui.app.models import CallStats, CallView

_BARS = "▁▂▃▄▅▆▇█"
#: How long the pane stays up after a call ended.
ENDED_SHOW_S = 4.0

STATE_TEXT = {
    "outgoing_ringing": "calling…",
    "incoming_ringing": "incoming call",
    "connecting": "connecting…",
    "active": "in call",
    "ended": "call ended",
    "idle": "",
}

END_TEXT = {
    "hung_up": "hung up",
    "declined": "declined",
    "busy": "busy",
    "no_answer": "no answer",
    "failed": "failed",
    "connection_lost": "connection lost",
}


def sparkline(values: tuple[float, ...], width: int = 12) -> str:
    """The last ``width`` values as block characters scaled to their own maximum."""
    recent = values[-width:]
    if not recent:
        return ""
    top = max(recent)
    if top <= 0:
        return _BARS[0] * len(recent)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in recent)


def meter(level: float, width: int = 10) -> str:
    """A level 0..1 as a bar of ``width`` cells (perceptual: square root of the RMS level)."""
    level = min(1.0, max(0.0, level)) ** 0.5
    filled = round(level * width)
    return "█" * filled + "░" * (width - filled)


def clock(ms: int) -> str:
    seconds = max(0, ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def health_line(stats: CallStats | None, muted: bool) -> Text:
    """capturing → sending → peer receiving → peer playing, each ✓ or ✗; the first ✗ is the
    place to look when the other side hears nothing."""
    steps = [
        ("capturing", stats.capturing if stats else False),
        ("sending", stats.sending if stats else False),
        ("peer receiving", stats.peer_receiving if stats else False),
        ("peer playing", stats.peer_playing if stats else False),
    ]
    line = Text()
    for i, (label, ok) in enumerate(steps):
        if i:
            line.append(" → ", style="dim")
        line.append(f"{label} ")
        line.append("✓" if ok else "✗", style="green" if ok else "bold red")
    if muted:
        line.append("  (muted: they hear silence)", style="yellow")
    return line


def call_summary(call: CallView, now_ms: int) -> Text:
    name = call.contact.name if call.contact else "unknown"
    text = Text()
    text.append("Call ", style="bold")
    text.append(name, style="bold")
    state = STATE_TEXT.get(call.state, call.state)
    if call.state == "outgoing_ringing" and call.peer_ringing:
        state = "ringing…"
    if call.state == "ended":
        state = f"call ended: {END_TEXT.get(call.end_reason or '', call.end_reason or '')}"
    text.append(f" · {state}")
    if call.state == "active" and call.active_ms is not None:
        text.append(f" · {clock(now_ms - call.active_ms)}")
    if call.link == "reconnecting":
        text.append(" · reconnecting…", style="bold yellow")
    if call.muted:
        text.append(" · muted", style="bold yellow")
    if call.problem:
        text.append(f"\n{call.problem}", style="red")
    return text


def stats_lines(stats: CallStats) -> Text:
    text = Text()
    text.append("mic ")
    text.append(meter(stats.mic_level), style="green")
    text.append("  them ")
    text.append(meter(stats.remote_level), style="cyan")
    text.append("\n")
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "?"
    text.append(f"rtt {rtt} {sparkline(stats.rtt_history, 8)}  ")
    text.append(f"jitter {stats.jitter_ms:.0f} ms {sparkline(stats.jitter_history, 8)}  ")
    text.append(f"loss {stats.loss_percent:.1f}% {sparkline(stats.loss_history, 8)}\n")
    text.append(
        f"buffer {stats.buffer_delay_ms:.0f} ms {sparkline(stats.delay_history, 8)}  "
        f"late {stats.late_frames}  concealed {stats.concealed_frames}  "
        f"{stats.send_kbps:.0f}↑ {stats.receive_kbps:.0f}↓ kb/s "
        f"{sparkline(stats.bitrate_history, 8)}"
    )
    return text


class CallPane(Static):
    """Hidden unless a call is live (or just ended)."""

    DEFAULT_CSS = """
    CallPane {
        display: none;
        height: auto;
        padding: 0 1;
        background: $boost;
        border-bottom: hkey $accent;
    }
    CallPane.-shown { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.call: CallView | None = None
        self.stats: CallStats | None = None
        self._tick: Timer | None = None
        self._hide: Timer | None = None

    def show_call(self, call: CallView) -> None:
        if self.call is None or self.call.call_id != call.call_id:
            self.stats = None
        self.call = call
        if self._hide is not None:
            self._hide.stop()
            self._hide = None
        if call.live:
            self.add_class("-shown")
            if self._tick is None:
                self._tick = self.set_interval(1.0, self._redraw)
        else:
            if self._tick is not None:
                self._tick.stop()
                self._tick = None
            self._hide = self.set_timer(ENDED_SHOW_S, self._hide_now)
            self.add_class("-shown")
        self._redraw()

    def show_stats(self, stats: CallStats) -> None:
        self.stats = stats
        self._redraw()

    def _hide_now(self) -> None:
        self._hide = None
        if self.call is None or not self.call.live:
            self.remove_class("-shown")

    def _redraw(self) -> None:
        call = self.call
        if call is None:
            self.update("")
            return
        text = call_summary(call, int(time.time() * 1000))
        if call.state in ("connecting", "active"):
            text.append("\n")
            if self.stats is not None:
                text.append_text(stats_lines(self.stats))
                text.append("\n")
            text.append_text(health_line(self.stats, call.muted))
        self.update(text)
