"""Speech for call-quality tests: espeak-ng WAVs and wideband PESQ against them.

- :func:`speech_wav` synthesises ``text`` with espeak-ng and converts it with sox to the call
  format (48 kHz mono 16-bit, no dither, 0.3 s of silence at both ends). Deterministic: the
  same arguments give the same bytes, and the file is cached in ``directory`` by a hash of
  them.
- :func:`pesq_wb` scores a recording against its source with ITU-T P.862.2 (the ``pesq``
  package, wideband, 16 kHz): both files are resampled with sox, the reference is located in
  the recording by cross-correlation (a call recording starts with silence while the call
  sets up, and the codec and jitter buffer add delay), the matching stretch is cut out
  (padded with silence if the recording ends early), and PESQ scores the pair. PESQ itself
  then aligns utterance by utterance, so jitter-buffer stretches and drops are tolerated.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from pesq import NoUtterancesError, pesq

PESQ_RATE = 16_000
#: Sentences long enough for PESQ (it wants several seconds of speech).
SENTENCES = (
    "The quick brown fox jumps over the lazy dog. Please call me back when you have a "
    "moment, because the meeting has moved to Thursday afternoon at half past three.",
    "She sells sea shells by the sea shore. Seven silver spoons were found beneath the old "
    "wooden table, and nobody knows who left them there last winter.",
)


def speech_wav(directory: Path, text: str, *, voice: str = "en", rate_hz: int = 48000) -> Path:
    """A WAV of ``text`` spoken by espeak-ng ``voice``, mono 16-bit at ``rate_hz``."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{voice}\0{rate_hz}\0{text}".encode()).hexdigest()[:16]
    out = directory / f"speech-{digest}.wav"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
        partial = Path(tmp) / "out.wav"
        subprocess.run(
            ["sox", "-D", str(raw), "-r", str(rate_hz), "-c", "1", "-b", "16", "-e", "signed",
             str(partial), "pad", "0.3", "0.3"],
            check=True,
        )  # fmt: skip
        partial.replace(out)
    return out


def _read_16k(path: Path, tmp: Path) -> np.ndarray:
    converted = tmp / f"{len(list(tmp.iterdir()))}.wav"
    subprocess.run(
        ["sox", "-D", str(path), "-r", str(PESQ_RATE), "-c", "1", "-b", "16", "-e", "signed",
         str(converted)],
        check=True,
    )  # fmt: skip
    with wave.open(str(converted), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def find_offset(reference: np.ndarray, recording: np.ndarray) -> int:
    """Where ``reference`` starts in ``recording`` (samples; negative if the recording
    starts inside it), by FFT cross-correlation."""
    n = len(reference) + len(recording)
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)
    # corr[k] = sum recording[i + k] * reference[i]; negative lags wrap to the end
    lags = np.concatenate([corr[-(len(reference) - 1) :], corr[: len(recording)]])
    return int(np.argmax(lags)) - (len(reference) - 1)


def align(reference: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """The stretch of ``recording`` that matches ``reference``, the same length."""
    offset = find_offset(reference, recording)
    out = np.zeros(len(reference))
    start = max(offset, 0)
    stop = min(offset + len(reference), len(recording))
    if stop > start:
        out[start - offset : stop - offset] = recording[start:stop]
    return out


def pesq_wb(reference: Path, degraded: Path) -> float:
    """Wideband PESQ (MOS-LQO, 1.04-4.64) of ``degraded`` against ``reference``; a silent
    recording scores 1.0."""
    with tempfile.TemporaryDirectory() as tmp:
        ref = _read_16k(reference, Path(tmp))
        deg = _read_16k(degraded, Path(tmp))
    if not np.any(deg):
        return 1.0
    try:
        return float(pesq(PESQ_RATE, ref, align(ref, deg), "wb"))
    except NoUtterancesError:
        return 1.0
