"""CPU of echo cancellation and noise suppression per 20 ms frame, beside the codec alone.

Method: one process, one speech signal (espeak-ng's sentence, looped to ``seconds``; as the far
end, and its echo through a simulated room as the capture). Per 20 ms frame, best of
``passes`` passes of process CPU time (``time.process_time``):

* **Opus encode**: the call's encoder (24 kb/s VBR under a 75-byte limit, complexity 6,
  wideband cap), one frame.
* **AEC + NS + AGC**: :class:`~messenger_tui.media.voice_processing.VoiceProcessor` with the
  defaults (at 16 kHz: two 10 ms SpeexDSP frames, 160 ms filter, residual echo suppression,
  denoise, AGC, the delay estimator), ``played`` + ``process`` per frame; and each stage alone.

Run: ``.venv/bin/python -m benchmarks.voice_dsp [--seconds 10] [--passes 3]``, or as part of
``make bench`` (``python -m benchmarks.run voice_dsp``: the CPU table, and the callgrind counts
over 2 s of call when valgrind is installed and the run is not ``--quick``).
``--callgrind`` instead runs itself under ``valgrind --tool=callgrind`` once per stage and
prints instructions per second of call (deterministic, whatever the machine's speed).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from messenger_tui.media.codec import OpusEncoder, OpusSettings
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.voice_processing import VoiceProcessor, VoiceSettings

NAME = "voice_dsp"
TITLE = "Echo cancellation and noise suppression: CPU beside the codec"
LABELS = {
    "opus-encode": "Opus encode (the codec alone)",
    "aec+ns+agc": "AEC + NS + AGC (defaults)",
    "aec": "AEC + residual echo suppression + delay estimator",
    "ns": "NS alone",
}

STAGES = {
    "opus-encode": None,
    "aec+ns+agc": VoiceSettings(),
    "aec": VoiceSettings(noise_suppression=False, gain_control=False),
    "ns": VoiceSettings(echo_cancellation=False, gain_control=False),
}


def speech(seconds: float) -> tuple[list[bytes], list[bytes]]:
    """(played, captured) frames: espeak-ng speech, and a crude echo of it (delayed 40 ms,
    halved, plus a decaying copy at 60 ms); a tone burst pattern without espeak-ng."""
    n = int(seconds * SAMPLE_RATE)
    samples: list[int]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "s.wav"
            out = Path(tmp) / "o.wav"
            text = "The quick brown fox jumps over the lazy dog, and then it rests a while."
            subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
            subprocess.run(
                ["sox", "-D", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(out)],
                check=True,
            )
            with wave.open(str(out)) as wav:
                samples = list(array("h", wav.readframes(wav.getnframes())))
    except (OSError, subprocess.CalledProcessError):
        samples = [
            int(8000 * math.sin(2 * math.pi * 220 * i / SAMPLE_RATE) * ((i // 9600) % 2))
            for i in range(SAMPLE_RATE * 2)
        ]
    played = (samples * (n // len(samples) + 1))[:n]
    echo = [0] * n
    for i in range(1920, n):
        echo[i] = played[i - 1920] // 2 + (played[i - 2880] // 8 if i >= 2880 else 0)
    frames = n // FRAME_SAMPLES

    def cut(signal: list[int]) -> list[bytes]:
        return [
            array("h", signal[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]).tobytes()
            for k in range(frames)
        ]

    return cut(played), cut(echo)


def runner(stage: str, played: list[bytes], captured: list[bytes]) -> Callable[[], None]:
    settings = STAGES[stage]
    if settings is None:
        encoder = OpusEncoder(OpusSettings(complexity=6, max_bandwidth="wideband"))

        def encode() -> None:
            for frame in captured:
                encoder.encode(frame)

        return encode
    processor = VoiceProcessor(settings)

    def process() -> None:
        for far, near in zip(played, captured):
            processor.played(far)
            processor.process(near)

    return process


def measure(seconds: float, passes: int) -> dict[str, float]:
    played, captured = speech(seconds)
    frames = len(captured)
    result = {}
    for stage in STAGES:
        best = math.inf
        for _ in range(passes):
            run = runner(stage, played, captured)
            start = time.process_time()
            run()
            best = min(best, time.process_time() - start)
        result[stage] = best / frames * 1e6
    return result


def callgrind(seconds: float) -> dict[str, float]:
    """Instructions per second of call by stage (valgrind --tool=callgrind, whole process,
    minus a run that only builds the signals)."""
    counts: dict[str, int] = {}
    for stage in ["setup", *STAGES]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            proc = subprocess.run(
                [
                    "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, "-m", "benchmarks.voice_dsp", "--one-stage", stage,
                    "--seconds", str(seconds),
                ],
                capture_output=True, text=True, check=True,
                env=dict(os.environ, PYTHONMALLOC="malloc"),
            )  # fmt: skip
            match = re.search(r"Collected : (\d+)", proc.stderr)
            if match is None:
                raise RuntimeError(f"no instruction count from callgrind: {proc.stderr[-500:]}")
            counts[stage] = int(match.group(1))
    base = counts.pop("setup")
    return {stage: (count - base) / seconds for stage, count in counts.items()}


def run(settings: Settings) -> dict[str, Any]:
    seconds, passes = (3.0, 1) if settings.quick else (10.0, 3)
    result: dict[str, Any] = {
        "seconds": seconds,
        "passes": passes,
        "us_per_frame": measure(seconds, passes),
    }
    if not settings.quick and shutil.which("valgrind"):
        result["instructions_per_s"] = callgrind(2.0)
    return result


def render(result: dict[str, Any]) -> str:
    us = result["us_per_frame"]
    codec = us["opus-encode"]
    frame_us = FRAME_SAMPLES / SAMPLE_RATE * 1e6
    rows = [
        [LABELS[stage], fmt(value, 0), fmt(value / frame_us * 100, 2), f"{value / codec:.2f}"]
        for stage, value in us.items()
    ]
    text = (
        "### Echo cancellation and noise suppression (CPU per frame)\n\n"
        f"Process CPU per 20 ms frame, best of {result['passes']} passes over "
        f"{result['seconds']:g} s of espeak-ng speech and a simulated echo "
        "(`benchmarks/voice_dsp.py`).\n\n"
        + md_table(["stage", "us per 20 ms frame", "% of a core", "x codec"], rows)
    )
    counts = result.get("instructions_per_s")
    if counts:
        base = counts["opus-encode"]
        rows = [
            [LABELS[stage], fmt(value / 1e6, 1), f"{value / base:.2f}"]
            for stage, value in counts.items()
        ]
        text += (
            "\n\nInstructions per second of call (valgrind --tool=callgrind, 2 s, minus a "
            "run that only builds the signals):\n\n"
            + md_table(["stage", "M instructions / s of call", "x codec"], rows)
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--one-stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_stage:
        played, captured = speech(args.seconds)
        if args.one_stage != "setup":
            runner(args.one_stage, played, captured)()
        return 0
    if args.callgrind:
        for stage, per_second in callgrind(args.seconds).items():
            print(f"{stage:12s} {per_second / 1e6:8.1f} M instructions per second of call")
        return 0
    result = measure(args.seconds, args.passes)
    codec = result["opus-encode"]
    for stage, us in result.items():
        share = us / (FRAME_BYTES // 2 / SAMPLE_RATE * 1e6) * 100
        print(f"{stage:12s} {us:7.1f} us/frame  {share:5.2f} % of a core  {us / codec:4.2f}x codec")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
