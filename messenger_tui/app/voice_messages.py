"""Voice messages without a microphone: an Ogg Opus file (media/voice_note.py) from a WAV
file or a generated test tone, for ``send-voice`` and tests. The file is written outside the
profile (the profile holds nothing readable without its key) and removed once sent."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Final

from messenger_tui.app.errors import AudioProblem, BadInput
from messenger_tui.media.codec import CodecError
from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.voice_note import VoiceNoteEncoder, VoiceNoteInfo
from messenger_tui.media.wav_io import WavFormatError, read_wav_frames

#: Longest generated voice message (seconds).
MAX_TONE_S: Final = 600.0


def tone_pcm(seconds: float) -> bytes:
    """``seconds`` of a 440 Hz tone whose loudness rises and falls twice a second (so the
    waveform has a shape), 48 kHz mono 16-bit."""
    total = round(seconds * SAMPLE_RATE)
    out = bytearray()
    for n in range(total):
        envelope = 0.2 + 0.8 * abs(math.sin(math.pi * 2 * n / SAMPLE_RATE))
        value = int(12000 * envelope * math.sin(2 * math.pi * 440 * n / SAMPLE_RATE))
        out += value.to_bytes(2, "little", signed=True)
    return bytes(out)


def make_voice_file(
    *, wav: Path | None = None, seconds: float | None = None
) -> tuple[Path, VoiceNoteInfo]:
    """Encode a WAV file (48 kHz mono 16-bit) or a ``seconds``-long tone into a new ``.ogg``
    in a private temporary folder. :class:`BadInput` for a bad WAV or length,
    :class:`AudioProblem` when Opus is missing."""
    if (wav is None) == (seconds is None):
        raise BadInput("give a WAV file or a duration")
    if seconds is not None and not 0 < seconds <= MAX_TONE_S:
        raise BadInput(f"a voice message lasts 0 to {MAX_TONE_S:.0f} seconds")
    folder = Path(tempfile.mkdtemp(prefix="messenger-tui-voice-"))
    path = folder / "voice.ogg"
    try:
        if wav is not None:
            frames = read_wav_frames(wav)
            if not frames:
                raise BadInput(f"{wav} holds no audio")
            pcm = b"".join(frames)
        else:
            assert seconds is not None
            pcm = tone_pcm(seconds)
        with path.open("wb") as f:
            encoder = VoiceNoteEncoder(f)
            step = FRAME_SAMPLES * 2 * 50
            for at in range(0, len(pcm), step):
                encoder.add_pcm(pcm[at : at + step])
            info = encoder.finish()
    except WavFormatError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"cannot read {wav}: {exc.strerror or exc}") from None
    except CodecError as exc:
        raise AudioProblem(f"cannot encode the voice message: {exc}") from None
    return path, info
