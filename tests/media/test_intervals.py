"""The interval accounting alone (pure): made-up counters in, figures and reports out."""

from __future__ import annotations

import dataclasses

from messenger_tui.core.calls.report import ReportFlags
from messenger_tui.media.intervals import Counters, IntervalAccounting

ZERO = Counters(
    frames_received=0,
    highest_seq=None,
    first_seq=None,
    bytes_sent=0,
    bytes_received=0,
    captured=0,
    peer_frames_played=0,
    rtt_ms=None,
    jitter_ms=0.0,
    late=0,
    jb_delay_ms=40.0,
    jb_target_ms=40.0,
)


def test_loss_bitrates_and_the_report_of_one_interval() -> None:
    acc = IntervalAccounting(1.0)
    acc.begin(10.0)
    assert not acc.due(10.99) and acc.due(11.0)
    # 50 frames expected (sequences 100..149), 45 arrived; 50 sent of 100 bytes each
    c = dataclasses.replace(
        ZERO,
        frames_received=45,
        highest_seq=149,
        first_seq=100,
        bytes_sent=5000,
        bytes_received=4500,
        captured=50,
        peer_frames_played=44,
        rtt_ms=30.0,
        jitter_ms=2.5,
    )
    report = acc.close(11.0, c, muted=True, peer_report=None, peer_report_at=0.0)
    assert acc.loss_percent == 10.0
    assert acc.send_kbps == 40.0 and acc.receive_kbps == 36.0
    assert report.highest_sequence == 149 and report.received == 45
    assert report.fraction_lost == 25  # 5 of 50, in 1/256ths
    assert report.jitter_us == 2500
    want = ReportFlags.RECEIVING | ReportFlags.PLAYING | ReportFlags.CAPTURING
    assert report.has(want | ReportFlags.MUTED | ReportFlags.HAVE_HIGHEST)
    assert not report.has(ReportFlags.ECHO)
    assert acc.next_report_at == 12.0
    history = acc.history()
    assert history.loss_percent == (10.0,) and history.rtt_ms == (30.0,)


def test_a_quiet_interval_and_a_stalled_loop() -> None:
    acc = IntervalAccounting(1.0)
    acc.begin(0.0)
    c = dataclasses.replace(ZERO, frames_received=10, highest_seq=9, first_seq=0, captured=10)
    acc.close(1.0, c, muted=False, peer_report=None, peer_report_at=0.0)
    # nothing new arrived, nothing captured; the loop stalled 5 s: no burst of reports
    report = acc.close(6.0, c, muted=False, peer_report=None, peer_report_at=0.0)
    assert not report.has(ReportFlags.RECEIVING) and not report.has(ReportFlags.CAPTURING)
    assert report.fraction_lost == 0 and acc.loss_percent == 0.0
    assert acc.next_report_at == 7.0
