"""Receiver reports: what each side of a call tells the other about the audio it gets.

About once a second each media session seals one report on the *control stream* of its
sending direction (:data:`~messenger_tui.core.crypto.media_frame.FLAG_CONTROL`, payload type
``REPORT``): its own sequence numbers and nonces, so reports neither reuse an audio nonce nor
leave holes in the audio numbering. The report feeds the peer's call statistics, its encoder's
packet-loss hint, its "peer receiving / peer playing" health flags and, with an RTCP-style echo
(RFC 3550 section 6.4.1, LSR/DLSR), its round-trip time:

    A sends a report stamped ``sent_us`` (A's clock). B keeps it and its arrival time; B's next
    report echoes ``echo_us = sent_us`` and ``echo_delay_us`` = how long B held it. When that
    report reaches A at ``now``: ``rtt = now - echo_us - echo_delay_us`` (modulo 2**32 us).
    Only differences of one side's own clock are used, so the two clocks need not agree.

Layout (35 bytes, big-endian, fixed size so reports are all alike on the wire)::

    0  version          u8   = 1
    1  flags            u8   bit 0 RECEIVING: audio arrived from the peer since the last report
                             bit 1 PLAYING: the sink played the peer's audio since the last one
                             bit 2 CAPTURING: our source delivered frames since the last one
                             bit 3 MUTED: our microphone is muted (we send encoded silence)
                             bit 4 ECHO: echo_us/echo_delay_us are valid
                             bit 5 HAVE_HIGHEST: highest_sequence is valid
    2  sent_us          u32  sender's monotonic clock, microseconds (wraps every 71 min)
    6  echo_us          u32  sent_us of the last report received from the peer
   10  echo_delay_us    u32  time from that report's arrival to this report's sending
   14  highest_sequence u32  highest audio sequence number received from the peer
   18  received         u32  audio frames received from the peer (authentic, distinct; wraps)
   22  fraction_lost    u8   loss since the last report, in 1/256 (RFC 3550 style)
   23  jitter_us        u32  RFC 3550 interarrival jitter of the peer's audio
   27  jb_delay_ms      u16  the jitter buffer's current delay
   29  jb_target_ms     u16  its target delay
   31  late             u32  frames that arrived too late to play (cumulative; wraps)

Pure data: the media session decides what to put in and what to make of it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from messenger_tui.core.errors import CoreError

REPORT_VERSION: Final = 1
_LAYOUT: Final = struct.Struct(">BBIIIIIBIHHI")
#: Size of an encoded report.
REPORT_LEN: Final = _LAYOUT.size
_U32: Final = 0xFFFFFFFF
_U16: Final = 0xFFFF


class MalformedReport(CoreError, ValueError):
    """Bytes that are not a report of this version (only a buggy authenticated peer sends one)."""


class ReportFlags(IntFlag):
    NONE = 0
    RECEIVING = 0x01
    PLAYING = 0x02
    CAPTURING = 0x04
    MUTED = 0x08
    ECHO = 0x10
    HAVE_HIGHEST = 0x20


_KNOWN: Final = 0x3F


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """One report. Times in microseconds of the *sender's* clock (``echo_us`` is the peer's)."""

    sent_us: int
    flags: ReportFlags = ReportFlags.NONE
    echo_us: int = 0
    echo_delay_us: int = 0
    highest_sequence: int = 0
    received: int = 0
    #: Loss since the previous report, in 1/256 (0-255).
    fraction_lost: int = 0
    jitter_us: int = 0
    jb_delay_ms: int = 0
    jb_target_ms: int = 0
    late: int = 0

    @property
    def loss_percent(self) -> float:
        return self.fraction_lost * 100.0 / 256.0

    def has(self, flag: ReportFlags) -> bool:
        return bool(self.flags & flag)

    def encode(self) -> bytes:
        """The 35 bytes. Counters wrap; delays and jitter saturate."""
        return _LAYOUT.pack(
            REPORT_VERSION,
            int(self.flags) & _KNOWN,
            self.sent_us & _U32,
            self.echo_us & _U32,
            min(max(self.echo_delay_us, 0), _U32),
            self.highest_sequence & _U32,
            self.received & _U32,
            min(max(self.fraction_lost, 0), 255),
            min(max(self.jitter_us, 0), _U32),
            min(max(self.jb_delay_ms, 0), _U16),
            min(max(self.jb_target_ms, 0), _U16),
            self.late & _U32,
        )

    @classmethod
    def decode(cls, data: bytes) -> ReceiverReport:
        """Parse one report; raises :class:`MalformedReport`."""
        if len(data) != REPORT_LEN:
            raise MalformedReport(f"a report is {REPORT_LEN} bytes, not {len(data)}")
        (version, flags, sent, echo, echo_delay, highest, received, fraction, jitter, jb_delay,
         jb_target, late) = _LAYOUT.unpack(data)  # fmt: skip
        if version != REPORT_VERSION:
            raise MalformedReport(f"unknown report version {version}")
        if flags & ~_KNOWN:
            raise MalformedReport("reserved report flags set")
        return cls(
            sent, ReportFlags(flags), echo, echo_delay, highest, received, fraction, jitter,
            jb_delay, jb_target, late,
        )  # fmt: skip


def round_trip_us(report: ReceiverReport, now_us: int) -> int | None:
    """Round-trip time from a report's echo, arriving at ``now_us`` (our clock, the same one
    that stamped the echoed report's ``sent_us``). ``None`` without an echo or when the result
    is implausible (negative, or over 60 s: a stale or mangled echo)."""
    if not report.has(ReportFlags.ECHO):
        return None
    rtt = (now_us - report.echo_us - report.echo_delay_us) & _U32
    if rtt > 60_000_000:
        return None
    return rtt


def fraction_lost(expected: int, received: int) -> int:
    """RFC 3550 fraction lost over an interval, in 1/256 (0 when nothing was expected or more
    arrived than expected, e.g. duplicates or reordering across the interval boundary)."""
    lost = expected - received
    if expected <= 0 or lost <= 0:
        return 0
    return min((lost << 8) // expected, 255)
