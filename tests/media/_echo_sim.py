"""An offline echo path for the voice-processing tests: a loudspeaker that clips softly, a room,
a microphone on a clock 50 ppm off the speaker's, a near-end talker and background noise.

Everything is numpy on whole signals (48 kHz mono, float in int16 units); the processor under
test then runs frame by frame as it would in a call: each 20 ms the played frame, then the
captured one.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE

RATE = SAMPLE_RATE


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def write_wav(path: Path, signal: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(to_int16(signal).tobytes())
    return path


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal), -32768, 32767).astype("<i2")


def loop_to(signal: np.ndarray, n: int) -> np.ndarray:
    """``signal`` repeated to ``n`` samples."""
    return np.resize(signal, n)


def room_impulse_response(
    rng: np.random.Generator, *, length_ms: float = 150.0, rt60_ms: float = 150.0
) -> np.ndarray:
    """Exponentially decaying noise (a diffuse room tail: -60 dB after ``rt60_ms``) after a
    direct path, normalised to unit energy."""
    n = int(RATE * length_ms / 1000)
    t = np.arange(n) / RATE
    decay = np.exp(-6.9 * t / (rt60_ms / 1000))
    rir = rng.standard_normal(n) * decay * 0.3
    rir[0] += 1.0  # the direct path
    normalised: np.ndarray = rir / np.sqrt(np.sum(rir**2))
    return normalised


def fft_convolve(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    n = len(signal) + len(kernel) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(kernel, size), size)
    return out[: len(signal)]


def lowpass(signal: np.ndarray, hz: float) -> np.ndarray:
    """``signal`` with nothing above ``hz`` (a brick wall in the frequency domain)."""
    spectrum = np.fft.rfft(signal)
    spectrum[np.fft.rfftfreq(len(signal), 1 / RATE) > hz] = 0
    out: np.ndarray = np.fft.irfft(spectrum, len(signal))
    return out


def drift(signal: np.ndarray, ratio: float) -> np.ndarray:
    """``signal`` as heard by a clock ``ratio`` times the player's (linear interpolation)."""
    positions = np.arange(len(signal)) * ratio
    heard: np.ndarray = np.interp(positions, np.arange(len(signal)), signal, right=0.0)
    return heard


def soft_clip(signal: np.ndarray, ceiling: float = 20000.0) -> np.ndarray:
    """A small loudspeaker's saturation: tanh, linear for quiet sounds."""
    return ceiling * np.tanh(signal / ceiling)


@dataclass
class EchoPath:
    """Played audio to microphone: clip, drift, room, gain, device delay."""

    rir: np.ndarray
    delay_ms: float = 40.0
    gain: float = 0.5
    drift_ratio: float = 1.00005
    clip_ceiling: float = 20000.0

    def __call__(self, played: np.ndarray) -> np.ndarray:
        out = soft_clip(played, self.clip_ceiling)
        out = drift(out, self.drift_ratio)
        out = fft_convolve(out, self.rir) * self.gain
        delay = int(RATE * self.delay_ms / 1000)
        return np.concatenate([np.zeros(delay), out[: len(out) - delay]])


def run_frames(
    played: np.ndarray,
    captured: np.ndarray,
    on_played: Callable[[bytes], None],
    process: Callable[[bytes], bytes | memoryview],
) -> np.ndarray:
    """Drive a processor frame by frame; the processed capture as a float array."""
    frames = len(captured) // FRAME_SAMPLES
    play16, cap16 = to_int16(played), to_int16(captured)
    out = np.zeros(frames * FRAME_SAMPLES)
    for k in range(frames):
        part = slice(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        on_played(play16[part].tobytes())
        result = process(cap16[part].tobytes())
        out[part] = np.frombuffer(bytes(result), dtype="<i2")
    return out


def db(ratio: float) -> float:
    return float(10 * np.log10(ratio))


def energy(signal: np.ndarray) -> float:
    return float(np.sum(signal.astype(np.float64) ** 2)) + 1e-9


def active_frames(signal: np.ndarray, threshold_db: float = -30.0) -> np.ndarray:
    """A mask of the 20 ms frames of ``signal`` within ``threshold_db`` of its loudest."""
    frames = len(signal) // FRAME_SAMPLES
    power = np.array(
        [energy(signal[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]) for k in range(frames)]
    )
    mask: np.ndarray = power >= power.max() * 10 ** (threshold_db / 10)
    return mask


def frame_mask_to_samples(mask: np.ndarray) -> np.ndarray:
    return np.repeat(mask, FRAME_SAMPLES)


def projected_gain(reference: np.ndarray, output: np.ndarray, max_lag: int = 960) -> float:
    """The least-squares gain of ``reference`` in ``output`` (at the best small lag): how much
    of the near-end speech got through, ignoring what is uncorrelated with it."""
    best = 0.0
    for lag in range(0, max_lag, 8):
        ref = reference[: len(reference) - lag]
        out = output[lag:]
        gain = float(np.dot(ref, out) / energy(ref))
        best = max(best, gain)
    return best
