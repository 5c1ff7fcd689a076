"""Group calls: client media CPU with three streams, and relay forwarding delay for six legs
(three talking) beside a 1:1 call in the same run.

* **Client CPU** (in process, simulated time, ``time.process_time``): one participant's media
  path per 20 ms: the send path (level byte, Opus encode, seal) and the receive path for the
  three streams the relay forwards (open, jitter buffer, Opus decode each, mix), beside the
  same paths with one stream (a 1:1 call's shape) and the Opus codec alone (encode + decode).
  Each path also with the capture processor a microphone in a room gets (echo cancellation
  against the mix as played, noise suppression, gain control: ``media/voice_processing.py``
  at its defaults, through its public API; the capture is the mix's echo plus the
  participant's own voice). Capture/playback I/O and the event loop are not in it.
* **Relay delay**: a relay subprocess; six group legs in one room, three sending loud frames
  and three silent ones every 20 ms (149 bytes, the size of a sealed 24 kb/s Opus frame with
  redundancy), plus one 1:1 call (two legs on the media route) at the same time. Each frame
  carries the sender's ``perf_counter_ns``; the receiving leg (same process) takes the
  difference. Loss = frames a receiver should get (its selected speakers; every frame for the
  1:1 legs) that never came. Besides p50/p99: the share of frames over the 10 ms aim (on a
  loaded box a few scheduling stalls of the relay or of this process make the p99; the 1:1
  call in the same run shows what the box does to any forwarding).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import nacl.signing
import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import Settings, fmt, md_table
from benchmarks.loadgen import percentile
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess
from messenger_tui.core import group_media_wire as gw
from messenger_tui.core import media_wire, wire
from messenger_tui.core.calls.group_frames import GroupFrameOpener, GroupFrameSealer
from messenger_tui.media.codec import OpusDecoder, OpusEncoder
from messenger_tui.media.group_receive import GroupReceivePath
from messenger_tui.media.group_send import GroupSendPath
from messenger_tui.media.jitter_buffer import JitterBufferConfig
from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.voice_processing import CaptureProcessor, open_voice_processor

NAME = "group_calls"
TITLE = "Group calls: client CPU and relay forwarding"
FRAME = 149
AIM_CLIENT_PCT = 15.0
AIM_P99_MS = 10.0


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _speech_like(index: int, freq: float) -> bytes:
    t = (np.arange(FRAME_SAMPLES) + index * FRAME_SAMPLES) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    pcm = np.sin(2 * np.pi * freq * t) * envelope * 0.2 * 32767
    return pcm.astype("<i2").tobytes()


def _echo_of(mix: bytes, own: bytes) -> bytes:
    """What the microphone hears: the played mix at -10 dB (the room) plus our own voice."""
    played = np.frombuffer(mix, dtype="<i2").astype(np.float64)
    voice = np.frombuffer(own, dtype="<i2").astype(np.float64)
    return np.clip(played * 0.3 + voice * 0.5, -32768, 32767).astype("<i2").tobytes()


def _client_cpu(streams: int, frames: int, *, voice: bool = False) -> float:
    """Percent of a core for one participant's send path + ``streams`` received streams;
    ``voice``: with the capture processor on the send path, the mix as its reference."""
    clock = _Clock()
    opener = GroupFrameOpener(clock)
    senders = []
    for i in range(streams):
        sealer = GroupFrameSealer(clock)
        opener.add_key(bytes([i + 1]) * 32, sealer.current)
        senders.append(GroupSendPath(sealer, OpusEncoder()))
    pcm = [_speech_like(i, 300.0 + 50 * (i % 7)) for i in range(50)]
    incoming = [[s.frame(pcm[i % 50]) for s in senders] for i in range(frames)]
    own = GroupSendPath(GroupFrameSealer(clock), OpusEncoder())
    path = GroupReceivePath(opener, JitterBufferConfig(), clock=clock)
    processor: CaptureProcessor | None = open_voice_processor() if voice else None
    own_voice = [_speech_like(i, 180.0) for i in range(50)]
    mix = bytes(FRAME_SAMPLES * 2)
    start = time.process_time()
    for i in range(frames):
        clock.now += 0.02
        if processor is not None:
            captured = bytes(processor.process(_echo_of(mix, own_voice[i % 50]), clock.now))
        else:
            captured = pcm[i % 50]
        own.frame(captured)
        for frame in incoming[i]:
            path.receive(frame)
        mix = path.pull()
        if processor is not None:
            processor.played(mix, clock.now)
    spent = time.process_time() - start
    if processor is not None:
        processor.close()
    return 100.0 * spent / (frames * 0.02)


def _codec_cpu(frames: int) -> float:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    pcm = [_speech_like(i, 300.0) for i in range(50)]
    start = time.process_time()
    for i in range(frames):
        decoder.decode(encoder.encode(pcm[i % 50]))
    return 100.0 * (time.process_time() - start) / (frames * 0.02)


async def _auth(url: str) -> ClientConnection:
    ws = await connect(
        url + media_wire.MEDIA_PATH, compression=None, max_size=8192, ping_interval=None
    )
    key = nacl.signing.SigningKey.generate()
    identity = bytes(key.verify_key)
    challenge = wire.decode_relay_frame(await ws.recv())
    assert isinstance(challenge, wire.Challenge)
    t = int(time.time() * 1000)
    message = wire.auth_message(challenge.relay_key, challenge.nonce, identity, t)
    await ws.send(
        wire.encode(wire.Auth(identity=identity, time_ms=t, signature=key.sign(message).signature))
    )
    ok = wire.decode_relay_frame(await ws.recv())
    if not isinstance(ok, wire.AuthOk):
        raise RuntimeError(f"relay refused auth: {ok!r}")
    return ws


async def _relay_delay(url: str, seconds: float) -> dict[str, Any]:
    token = os.urandom(32)
    group = []
    for _ in range(6):
        ws = await _auth(url)
        await ws.send(gw.encode_group_control(gw.GroupJoin(token=token)))
        if not isinstance(gw.decode_group_relay_frame(await ws.recv()), gw.GroupJoined):
            raise RuntimeError("group join refused")
        group.append(ws)
    pair_token = os.urandom(32)
    pair = []
    for leg in (0, 1):
        ws = await _auth(url)
        await ws.send(
            media_wire.encode_media_control(media_wire.MediaJoin(token=pair_token, leg=leg))
        )
        pair.append(ws)
    delays: dict[str, list[float]] = {"group": [], "pair": []}
    received = {"group": 0, "pair": 0}
    stop = asyncio.Event()

    async def read(ws: ClientConnection, kind: str) -> None:
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            except Exception:
                return
            if isinstance(data, bytes) and data[:1] in (b"\x01", b"\x02"):
                offset = 3 if kind == "group" else 1
                sent = int.from_bytes(data[offset : offset + 8], "big")
                delays[kind].append((time.perf_counter_ns() - sent) / 1e6)
                received[kind] += 1

    readers = [asyncio.ensure_future(read(ws, "group")) for ws in group]
    readers += [asyncio.ensure_future(read(ws, "pair")) for ws in pair]
    await asyncio.sleep(0.3)  # media_peer / member events settle
    frames = int(seconds / 0.02)
    start = time.monotonic()
    for seq in range(frames):
        await asyncio.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))
        now = time.perf_counter_ns().to_bytes(8, "big")
        for i, ws in enumerate(group):
            level = 10 + i if i < 3 else 127
            ws.protocol.send_binary(bytes([2, level, i]) + now + bytes(FRAME - 11))
            ws.transport.write(b"".join(ws.protocol.data_to_send()))
        for ws in pair:
            ws.protocol.send_binary(b"\x01" + now + bytes(FRAME - 9))
            ws.transport.write(b"".join(ws.protocol.data_to_send()))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*readers, return_exceptions=True)
    for ws in group + pair:
        await ws.close()
    expected = {"group": 6 * 3 * frames, "pair": 2 * frames}
    out: dict[str, Any] = {}
    for kind in ("group", "pair"):
        values = delays[kind]
        out[kind] = {
            "frames": received[kind],
            "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99),
            "max_ms": max(values, default=None),
            "over_aim": sum(1 for v in values if v > AIM_P99_MS) / max(1, len(values)),
            "loss": 1 - received[kind] / expected[kind],
        }
    return out


def run(settings: Settings) -> dict[str, Any]:
    frames = 250 if settings.quick else 1500
    out: dict[str, Any] = {
        "client_cpu_pct": {
            "three_streams": round(_client_cpu(3, frames), 2),
            "one_stream": round(_client_cpu(1, frames), 2),
            "three_streams_voice": round(_client_cpu(3, frames, voice=True), 2),
            "one_stream_voice": round(_client_cpu(1, frames, voice=True), 2),
            "codec_alone": round(_codec_cpu(frames), 2),
        },
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    with ServerProcess.relay(settings.workdir / NAME, RELAY_BENCH_ARGS) as relay:
        out["relay"] = asyncio.run(_relay_delay(relay.url, 5.0 if settings.quick else 20.0))
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def render(result: dict[str, Any]) -> str:
    cpu = result["client_cpu_pct"]
    ok = " ✓" if cpu["three_streams"] <= AIM_CLIENT_PCT else " ✗"
    lines = [
        md_table(
            ["client media path (simulated time)", "% of a core"],
            [
                [
                    f"6-person call, 3 talking: send + 3 streams (aim ≤ {AIM_CLIENT_PCT:g})",
                    fmt(cpu["three_streams"], 2) + ok,
                ],
                ["send + 1 stream (a 1:1 call's shape)", fmt(cpu["one_stream"], 2)],
                [
                    "6-person call, 3 talking, microphone in a room: + echo cancellation, "
                    f"noise suppression, gain control (aim ≤ {AIM_CLIENT_PCT:g})",
                    _maybe(cpu, "three_streams_voice", ok=True),
                ],
                [
                    "1:1 call's shape, microphone in a room (same processor)",
                    _maybe(cpu, "one_stream_voice"),
                ],
                ["Opus encode + decode alone", fmt(cpu["codec_alone"], 2)],
            ],
        ),
        "",
    ]
    rows = []
    for kind, label in (("group", "6 legs, 3 talking"), ("pair", "1:1 call, same run")):
        r = result["relay"][kind]
        rows.append(
            [
                label,
                fmt(r["frames"]),
                fmt(r["p50_ms"], 2),
                fmt(r["p99_ms"], 2),
                fmt(r["max_ms"], 1),
                f"{100 * r['over_aim']:.2f} %" if "over_aim" in r else "n/a",
                f"{100 * r['loss']:.3f} %",
            ]
        )
    lines.append(
        md_table(
            [
                "relay forwarding",
                "frames",
                "p50 ms",
                f"p99 ms (aim ≤ {AIM_P99_MS:g})",
                "max ms",
                f"frames > {AIM_P99_MS:g} ms",
                "loss",
            ],
            rows,
        )
    )
    lines.append("")
    lines.append(
        f"Load average before/after: {result['loadavg_before']} / {result['loadavg_after']}."
    )
    return "\n".join(lines)


def _maybe(cpu: dict[str, float], key: str, *, ok: bool = False) -> str:
    """A figure of an older result may be missing (results saved before it existed)."""
    if key not in cpu:
        return "n/a"
    mark = (" ✓" if cpu[key] <= AIM_CLIENT_PCT else " ✗") if ok else ""
    return fmt(cpu[key], 2) + mark


def main() -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        result = run(Settings(workdir=Path(tmp), quick=True))
    print(render(result))


if __name__ == "__main__":
    main()
