"""The call pane: who, state and timer, mute, level meters, live statistics with sparklines,
and the health line that answers "why can't they hear me".

It sits above the conversation while a call is live (ringing, connecting, active) and shows
the end reason for a few seconds after. It is fed by the service's ``CallChanged`` and
``CallStatsChanged`` events (:meth:`CallPane.show_call`, :meth:`CallPane.show_stats`); its only
timer redraws the call clock once a second.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from messenger_tui.app.models import CallStats, CallView
from messenger_tui.ui import formatting

_BARS = "▁▂▃▄▅▆▇█"
#: Seconds of history a sparkline shows (one sample a second).
SPARK_WIDTH = 8
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


def now_ms() -> int:
    """Epoch milliseconds of the UI's wall clock (frozen by the snapshot tests)."""
    return int(formatting.wall_clock().timestamp() * 1000)


def clock(ms: int) -> str:
    seconds = max(0, ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def pack(cells: list[Text], width: int, separator: str = "  ") -> Text:
    """Lay ``cells`` out left to right, starting a new line where the next would not fit in
    ``width`` (a cell is never split)."""
    out = Text()
    used = 0
    for cell in cells:
        if used and used + len(separator) + cell.cell_len > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(separator)
            used += len(separator)
        out.append_text(cell)
        used += cell.cell_len
    return out


def health_line(stats: CallStats | None, muted: bool, width: int = 200) -> Text:
    """capturing → sending → peer receiving → peer playing, each ✓ or ✗; the first ✗ is the
    place to look when the other side hears nothing. Wraps between steps to fit ``width``."""
    steps = [
        ("capturing", stats.capturing if stats else False),
        ("sending", stats.sending if stats else False),
        ("peer receiving", stats.peer_receiving if stats else False),
        ("peer playing", stats.peer_playing if stats else False),
    ]
    cells: list[Text] = []
    for i, (label, ok) in enumerate(steps):
        cell = Text(f"{label} ")
        cell.append("✓" if ok else "✗", style="green" if ok else "bold red")
        if i < len(steps) - 1:
            cell.append(" →", style="dim")
        cells.append(cell)
    if muted:
        cells.append(Text("(muted: they hear silence)", style="yellow"))
    if stats is not None and stats.audio_problem:
        cells.append(Text(f"⚠ {stats.audio_problem}", style="bold red"))
    return pack(cells, width, " ")


def call_summary(call: CallView, now_ms: int, talk: tuple[str, str] = ("", "")) -> Text:
    """The summary line (and the problem); ``talk``: the mic gate's state and a line about
    it (:meth:`~messenger_tui.ui.talk_keys.TalkKeys.notes`), shown while the call is up."""
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
    gate, gate_line = talk if call.live else ("", "")
    if gate:
        text.append(f" · {gate}", style="bold green" if call.talking else "yellow")
    if gate_line:
        text.append(f"\n{gate_line}", style="dim")
    if call.problem:
        text.append(f"\n{call.problem}", style="red")
    return text


def _stat(label: str, value: str, history: tuple[float, ...] | None = None) -> Text:
    cell = Text(f"{label} ", style="dim")
    cell.append(value, style="bold")
    if history:
        cell.append(" ")
        cell.append(sparkline(history, SPARK_WIDTH), style="cyan")
    return cell


def stats_lines(stats: CallStats, width: int = 200, *, muted: bool = False) -> Text:
    """The level meters, then the statistics with their sparklines, packed into ``width``.
    While ``muted`` the mic meter is empty: the other side hears silence, whatever the
    microphone picks up."""
    levels = Text("mic ", style="dim")
    if muted:
        levels.append(meter(0.0), style="dim")
        levels.append(" muted", style="yellow")
    else:
        levels.append(meter(stats.mic_level), style="green")
    levels.append("  them ", style="dim")
    levels.append(meter(stats.remote_level), style="cyan")
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "?"
    cells = [
        _stat("rtt", rtt, stats.rtt_history),
        _stat("jitter", f"{stats.jitter_ms:.0f} ms", stats.jitter_history),
        _stat("loss", f"{stats.loss_percent:.1f}%", stats.loss_history),
        _stat("buffer", f"{stats.buffer_delay_ms:.0f} ms", stats.delay_history),
        _stat("kb/s", f"{stats.send_kbps:.0f}↑ {stats.receive_kbps:.0f}↓", stats.bitrate_history),
        _stat("late", str(stats.late_frames)),
        _stat("concealed", str(stats.concealed_frames)),
    ]
    if stats.peer_loss_percent is not None:
        cells.append(_stat("their loss", f"{stats.peer_loss_percent:.1f}%"))
    text = pack([levels], width)
    text.append("\n")
    text.append_text(pack(cells, width))
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
        #: The mic gate's notes for a call (TalkKeys.notes), set by the app.
        self.talk_notes: Callable[[bool], tuple[str, str]] | None = None

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

    def refresh_call(self) -> None:
        """Draw again (the mic gate changed)."""
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
        talk = self.talk_notes(call.talking) if self.talk_notes is not None else ("", "")
        text = call_summary(call, now_ms(), talk)
        width = self.content_size.width or 60
        if call.state in ("connecting", "active"):
            text.append("\n")
            if self.stats is not None:
                silent = call.muted or not call.talking
                text.append_text(stats_lines(self.stats, width, muted=silent))
                text.append("\n")
            text.append_text(health_line(self.stats, call.muted, width))
        self.update(text)

    def on_resize(self) -> None:
        self._redraw()

    @property
    def text(self) -> str:
        """What the pane shows, as plain text (for tests)."""
        return str(self.render())
