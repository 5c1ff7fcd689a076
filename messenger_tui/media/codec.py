"""Opus for calls: 48 kHz mono, 20 ms frames, VOIP mode, packets of bounded size, in-band FEC.

PCM is 16-bit signed little-endian mono: one frame is 960 samples = 1920 bytes.

- :class:`OpusEncoder` turns each 20 ms of PCM into one Opus packet of at most
  :attr:`OpusSettings.packet_limit` bytes. Packet sizes are visible through the encryption
  (with sizes that follow the speech, the relay could tell words apart), so a call's sizes must
  not vary. By default the encoder runs at a variable bitrate (24 kb/s on average) under a
  limit of 1.25 times the average packet (75 bytes at 24 kb/s), and the media session pads
  every frame to the size that limit gives (:mod:`messenger_tui.core.calls.audio_payload`):
  constant sizes on the wire, as with Opus's constant-bitrate mode, at less than half its CPU
  and with better audio (measured: 170 us per frame and WB-PESQ 4.0 against 370 us and 3.8;
  libopus's CBR rate control re-runs the SILK quantiser until a packet hits its exact size).
  ``constant_bitrate=True`` selects libopus's CBR instead (the packet limit is then exactly the
  bitrate's share of a frame). In-band FEC is on, with a packet-loss hint the media session
  should update from the loss the peer reports (:meth:`OpusEncoder.set_packet_loss_percent`).
  DTX stays off: it would change the packet rate during silence, which also leaks.
- :class:`OpusDecoder` decodes a packet, recovers the previous frame from the next packet's
  FEC (:meth:`~OpusDecoder.decode_fec`) or conceals a lost frame (:meth:`~OpusDecoder.conceal`).
  :func:`decode_playout` does whichever a jitter-buffer :class:`Playout` asks for.

libopus is loaded on first use, not on import: without it, creating an encoder or decoder
raises :class:`CodecUnavailable` with the reason and the fix, and the rest of the app (chat)
keeps working.

opuslib creates the codec states and sets them up; the per-frame ``opus_encode`` and
``opus_decode`` calls go through prototypes of our own on opuslib's loaded library, with one
output buffer per codec reused for every frame. opuslib's ``decode`` turns each decoded frame
into a list of 960 Python ints and back, and its ``encode`` allocates a 1,275-byte buffer per
call: measured in a running call, that was a quarter of the media path's Python time.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

from messenger_tui.media.jitter_buffer import Playout, PlayoutKind
from messenger_tui.media.ports import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, SILENCE

CHANNELS: Final = 1
#: Largest Opus packet for one frame (RFC 6716 section 3.2.1).
MAX_PACKET_BYTES: Final = 1275
DEFAULT_BITRATE: Final = 24_000
#: Largest variable-bitrate packet as a multiple of the average one: room for the encoder to
#: spend more on hard frames (at 1.0 libopus re-encodes to fit as often as in CBR mode).
VBR_HEADROOM: Final = 1.25


class CodecUnavailable(RuntimeError):
    """libopus (or opuslib) cannot be loaded: calls are unavailable, chat keeps working."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; calls are unavailable (chat still works). Fix: {fix}")
        self.reason = reason
        self.fix = fix


class CodecError(RuntimeError):
    """libopus refused an operation, e.g. a corrupt packet. The caller should conceal instead."""


@dataclass(frozen=True, slots=True)
class OpusSettings:
    """Encoder settings; the defaults are the call protocol's."""

    #: The average bitrate (the exact one with ``constant_bitrate``).
    bitrate: int = DEFAULT_BITRATE
    #: libopus's CBR mode; off, the encoder varies its bitrate under :attr:`packet_limit`.
    constant_bitrate: bool = False
    inband_fec: bool = True
    #: Expected packet loss (0-100); Opus spends more on FEC as it rises.
    packet_loss_percent: int = 10
    #: 0-10; ``None`` keeps libopus's default.
    complexity: int | None = None
    #: Highest audio bandwidth the encoder may use (a key of :data:`BANDWIDTHS`); ``None``
    #: lets libopus choose. Calls cap it at "wideband": at 24 kb/s libopus otherwise spends
    #: bits above 8 kHz, and WB-PESQ drops from about 3.8 to 3.3 (docs/notes/calls.md).
    max_bandwidth: str | None = None

    def __post_init__(self) -> None:
        if not 6_000 <= self.bitrate <= 510_000:
            raise ValueError("Opus bitrate must be 6-510 kb/s")
        if not 0 <= self.packet_loss_percent <= 100:
            raise ValueError("packet loss must be 0-100 %")
        if self.complexity is not None and not 0 <= self.complexity <= 10:
            raise ValueError("Opus complexity must be 0-10")
        if self.max_bandwidth is not None and self.max_bandwidth not in BANDWIDTHS:
            raise ValueError(f"Opus bandwidth must be one of {', '.join(BANDWIDTHS)}")

    @property
    def packet_limit(self) -> int:
        """The largest packet the encoder makes (bytes): the bitrate's share of one frame,
        times :data:`VBR_HEADROOM` unless ``constant_bitrate``."""
        average = self.bitrate * FRAME_MS / 8000
        if self.constant_bitrate:
            return math.ceil(average)
        return min(MAX_PACKET_BYTES, math.ceil(average * VBR_HEADROOM))


#: Opus audio bandwidths by name, as libopus's OPUS_BANDWIDTH_* constants.
BANDWIDTHS: Final = {
    "narrowband": 1101,
    "mediumband": 1102,
    "wideband": 1103,
    "superwideband": 1104,
    "fullband": 1105,
}


def load_opus() -> ModuleType:
    """The ``opuslib`` package with libopus loaded, or :class:`CodecUnavailable`."""
    try:
        import opuslib
        import opuslib.api.ctl
        import opuslib.api.decoder
        import opuslib.api.encoder
        import opuslib.api.info
    except ImportError as exc:
        raise CodecUnavailable(f"the opuslib package is missing ({exc})", "run make setup") from exc
    except Exception as exc:  # opuslib raises a bare Exception when libopus is not found
        raise CodecUnavailable(
            f"libopus is not available ({exc})", "install it: sudo apt-get install libopus0"
        ) from exc
    module: ModuleType = opuslib
    return module


def _opus_error(opuslib: ModuleType) -> type[Exception]:
    error: type[Exception] = opuslib.OpusError
    return error


def _prototype(opuslib: ModuleType, name: str, argtypes: tuple[Any, ...]) -> Any:
    """A fresh ctypes function for ``name`` of opuslib's libopus (indexing the library makes
    a new function object, so opuslib's own prototypes keep their argtypes)."""
    func = opuslib.api.libopus[name]
    func.argtypes = argtypes
    func.restype = ctypes.c_int32
    return func


def _error_text(opuslib: ModuleType, code: int) -> str:
    text = opuslib.api.info.strerror(code)
    return text.decode() if isinstance(text, bytes) else str(text)


class OpusEncoder:
    """Encodes 20 ms frames. Feed it exactly :data:`FRAME_BYTES` of PCM per call."""

    def __init__(self, settings: OpusSettings | None = None) -> None:
        self._lib = load_opus()
        self.settings = settings or OpusSettings()
        try:
            self._encoder: Any = self._lib.Encoder(SAMPLE_RATE, CHANNELS, "voip")
            ctl = self._lib.api.ctl
            self._ctl(ctl.set_bitrate, self.settings.bitrate)
            self._ctl(ctl.set_vbr, 0 if self.settings.constant_bitrate else 1)
            # opuslib 3.0.1's `inband_fec` property setter drops its argument (TypeError);
            # the ctl call is what the property meant to do
            self._ctl(ctl.set_inband_fec, 1 if self.settings.inband_fec else 0)
            self._ctl(ctl.set_packet_loss_perc, self.settings.packet_loss_percent)
            self._ctl(ctl.set_signal, self._lib.SIGNAL_VOICE)
            if self.settings.complexity is not None:
                self._ctl(ctl.set_complexity, self.settings.complexity)
            if self.settings.max_bandwidth is not None:
                self._ctl(ctl.set_max_bandwidth, BANDWIDTHS[self.settings.max_bandwidth])
        except _opus_error(self._lib) as exc:
            raise CodecError(f"could not set up the Opus encoder: {exc}") from exc
        self._state = self._encoder.encoder_state
        # opus_encode(st, const opus_int16 *pcm, int frame_size, unsigned char *data, max)
        self._encode = _prototype(
            self._lib,
            "opus_encode",
            (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int32),
        )
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        self._limit = self.settings.packet_limit

    def _ctl(self, request: Any, value: int | None = None) -> Any:
        return self._lib.api.encoder.encoder_ctl(self._encoder.encoder_state, request, value)

    def encode(self, pcm: bytes) -> bytes:
        """One Opus packet (at most :attr:`OpusSettings.packet_limit` bytes) for one frame of
        PCM."""
        if len(pcm) != FRAME_BYTES:
            raise ValueError(f"an Opus frame is {FRAME_BYTES} bytes of 16-bit mono PCM")
        size: int = self._encode(self._state, pcm, FRAME_SAMPLES, self._out, self._limit)
        if size < 0:
            raise CodecError(f"Opus encode failed: {_error_text(self._lib, size)}")
        packet = ctypes.string_at(self._out, size)
        return packet

    def set_packet_loss_percent(self, percent: int) -> None:
        """Tell the encoder the loss the peer sees, so it sizes its FEC (0-100)."""
        if not 0 <= percent <= 100:
            raise ValueError("packet loss must be 0-100 %")
        self._ctl(self._lib.api.ctl.set_packet_loss_perc, percent)

    @property
    def bitrate(self) -> int:
        return int(self._ctl(self._lib.api.ctl.get_bitrate))

    @property
    def constant_bitrate(self) -> bool:
        return not self._ctl(self._lib.api.ctl.get_vbr)

    @property
    def inband_fec(self) -> bool:
        return bool(self._ctl(self._lib.api.ctl.get_inband_fec))

    @property
    def packet_loss_percent(self) -> int:
        return int(self._ctl(self._lib.api.ctl.get_packet_loss_perc))

    @property
    def lookahead_samples(self) -> int:
        """Encoder lookahead (312 samples = 6.5 ms at 48 kHz): part of the codec delay."""
        return int(self._ctl(self._lib.api.ctl.get_lookahead))


class OpusDecoder:
    """Decodes one stream. Call exactly one method per 20 ms of output, in order, so the
    decoder's state follows the stream (``decode_playout`` picks the right one)."""

    def __init__(self) -> None:
        self._lib = load_opus()
        try:
            self._decoder: Any = self._lib.Decoder(SAMPLE_RATE, CHANNELS)
        except _opus_error(self._lib) as exc:
            raise CodecError(f"could not set up the Opus decoder: {exc}") from exc
        self._state = self._decoder.decoder_state
        # opus_decode(st, const unsigned char *data, len, opus_int16 *pcm, frame_size, fec)
        self._decode_into = _prototype(
            self._lib,
            "opus_decode",
            (
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int32,
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_int,
            ),
        )
        self._pcm = ctypes.create_string_buffer(FRAME_BYTES)

    def _decode(self, data: bytes, fec: bool) -> bytes:
        # an empty packet (a NULL-length one) asks libopus for packet loss concealment
        samples: int = self._decode_into(
            self._state, data, len(data), self._pcm, FRAME_SAMPLES, 1 if fec else 0
        )
        if samples < 0:
            raise CodecError(f"Opus decode failed: {_error_text(self._lib, samples)}")
        if samples != FRAME_SAMPLES:
            raise CodecError(f"Opus decoded {samples} samples, not one 20 ms frame")
        pcm: bytes = self._pcm.raw
        return pcm

    def decode(self, packet: bytes) -> bytes:
        """PCM of one frame from its packet. Raises :class:`CodecError` for a corrupt one."""
        if not packet:
            raise ValueError("an empty packet; call conceal() for a lost frame")
        return self._decode(packet, fec=False)

    def decode_fec(self, next_packet: bytes) -> bytes:
        """PCM of the *lost previous* frame, rebuilt from ``next_packet``'s in-band FEC (PLC
        when it carries none). Decode ``next_packet`` itself normally at the next tick."""
        if not next_packet:
            raise ValueError("FEC needs the next packet")
        return self._decode(next_packet, fec=True)

    def conceal(self) -> bytes:
        """PCM of one lost frame by packet loss concealment (Opus extrapolates, then fades)."""
        return self._decode(b"", fec=False)


def decode_playout(decoder: OpusDecoder, playout: Playout) -> bytes:
    """One frame of PCM for a jitter-buffer :class:`Playout`. Never raises for bad data: a
    packet libopus refuses (only an authenticated but buggy peer sends one) is concealed."""
    kind = playout.kind
    if kind is PlayoutKind.SILENCE:
        return SILENCE
    try:
        if playout.packet is not None and kind in (PlayoutKind.FRAME, PlayoutKind.REDUNDANT):
            return decoder.decode(playout.packet)
        if playout.packet is not None and kind is PlayoutKind.FEC:
            return decoder.decode_fec(playout.packet)
    except CodecError:
        pass
    return decoder.conceal()
