"""The contracts between a call's media session and what surrounds it.

A :class:`~messenger_tui.media.session.MediaSession` turns captured PCM into sealed media
frames and sealed frames back into played PCM. It never opens a device or a socket itself:

* an :class:`AudioSource` delivers captured audio (a PortAudio input stream, or a WAV file
  for headless calls and tests);
* an :class:`AudioSink` asks for audio to play on its own clock (a PortAudio output stream,
  or a WAV file writer);
* a :class:`MediaCarrier` takes sealed frames to the peer (the relay's media route, or an
  impairing in-memory link in tests). It is datagram-like: frames may be lost, late,
  duplicated or reordered, and ``send`` never blocks.

PCM everywhere is 48 kHz mono 16-bit signed little-endian, in 20 ms frames of
:data:`FRAME_BYTES` bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

SAMPLE_RATE: Final = 48_000
FRAME_MS: Final = 20
#: Samples in one 20 ms mono frame.
FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000
#: Bytes of 16-bit mono PCM in one frame.
FRAME_BYTES: Final = FRAME_SAMPLES * 2
#: One frame of silence.
SILENCE: Final = bytes(FRAME_BYTES)


class AudioSource(Protocol):
    """Captured audio, one frame at a time.

    An end whose ``start`` blocks (a device) has a true ``opens_slowly`` attribute (sources
    and sinks alike); the media session then starts it on a worker thread. A microphone in a
    room, whose capture may hold the echo of what the speaker plays, has a true ``acoustic``
    attribute: calls run echo cancellation and noise suppression on it (WAV files and loops
    have none)."""

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        """Begin capturing; call ``on_frame`` with each :data:`FRAME_BYTES`-byte frame.

        ``on_frame`` may be called from a device thread: it must not block (the session hands
        the frame to its event loop with ``call_soon_threadsafe``). Raises
        :class:`AudioUnavailable` when the device cannot be opened."""
        ...

    def stop(self) -> None:
        """Stop capturing; no ``on_frame`` call follows once this returns. Idempotent."""
        ...


class AudioSink(Protocol):
    """Audio played on the sink's own clock (the output device's, for real devices)."""

    def start(self, pull: Callable[[], bytes]) -> None:
        """Begin playing; call ``pull`` once per 20 ms of the sink's clock for the next
        :data:`FRAME_BYTES` bytes to play.

        ``pull`` may be called from a device thread and returns at once. Raises
        :class:`AudioUnavailable` when the device cannot be opened."""
        ...

    def stop(self) -> None:
        """Stop playing; no ``pull`` call follows once this returns. Idempotent."""
        ...


#: Opens a call's audio ends: a capture source and a playback sink.
AudioFactory = Callable[[], tuple[AudioSource, AudioSink]]


class MediaCarrier(Protocol):
    """Takes sealed media frames towards the peer, and brings the peer's to ``on_frame``."""

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        """Begin carrying (a network carrier connects in the background; returns at once) and
        hand each frame from the peer to ``on_frame`` on the loop, in arrival order. Called
        once, by the media session when it starts. ``on_frame`` must not block."""
        ...

    def send(self, frame: bytes) -> bool:
        """Queue one sealed frame without blocking; False when it was dropped (link down or
        congested). A dropped frame is gone: voice is never queued for later."""
        ...


class AudioUnavailable(RuntimeError):
    """A device (or PortAudio itself) cannot be used. ``reason`` says what, ``fix`` how."""

    def __init__(self, reason: str, fix: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
