"""Voice messages on screen: the inline line of a voice message (``[▶ 0:00/0:12 ▁▃▅▇▅▃]``)
and the recording line above the composer (a level meter, the time, the keys)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

BARS = "▁▂▃▄▅▆▇█"
#: Waveform cells in a voice message's line (the pointer carries up to 64 bars).
WAVE_CELLS = 24
METER_CELLS = 12
MAX_RECORDING_S = 300


def mm_ss(ms: int) -> str:
    seconds = max(0, ms) // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def wave_text(waveform: tuple[int, ...] | None, cells: int = WAVE_CELLS) -> str:
    """The waveform's levels 0..7 as block characters, resampled to at most ``cells``."""
    if not waveform:
        return ""
    n = min(cells, len(waveform))
    out = []
    for i in range(n):
        part = waveform[i * len(waveform) // n : (i + 1) * len(waveform) // n] or (0,)
        out.append(BARS[max(0, min(7, max(part)))])
    return "".join(out)


def voice_label(
    duration_ms: int | None,
    waveform: tuple[int, ...] | None,
    *,
    position_ms: int = 0,
    playing: bool = False,
    speed: float = 1.0,
) -> str:
    """``[▶ 0:00/0:12 ▁▃▅▇▅▃]``; ⏸ while playing (the key pauses), and the speed when not 1x."""
    icon = "⏸" if playing else "▶"
    parts = [f"{icon} {mm_ss(position_ms)}/{mm_ss(duration_ms or 0)}"]
    wave = wave_text(waveform)
    if wave:
        parts.append(wave)
    if speed != 1.0:
        parts.append(f"{speed:g}x")
    return "[" + " ".join(parts) + "]"


def meter(level: float, cells: int = METER_CELLS) -> str:
    """A level meter for a 0..1 RMS level on a 48 dB scale (speech sits in the middle)."""
    import math

    db = 20 * math.log10(level) if level > 0 else -96.0
    share = max(0.0, min(1.0, (db + 48) / 48))
    full = round(share * cells)
    return "█" * full + "░" * (cells - full)


def recording_text(level: float, elapsed_ms: int, at_limit: bool) -> str:
    head = f"● REC {mm_ss(elapsed_ms)}/{mm_ss(MAX_RECORDING_S * 1000)}  {meter(level)}"
    if at_limit:
        return f"{head}  maximum length reached: Enter sends, Esc discards"
    return f"{head}  Enter sends, Esc cancels"


class RecordingLine(Static, can_focus=True):
    """Shown while a voice message is being recorded; it has the focus then, so Enter and
    Esc reach it (the screen does the sending: :mod:`messenger_tui.ui.screens.voice_actions`)."""

    BINDINGS = [
        Binding("enter", "screen.send_voice", "Send voice", id="voice.send",
                tooltip="Send the voice message being recorded"),
        Binding("escape", "screen.cancel_voice", "Cancel", id="voice.cancel",
                tooltip="Stop recording and discard it"),
    ]  # fmt: skip

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self.display = False

    def show_state(self, level: float, elapsed_ms: int, at_limit: bool) -> None:
        self.display = True
        self.update(Text(recording_text(level, elapsed_ms, at_limit), no_wrap=True))

    def hide(self) -> None:
        self.display = False
        self.update("")
