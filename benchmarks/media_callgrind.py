"""Instructions per second of a 1:1 call's media path, by stage, beside the codec alone.

CPU time on this VM drifts by +-20 % within an hour; instruction counts do not. One process
runs under ``valgrind --tool=callgrind --dump-before=getppid``: each stage of the media path
runs over the same ``seconds`` of simulated call (no clock, no sockets), and ``os.getppid()``
between stages makes callgrind write the instructions of the stage just run to a file of its
own. Stages, in a call's order, all with the call's real objects and settings:

* **capture processing**: :class:`~messenger_tui.media.voice_processing.VoiceProcessor` with
  the defaults (AEC + residual echo suppression + NS + AGC), ``played`` + ``process`` per frame,
  on espeak-ng speech and its echo (the far end's speech through a 40 ms, two-tap echo path);
* **encode**: Opus, 24 kb/s VBR, complexity 6, wideband (the call's encoder);
* **seal**: ``pack_audio`` (with the previous packet, padded) + the media frame sealer;
* **open + jitter buffer**: the opener, ``unpack_audio``, ``JitterBuffer.push`` at the frame's
  arrival and ``pull`` every 20 ms (simulated times, no loss);
* **decode**: ``decode_playout`` of what the jitter buffer played out;
* **playout**: the level meter of each played frame (a 1:1 call mixes nothing).

"Codec alone" is encode + decode. Run: ``python -m benchmarks.media_callgrind [--seconds 5]``;
``make bench`` runs it (``NAME``/``run``/``render``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table

NAME = "media_callgrind"
TITLE = "Media path instructions per stage (callgrind)"
STAGES = ["capture processing", "encode", "seal", "open + jitter buffer", "decode", "playout"]
_MARKER = "getppid"


def _stages(seconds: float) -> None:
    """Run inside valgrind: the stages, one after the other, a marker after each."""
    from benchmarks.voice_dsp import speech
    from messenger_tui.core.calls.audio_payload import audio_payload_size, pack_audio, unpack_audio
    from messenger_tui.core.crypto.media_frame import MediaFrameOpener, MediaFrameSealer
    from messenger_tui.media.codec import OpusDecoder, OpusEncoder, OpusSettings, decode_playout
    from messenger_tui.media.jitter_buffer import PlayoutKind
    from messenger_tui.media.levels import frame_level
    from messenger_tui.media.ports import FRAME_SAMPLES
    from messenger_tui.media.receive_path import ReceivePath
    from messenger_tui.media.session import DEFAULT_JITTER_CONFIG
    from messenger_tui.media.voice_processing import VoiceProcessor
    from tests.media._call_sim import call_keys

    played, captured = speech(seconds)
    alice, bob = call_keys()
    settings = OpusSettings(bitrate=24_000, complexity=6, max_bandwidth="wideband")
    processor = VoiceProcessor()
    encoder = OpusEncoder(settings)
    sealer = MediaFrameSealer(alice.send_key, alice.send_direction)
    opener = MediaFrameOpener(bob.receive_key, bob.receive_direction)
    rx = ReceivePath(
        bob, DEFAULT_JITTER_CONFIG, clock=lambda: 0.0, on_connected=None, on_peer_loss=print
    )
    jb = rx.jb
    decoder = OpusDecoder()
    size = audio_payload_size(settings.packet_limit, True)
    os.getppid()  # end of setup

    processed = [
        bytes(processor.process(near)) for far, near in _played(processor, played, captured)
    ]
    os.getppid()
    packets = [encoder.encode(pcm) for pcm in processed]
    os.getppid()
    frames = []
    previous = b""
    for packet in packets:
        payload_type, payload = pack_audio(packet, previous, size)
        previous = packet
        frames.append(sealer.seal(payload, sealer.next_sequence * FRAME_SAMPLES, payload_type))
    os.getppid()
    playouts = []
    for k, frame in enumerate(frames):
        opened = opener.open(frame)
        assert opened is not None
        primary, redundant = unpack_audio(opened.header.payload_type, opened.payload)
        now_ms = 20.0 * k + 30.0
        jb.push(opened.header.sequence, primary, now_ms, redundant)
        playouts.append(jb.pull(now_ms))
    os.getppid()
    pcm_out = [
        decode_playout(decoder, p) if p.kind is not PlayoutKind.SILENCE else b"" for p in playouts
    ]
    os.getppid()
    for k, pcm in enumerate(pcm_out):
        if pcm and k % 4 == 1:
            frame_level(pcm, 4)
    os.getppid()


def _played(processor: Any, played: list[bytes], captured: list[bytes]) -> Any:
    for far, near in zip(played, captured):
        processor.played(far)
        yield far, near


def measure(seconds: float) -> dict[str, float]:
    """Instructions per second of call by stage (and the codec alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        proc = subprocess.run(
            [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                f"--dump-before={_MARKER}", "--dump-instr=no",
                sys.executable, "-m", "benchmarks.media_callgrind", "--inside",
                "--seconds", str(seconds),
            ],
            capture_output=True, text=True,
            env=dict(os.environ, PYTHONMALLOC="malloc", PYTHONHASHSEED="0"),
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind run failed: {proc.stderr[-1500:]}")
        parts = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        counts = []
        for part in parts:
            match = re.search(r"^(?:summary|totals): (\d+)", part.read_text(), re.M)
            counts.append(int(match.group(1)) if match else 0)
    # parts: startup+setup, then one per stage (the last file is the exit's remainder)
    if len(counts) < len(STAGES) + 1:
        raise RuntimeError(f"callgrind wrote {len(counts)} parts, expected {len(STAGES) + 1}")
    stages = counts[1 : 1 + len(STAGES)]
    result = {stage: count / seconds for stage, count in zip(STAGES, stages)}
    result["media path"] = sum(result[s] for s in STAGES)
    result["codec alone"] = result["encode"] + result["decode"]
    return result


def run(settings: Settings) -> dict[str, Any]:
    seconds = 2.0 if settings.quick else 5.0
    return {"seconds": seconds, "per_second": measure(seconds)}


def render(result: dict[str, Any]) -> str:
    per = result["per_second"]
    codec = per["codec alone"]
    rows = [[name, fmt(value / 1e6, 1), f"{value / codec:.2f}"] for name, value in per.items()]
    return (
        "### Media path instructions (callgrind)\n\n"
        f"Instructions per second of a 1:1 call ({result['seconds']:g} s simulated, "
        "valgrind --tool=callgrind; deterministic, whatever the machine's speed).\n\n"
        + md_table(["stage", "M instructions / s of call", "x codec alone"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        _stages(args.seconds)
        return 0
    print(render({"seconds": args.seconds, "per_second": measure(args.seconds)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
