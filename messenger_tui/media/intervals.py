"""A call's interval accounting (pure): once per report interval (1 s), the figures of the
interval that ended (loss, bitrates, the histories the call pane draws) and the receiver
report to send (:mod:`messenger_tui.core.calls.report`).

No clock, lock or I/O here: the session passes the time and the counters it read, so every
figure can be checked with made-up numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from messenger_tui.core.calls.report import ReceiverReport, ReportFlags, fraction_lost
from messenger_tui.media.receive_path import us32
from messenger_tui.media.stats import HISTORY_LEN, MediaHistory


@dataclass(frozen=True, slots=True)
class Counters:
    """What the interval accounting reads of the send and receive paths at one instant."""

    frames_received: int
    highest_seq: int | None
    first_seq: int | None
    bytes_sent: int
    bytes_received: int
    captured: int
    peer_frames_played: int
    rtt_ms: float | None
    jitter_ms: float
    late: int
    jb_delay_ms: float
    jb_target_ms: float


class IntervalAccounting:
    """Per-interval figures and the receiver report. Call :meth:`begin` when the call
    starts, then :meth:`due` / :meth:`close` from the session's poll."""

    def __init__(self, report_interval_s: float) -> None:
        self.report_interval_s = report_interval_s
        self.next_report_at = 0.0
        self._interval_start = 0.0
        self._prev_highest: int | None = None
        self._prev_received = 0
        self._prev_captured = 0
        self._prev_played = 0
        self._prev_bytes_sent = 0
        self._prev_bytes_received = 0
        self.loss_percent = 0.0
        self.send_kbps = 0.0
        self.receive_kbps = 0.0
        self._jitter: deque[float] = deque(maxlen=HISTORY_LEN)
        self._loss: deque[float] = deque(maxlen=HISTORY_LEN)
        self._jb_delay: deque[float] = deque(maxlen=HISTORY_LEN)
        self._send: deque[float] = deque(maxlen=HISTORY_LEN)
        self._receive: deque[float] = deque(maxlen=HISTORY_LEN)
        self._rtt: deque[float | None] = deque(maxlen=HISTORY_LEN)

    def begin(self, now: float) -> None:
        self._interval_start = now
        self.next_report_at = now + self.report_interval_s

    def due(self, now: float) -> bool:
        return now >= self.next_report_at

    def close(
        self,
        now: float,
        c: Counters,
        *,
        muted: bool,
        peer_report: ReceiverReport | None,
        peer_report_at: float,
    ) -> ReceiverReport:
        """End the interval at ``now``: update the figures and histories, and return the
        receiver report to send. The next one is due an interval later (never in a burst
        after a stalled loop)."""
        if self._prev_highest is None and c.first_seq is not None:
            self._prev_highest = c.first_seq - 1
        self._figures(now, c)
        report = self._report(now, c, muted, peer_report, peer_report_at)
        self.next_report_at += self.report_interval_s
        if self.next_report_at <= now:  # fell behind (a stalled loop): do not burst
            self.next_report_at = now + self.report_interval_s
        return report

    def _figures(self, now: float, c: Counters) -> None:
        elapsed = max(now - self._interval_start, 1e-3)
        self._interval_start = now
        received = c.frames_received - self._prev_received
        if c.highest_seq is not None and self._prev_highest is not None:
            expected = c.highest_seq - self._prev_highest
            self.loss_percent = (
                max(0.0, (expected - received) * 100.0 / expected) if (expected > 0) else 0.0
            )
        self.send_kbps = (c.bytes_sent - self._prev_bytes_sent) * 8 / elapsed / 1000.0
        self.receive_kbps = (c.bytes_received - self._prev_bytes_received) * 8 / elapsed / 1000.0
        self._prev_bytes_sent = c.bytes_sent
        self._prev_bytes_received = c.bytes_received
        self._jitter.append(c.jitter_ms)
        self._loss.append(self.loss_percent)
        self._jb_delay.append(c.jb_delay_ms)
        self._send.append(self.send_kbps)
        self._receive.append(self.receive_kbps)
        self._rtt.append(c.rtt_ms)

    def _report(
        self,
        now: float,
        c: Counters,
        muted: bool,
        peer_report: ReceiverReport | None,
        peer_report_at: float,
    ) -> ReceiverReport:
        flags = ReportFlags.NONE
        received = c.frames_received - self._prev_received
        if received > 0:
            flags |= ReportFlags.RECEIVING
        if c.peer_frames_played != self._prev_played:
            flags |= ReportFlags.PLAYING
        if c.captured != self._prev_captured:
            flags |= ReportFlags.CAPTURING
        if muted:
            flags |= ReportFlags.MUTED
        echo_us = echo_delay_us = 0
        if peer_report is not None:
            flags |= ReportFlags.ECHO
            echo_us = peer_report.sent_us
            echo_delay_us = us32(now - peer_report_at)
        highest = 0
        fraction = 0
        if c.highest_seq is not None and self._prev_highest is not None:
            flags |= ReportFlags.HAVE_HIGHEST
            highest = c.highest_seq
            fraction = fraction_lost(c.highest_seq - self._prev_highest, received)
            self._prev_highest = c.highest_seq
        self._prev_received = c.frames_received
        self._prev_played = c.peer_frames_played
        self._prev_captured = c.captured
        return ReceiverReport(
            sent_us=us32(now),
            flags=flags,
            echo_us=echo_us,
            echo_delay_us=echo_delay_us,
            highest_sequence=highest,
            received=c.frames_received,
            fraction_lost=fraction,
            jitter_us=round(c.jitter_ms * 1000),
            jb_delay_ms=round(c.jb_delay_ms),
            jb_target_ms=round(c.jb_target_ms),
            late=c.late,
        )

    def history(self) -> MediaHistory:
        return MediaHistory(
            rtt_ms=tuple(self._rtt),
            jitter_ms=tuple(self._jitter),
            loss_percent=tuple(self._loss),
            jb_delay_ms=tuple(self._jb_delay),
            send_kbps=tuple(self._send),
            receive_kbps=tuple(self._receive),
        )
