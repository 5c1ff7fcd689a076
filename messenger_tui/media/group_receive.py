"""A group call's receive path: one jitter buffer and decoder per participant, mixed.

::

    receive  carrier -> receive(frame) on the loop: GroupFrameOpener.open (drops counted)
             -> the sender's stream: unpack_audio -> its JitterBuffer.push
    playout  sink.pull (the sink's clock, maybe a device thread): every stream's
             JitterBuffer.pull -> its own decoder -> sum, clipped to 16 bits -> FRAME_BYTES

The relay forwards at most 3 speakers to each receiver, so at most 3 streams carry audio at a
time; a stream whose buffer has nothing to play costs one dictionary lookup. Each participant
has its own jitter buffer (their network paths and clocks differ) and its own Opus decoder
(decoder state is per stream). :attr:`GroupReceivePath.lock` guards the buffers (push on the
loop, pull on the sink thread) and the set of streams.

Per participant the path keeps what the call pane shows: frames received, loss, jitter
buffer delay, the last level byte and whether it is speaking (its voice activity bit within
the last :data:`SPEAKING_HOLD_S`).

**Loss while forwarded.** The relay forwards a participant's stream only while it is among a
receiver's loudest three, so gaps in its sequence numbers are mostly the relay's choice, not
loss (and the jitter buffer conceals every slot of them). The loss shown is counted over the
participant's *talk bursts*: from its first frame with the voice bit to its last, a burst
ending after :data:`BURST_GAP_FRAMES` frames without voice; every sequence number in a burst
that never arrived is lost. A talker is forwarded while it talks (it is among the loudest),
so this is the loss of what one could hear. The media carrier is one TCP path (no
reordering): a frame is counted on arrival.
"""

from __future__ import annotations

import logging
import operator
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from messenger_tui.core.calls.audio_payload import unpack_audio
from messenger_tui.core.calls.group_frames import GroupFrameOpener, level_dbov
from messenger_tui.core.calls.group_keys import MAX_GROUP_CALL_PARTICIPANTS
from messenger_tui.core.crypto.media_frame import MalformedMediaFrame
from messenger_tui.media.codec import OpusDecoder, decode_playout
from messenger_tui.media.jitter_buffer import JitterBuffer, JitterBufferConfig, PlayoutKind
from messenger_tui.media.ports import FRAME_BYTES, SILENCE

log = logging.getLogger(__name__)

#: A participant counts as speaking for this long after a frame with the voice bit.
SPEAKING_HOLD_S: Final = 0.3
#: Frames (20 ms) without the voice bit that end a talk burst (see "Loss while forwarded").
BURST_GAP_FRAMES: Final = 50


@dataclass(frozen=True, slots=True)
class ParticipantHealth:
    """One participant's line in the call pane."""

    identity: bytes
    speaking: bool
    level_dbov: int
    frames_received: int
    loss_percent: float
    delay_ms: float
    #: Frames of its talk bursts that arrived, and that its bursts spanned.
    voice_frames_received: int = 0
    voice_frames_expected: int = 0


class _Stream:
    __slots__ = (
        "burst_first",
        "burst_last",
        "burst_received",
        "decoder",
        "done_expected",
        "done_received",
        "frames",
        "jb",
        "last_level",
        "last_voice_at",
        "since_first",
    )

    def __init__(self, config: JitterBufferConfig, decoder: OpusDecoder) -> None:
        self.jb = JitterBuffer(config)
        self.decoder = decoder
        self.frames = 0
        self.last_level = 127
        self.last_voice_at = float("-inf")
        self.burst_first: int | None = None  # the current talk burst's first voice sequence
        self.burst_last = 0
        self.since_first = 0  # frames received since (and with) burst_first
        self.burst_received = 0  # since_first when the burst's last voice frame came
        self.done_expected = 0  # closed bursts
        self.done_received = 0

    def count(self, sequence: int, voice: bool) -> None:
        """Loss while forwarded (see the module docstring)."""
        first = self.burst_first
        if first is not None and sequence > self.burst_last + BURST_GAP_FRAMES:
            self.done_expected += self.burst_last - first + 1
            self.done_received += self.burst_received
            first = self.burst_first = None
        if first is None:
            if not voice:
                return
            first = self.burst_first = sequence
            self.since_first = 0
        if sequence >= first:
            self.since_first += 1
        if voice and sequence >= self.burst_last:
            self.burst_last = sequence
            self.burst_received = self.since_first

    def voice_totals(self) -> tuple[int, int]:
        """(received, expected) over the talk bursts so far."""
        received, expected = self.done_received, self.done_expected
        if self.burst_first is not None:
            received += self.burst_received
            expected += self.burst_last - self.burst_first + 1
        return received, expected


def mix(frames: list[bytes]) -> bytes:
    """Sum 16-bit PCM frames of equal length, clipped (one frame is returned as is).

    The sum runs in C (``map(operator.add)`` over arrays); samples are clipped one by one only
    when the sum leaves the 16-bit range somewhere in the frame (rare: loud talkers at once).
    """
    if not frames:
        return SILENCE
    if len(frames) == 1:
        return frames[0]
    arrays = [array("h", frame) for frame in frames]
    total: Iterable[int] = arrays[0]
    for other in arrays[1:]:
        total = map(operator.add, total, other)
    sums = list(total)
    if min(sums) >= -32768 and max(sums) <= 32767:
        return array("h", sums).tobytes()
    return array("h", [-32768 if v < -32768 else 32767 if v > 32767 else v for v in sums]).tobytes()


class GroupReceivePath:
    """Opens every participant's frames into its own jitter buffer and plays the mix."""

    def __init__(
        self,
        opener: GroupFrameOpener,
        jitter_config: JitterBufferConfig,
        *,
        clock: Callable[[], float],
        decoder_factory: Callable[[], OpusDecoder] = OpusDecoder,
    ) -> None:
        self._opener = opener
        self._config = jitter_config
        self._clock = clock
        self._decoder_factory = decoder_factory
        self._streams: dict[bytes, _Stream] = {}
        self.lock = threading.Lock()
        self.pulls = 0
        self.bad_payloads = 0
        self._playout_errors = 0

    def receive(self, frame: bytes) -> None:
        """One frame from the carrier (on the loop); never raises for bad input."""
        opened = self._opener.open(frame)
        if opened is None:
            return
        try:
            primary, redundant = unpack_audio(opened.header.payload_type, opened.payload)
        except MalformedMediaFrame:
            self.bad_payloads += 1
            return
        now = self._clock()
        with self.lock:
            stream = self._streams.get(opened.sender)
            if stream is None:
                if len(self._streams) >= MAX_GROUP_CALL_PARTICIPANTS:
                    return  # cannot happen: the opener holds keys of members only
                stream = self._streams[opened.sender] = _Stream(
                    self._config, self._decoder_factory()
                )
            stream.frames += 1
            stream.count(opened.header.sequence, opened.header.voice)
            stream.last_level = opened.header.level
            if opened.header.voice:
                stream.last_voice_at = now
            stream.jb.push(opened.header.sequence, primary, now * 1000.0, redundant)

    def remove(self, identity: bytes) -> None:
        """A participant left: drop its stream (its keys are dropped by the call machine)."""
        with self.lock:
            self._streams.pop(identity, None)

    def pull(self) -> bytes:
        """The sink's callback: one mixed frame, at once (maybe on a device thread)."""
        try:
            now_ms = self._clock() * 1000.0
            pcm: list[bytes] = []
            with self.lock:
                self.pulls += 1
                for stream in self._streams.values():
                    playout = stream.jb.pull(now_ms)
                    if playout.kind is PlayoutKind.SILENCE:
                        continue
                    frame = decode_playout(stream.decoder, playout)
                    if len(frame) == FRAME_BYTES:
                        pcm.append(frame)
            return mix(pcm)
        except Exception:  # never raise into a device callback
            self._playout_errors += 1
            if self._playout_errors == 1:
                log.exception("group playout failed (further failures are counted)")
            return SILENCE

    def health(self) -> list[ParticipantHealth]:
        """Every participant heard so far, for the call pane."""
        now = self._clock()
        out = []
        with self.lock:
            for identity, stream in self._streams.items():
                stats = stream.jb.stats
                received, expected = stream.voice_totals()
                lost = max(0, expected - received)
                out.append(
                    ParticipantHealth(
                        identity=identity,
                        speaking=now - stream.last_voice_at <= SPEAKING_HOLD_S,
                        level_dbov=level_dbov(stream.last_level),
                        frames_received=stream.frames,
                        loss_percent=100.0 * lost / expected if expected else 0.0,
                        delay_ms=stats.current_delay_ms,
                        voice_frames_received=received,
                        voice_frames_expected=expected,
                    )
                )
        return out
