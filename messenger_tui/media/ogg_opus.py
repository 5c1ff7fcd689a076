"""Ogg Opus files (RFC 7845, on the Ogg container of RFC 3533), written and read by hand
around the Opus packets of :mod:`messenger_tui.media.codec`.

One logical stream, one channel (mapping family 0). The writer puts the identification header
``OpusHead`` alone on the first page (beginning-of-stream flag), the comment header
``OpusTags`` on the second, then the audio packets, a page per second of audio at most (and
never over 255 lacing values), each page's granule position the 48 kHz sample count through
its last packet, counting the pre-skip. The last page has the end-of-stream flag and a
granule position of ``pre_skip + samples of real audio``, which trims the padding of the last
frame (RFC 7845 section 4.5). Every page carries Ogg's CRC-32 (polynomial 0x04C11DB7, not
reflected, initial value 0, no final XOR: not zlib's CRC-32), computed with our own table.

The reader takes the same files and standard ones (opusenc's): it checks every CRC, the page
sequence, the headers, and that the stream ends with an end-of-stream page, and raises
:class:`OggOpusError` with the reason otherwise. Packets spanning pages are reassembled.
Bounds: at most :data:`MAX_PACKET_BYTES` per packet and :data:`MAX_PACKETS` packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Final

#: Ogg page header: capture pattern, version, flags, granule, serial, sequence, CRC, segments.
_PAGE: Final = struct.Struct("<4sBBqIIIB")
CAPTURE: Final = b"OggS"
FLAG_CONTINUED: Final = 0x01
FLAG_BOS: Final = 0x02
FLAG_EOS: Final = 0x04
MAX_SEGMENTS: Final = 255
OPUS_RATE: Final = 48_000
#: A page is flushed once it holds this much audio (opusenc's default maximum delay).
MAX_PAGE_SAMPLES: Final = OPUS_RATE
#: An Opus packet is at most 120 ms of 1275-byte frames; generously above that.
MAX_PACKET_BYTES: Final = 64 * 1024
#: Ten hours of 20 ms packets.
MAX_PACKETS: Final = 1_800_000
VENDOR: Final = "messenger-tui"
_HEAD: Final = struct.Struct("<8sBBHIhB")
_CRC_OFFSET: Final = 22


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def ogg_crc32(data: bytes, crc: int = 0) -> int:
    """Ogg's CRC-32 of ``data`` (continuing from ``crc``)."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


class OggOpusError(ValueError):
    """A file that is not a well-formed single-stream Ogg Opus file (the reason says why)."""


def _page(flags: int, granule: int, serial: int, sequence: int, packets: list[bytes]) -> bytes:
    """One page holding whole ``packets`` (their lacing values fit in 255)."""
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    if len(lacing) > MAX_SEGMENTS:
        raise ValueError("packets do not fit in one page")
    header = _PAGE.pack(CAPTURE, 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", page, _CRC_OFFSET, ogg_crc32(bytes(page)))
    return bytes(page)


def opus_head(pre_skip: int, input_rate: int = OPUS_RATE, output_gain: int = 0) -> bytes:
    """The 19-byte identification header of a mono stream (mapping family 0)."""
    return _HEAD.pack(b"OpusHead", 1, 1, pre_skip, input_rate, output_gain, 0)


def opus_tags(vendor: str = VENDOR, comments: tuple[str, ...] = ()) -> bytes:
    """The comment header: vendor string and ``KEY=value`` comments."""
    out = bytearray(b"OpusTags")
    raw_vendor = vendor.encode("utf-8")
    out += struct.pack("<I", len(raw_vendor)) + raw_vendor + struct.pack("<I", len(comments))
    for comment in comments:
        raw = comment.encode("utf-8")
        out += struct.pack("<I", len(raw)) + raw
    return bytes(out)


class OggOpusWriter:
    """Writes a mono Ogg Opus stream to ``out``: the headers at once, then
    :meth:`write_packet` per packet, then :meth:`close` with the real audio's length."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        pre_skip: int,
        serial: int,
        comments: tuple[str, ...] = (),
    ) -> None:
        if not 0 <= pre_skip <= 0xFFFF:
            raise ValueError("pre-skip must fit 16 bits")
        self._out = out
        self._serial = serial & 0xFFFFFFFF
        self._sequence = 0
        self._granule = 0  # samples through the last packet written
        self._pending: list[bytes] = []
        self._pending_segments = 0
        self._pending_samples = 0
        self.pre_skip = pre_skip
        self.bytes_written = 0
        self.closed = False
        self._emit(FLAG_BOS, 0, [opus_head(pre_skip)])
        self._emit(0, 0, [opus_tags(VENDOR, comments)])

    def _emit(self, flags: int, granule: int, packets: list[bytes]) -> None:
        page = _page(flags, granule, self._serial, self._sequence, packets)
        self._out.write(page)
        self._sequence += 1
        self.bytes_written += len(page)

    def _flush(self, flags: int = 0, granule: int | None = None) -> None:
        self._emit(flags, self._granule if granule is None else granule, self._pending)
        self._pending, self._pending_segments, self._pending_samples = [], 0, 0

    def write_packet(self, packet: bytes, samples: int) -> None:
        """Add one Opus packet that decodes to ``samples`` samples at 48 kHz."""
        if self.closed:
            raise ValueError("the stream is closed")
        if not 0 < len(packet) <= MAX_PACKET_BYTES:
            raise ValueError(f"an Opus packet is 1-{MAX_PACKET_BYTES} bytes")
        segments = len(packet) // 255 + 1
        if self._pending and (
            self._pending_segments + segments > MAX_SEGMENTS
            or self._pending_samples >= MAX_PAGE_SAMPLES
        ):
            self._flush()
        self._pending.append(packet)
        self._pending_segments += segments
        self._pending_samples += samples
        self._granule += samples

    def close(self, audio_samples: int) -> None:
        """Write the last page (end of stream), trimming the stream to ``audio_samples``
        samples of real audio after the pre-skip."""
        if self.closed:
            return
        if not self._pending:
            raise ValueError("an Ogg Opus stream needs at least one packet")
        end = self.pre_skip + audio_samples
        if not self._granule - self._pending_samples < end <= self._granule:
            raise ValueError("the trimmed end must fall inside the last page's audio")
        self._flush(FLAG_EOS, end)
        self.closed = True


@dataclass(frozen=True, slots=True)
class OggOpusStream:
    """What a file holds: the packets and the headers' fields."""

    packets: list[bytes]
    pre_skip: int
    #: Granule position of the last page: ``pre_skip`` + samples of real audio.
    end_granule: int
    channels: int = 1
    input_rate: int = OPUS_RATE
    #: Q7.8 dB to apply to the decoded audio.
    output_gain: int = 0
    vendor: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        """Samples of real audio at 48 kHz (after the pre-skip, before the end trim)."""
        return max(0, self.end_granule - self.pre_skip)

    @property
    def duration_ms(self) -> int:
        return self.samples * 1000 // OPUS_RATE


def _pages(data: bytes) -> list[tuple[int, int, int, int, list[int], bytes]]:
    """(flags, granule, serial, sequence, lacing values, body) of every page, checked."""
    pages = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _PAGE.size:
            raise OggOpusError(f"the file ends inside a page header at byte {offset}")
        capture, version, flags, granule, serial, sequence, crc, count = _PAGE.unpack_from(
            data, offset
        )
        if capture != CAPTURE:
            raise OggOpusError(f"no Ogg page at byte {offset} (not an Ogg file, or damaged)")
        if version != 0:
            raise OggOpusError(f"Ogg version {version} at byte {offset}")
        lacing_end = offset + _PAGE.size + count
        lacing = list(data[offset + _PAGE.size : lacing_end])
        end = lacing_end + sum(lacing)
        if len(lacing) < count or end > len(data):
            raise OggOpusError(f"the file ends inside the page at byte {offset}")
        page = bytearray(data[offset:end])
        page[_CRC_OFFSET : _CRC_OFFSET + 4] = bytes(4)
        if ogg_crc32(bytes(page)) != crc:
            raise OggOpusError(f"the page at byte {offset} fails its CRC (damaged)")
        pages.append((flags, granule, serial, sequence, lacing, data[lacing_end:end]))
        offset = end
    return pages


def _packets(pages: list[tuple[int, int, int, int, list[int], bytes]]) -> list[bytes]:
    packets: list[bytes] = []
    partial: bytearray | None = None
    for flags, _granule, _serial, sequence, lacing, body in pages:
        if bool(flags & FLAG_CONTINUED) != (partial is not None):
            raise OggOpusError(f"page {sequence}: a packet's continuation does not match")
        position = 0
        for value in lacing:
            if partial is None:
                partial = bytearray()
            partial += body[position : position + value]
            position += value
            if len(partial) > MAX_PACKET_BYTES:
                raise OggOpusError(f"page {sequence}: a packet over {MAX_PACKET_BYTES} bytes")
            if value < 255:
                packets.append(bytes(partial))
                partial = None
                if len(packets) > MAX_PACKETS:
                    raise OggOpusError(f"more than {MAX_PACKETS} packets")
    if partial is not None:
        raise OggOpusError("the last packet is cut short")
    return packets


def _parse_head(packet: bytes) -> tuple[int, int, int, int]:
    if len(packet) < _HEAD.size or not packet.startswith(b"OpusHead"):
        raise OggOpusError("the first packet is not an OpusHead header (not Ogg Opus)")
    _, version, channels, pre_skip, rate, gain, family = _HEAD.unpack_from(packet)
    if version >> 4 != 0:
        raise OggOpusError(f"Ogg Opus version {version} is not supported")
    if family != 0 or channels != 1:
        raise OggOpusError(f"only mono files are supported ({channels} channels, family {family})")
    return channels, pre_skip, rate, gain


def _parse_tags(packet: bytes) -> tuple[str, list[str]]:
    if not packet.startswith(b"OpusTags"):
        raise OggOpusError("the second packet is not an OpusTags header")
    try:
        offset = 8
        (length,) = struct.unpack_from("<I", packet, offset)
        vendor = packet[offset + 4 : offset + 4 + length].decode("utf-8", errors="replace")
        offset += 4 + length
        (count,) = struct.unpack_from("<I", packet, offset)
        offset += 4
        comments = []
        for _ in range(min(count, 1000)):
            (length,) = struct.unpack_from("<I", packet, offset)
            comments.append(
                packet[offset + 4 : offset + 4 + length].decode("utf-8", errors="replace")
            )
            offset += 4 + length
    except struct.error:
        raise OggOpusError("the OpusTags header is cut short") from None
    return vendor, comments


def read_ogg_opus(data: bytes) -> OggOpusStream:
    """Parse a whole mono Ogg Opus file. Raises :class:`OggOpusError`."""
    pages = _pages(data)
    if not pages:
        raise OggOpusError("the file is empty")
    serial = pages[0][2]
    for number, (flags, _granule, page_serial, sequence, _lacing, _body) in enumerate(pages):
        if page_serial != serial:
            raise OggOpusError("more than one logical stream (chained or multiplexed files)")
        if sequence != number:
            raise OggOpusError(f"page {number} is missing (found page {sequence})")
        if bool(flags & FLAG_BOS) != (number == 0):
            raise OggOpusError(f"page {number}: the beginning-of-stream flag is misplaced")
        if flags & FLAG_EOS and number != len(pages) - 1:
            raise OggOpusError(f"data after the end-of-stream page {number}")
    if not pages[-1][0] & FLAG_EOS:
        raise OggOpusError("no end-of-stream page: the file is cut short")
    packets = _packets(pages)
    if len(packets) < 2:
        raise OggOpusError("the headers are missing")
    channels, pre_skip, rate, gain = _parse_head(packets[0])
    if len(pages[0][4]) != 1:
        raise OggOpusError("the OpusHead header must be alone on the first page")
    vendor, comments = _parse_tags(packets[1])
    end = pages[-1][1]
    if end < pre_skip:
        raise OggOpusError("the last granule position lies inside the pre-skip")
    return OggOpusStream(packets[2:], pre_skip, end, channels, rate, gain, vendor, comments)
