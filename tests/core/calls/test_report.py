"""Receiver reports: byte layout, parsing, round-trip time from the echo, fraction lost."""

from __future__ import annotations

import pytest

from messenger_tui.core.calls.report import (
    REPORT_LEN,
    MalformedReport,
    ReceiverReport,
    ReportFlags,
    fraction_lost,
    round_trip_us,
)
from messenger_tui.core.crypto.media_frame import MAX_MEDIA_PAYLOAD

FLAGS = ReportFlags.RECEIVING | ReportFlags.PLAYING | ReportFlags.ECHO | ReportFlags.HAVE_HIGHEST
REPORT = ReceiverReport(
    sent_us=0x01020304,
    flags=FLAGS,
    echo_us=0x0A0B0C0D,
    echo_delay_us=250_000,
    highest_sequence=1234,
    received=1200,
    fraction_lost=13,
    jitter_us=9500,
    jb_delay_ms=48,
    jb_target_ms=52,
    late=3,
)
# Frozen layout (big-endian): version, flags, sent, echo, echo delay, highest, received,
# fraction lost, jitter, jb delay, jb target, late.
KNOWN = bytes.fromhex(
    "01" "33" "01020304" "0a0b0c0d" "0003d090" "000004d2" "000004b0" "0d" "0000251c"
    "0030" "0034" "00000003"
)  # fmt: skip


def test_known_answer_and_roundtrip() -> None:
    assert REPORT_LEN == 35 < MAX_MEDIA_PAYLOAD
    assert REPORT.encode() == KNOWN
    assert ReceiverReport.decode(KNOWN) == REPORT
    assert REPORT.loss_percent == pytest.approx(5.078, abs=0.001)
    assert REPORT.has(ReportFlags.PLAYING) and not REPORT.has(ReportFlags.MUTED)


def test_counters_wrap_and_gauges_saturate() -> None:
    report = ReceiverReport(sent_us=2**32 + 5, received=2**32 + 1, jb_delay_ms=70_000,
                            fraction_lost=300, echo_delay_us=-4)  # fmt: skip
    back = ReceiverReport.decode(report.encode())
    assert (back.sent_us, back.received, back.jb_delay_ms) == (5, 1, 0xFFFF)
    assert back.fraction_lost == 255 and back.echo_delay_us == 0


@pytest.mark.parametrize(
    "data",
    [b"", KNOWN[:-1], KNOWN + b"\x00", b"\x02" + KNOWN[1:], KNOWN[:1] + b"\x40" + KNOWN[2:]],
)
def test_malformed_reports_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedReport):
        ReceiverReport.decode(data)


def test_round_trip_time_from_the_echo_across_the_clock_wrap() -> None:
    # we sent at 2**32 - 1000 us; the peer held it 250 ms; it comes back 80 ms later
    sent = 2**32 - 1000
    echo = ReceiverReport(sent_us=0, flags=ReportFlags.ECHO, echo_us=sent, echo_delay_us=250_000)
    now = (sent + 250_000 + 80_000) & 0xFFFFFFFF
    assert round_trip_us(echo, now) == 80_000
    assert round_trip_us(ReceiverReport(sent_us=0, echo_us=sent), now) is None  # no ECHO flag
    assert round_trip_us(echo, sent) is None  # negative: a stale or mangled echo


def test_fraction_lost() -> None:
    assert fraction_lost(50, 50) == 0
    assert fraction_lost(50, 45) == (5 << 8) // 50
    assert fraction_lost(50, 0) == 255
    assert fraction_lost(0, 0) == 0 and fraction_lost(50, 52) == 0
