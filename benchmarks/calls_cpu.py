"""CPU per active call per headless client, beside the same client idle and the codec alone.

Method. A relay subprocess and two real clients, ``messenger-tui answer`` (bob) and
``messenger-tui call bob`` (alice), each its own process, both playing a speech WAV (espeak-ng
sentences looped; synthetic voiced bursts if espeak-ng/sox are missing) and recording what
they hear (the WAV source and sink stand in for the devices, with their own 20 ms realtime
threads).

* **Idle baseline**: bob's ``answer`` process, connected to the relay and waiting for a call,
  over ``idle_s``: the same process that will take the call.
* **Active call**: from 2 s after both clients print "in a call with ..." over ``measure_s``:
  user + system CPU time of each process (``/proc/PID/stat``, every thread), divided by the
  wall time, as % of one core; split into the main thread (the event loop: the WAV ends'
  20 ms ticks, Opus encode and decode, seal, websocket, open, jitter buffer, reports, the
  service) and the other threads. The relay's CPU over the same window is shown for
  reference. Measured twice: on uvloop (what the commands run on) and again, as the baseline,
  with ``MESSENGER_TUI_LOOP=asyncio`` (asyncio's own event loop).
* **Codec alone**: the call's encoder settings (24 kb/s VBR under a 75-byte packet limit,
  complexity 6, wideband cap) on the same speech in this process: encode and decode time per
  20 ms frame (best of 3 passes over the file), as % of one core; beside it libopus's CBR mode
  at complexity 7 (the first version of calls), the baseline for the encoder choice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.calls_delay import burst_signal, cli_env, make_pair, session_codec, write_wav
from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import (
    RELAY_BENCH_ARGS,
    ServerProcess,
    cpu_seconds,
    machine_busy_seconds,
)
from messenger_tui.media.codec import OpusEncoder, OpusSettings
from messenger_tui.media.ports import FRAME_BYTES, FRAME_MS
from messenger_tui.media.wav_io import read_wav_frames

NAME = "calls_cpu"
TITLE = "CPU per active call (headless client)"
AIM_PCT = 3.0
WARMUP_S = 2.0
TEXTS = (
    "The quick brown fox jumps over the lazy dog. Please call me back when you have a "
    "moment, because the meeting has moved to Thursday afternoon at half past three.",
    "She sells sea shells by the sea shore. Seven silver spoons were found beneath the old "
    "wooden table, and nobody knows who left them there last winter.",
)


def speech(workdir: Path, seconds: float, index: int) -> tuple[Path, str]:
    """A WAV of at least ``seconds``: espeak-ng speech looped, or synthetic bursts."""
    out = workdir / f"speech-{index}.wav"
    if shutil.which("espeak-ng") and shutil.which("sox"):
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            one = Path(tmp) / "one.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), TEXTS[index % 2]], check=True)
            subprocess.run(
                ["sox", "-D", str(raw), "-r", "48000", "-c", "1", "-b", "16", "-e", "signed",
                 str(one), "pad", "0.3", "0.3"],
                check=True,
            )  # fmt: skip
            length = len(read_wav_frames(one)) * FRAME_MS / 1000
            repeats = max(0, int(seconds / length))
            subprocess.run(["sox", str(one), str(out), "repeat", str(repeats)], check=True)
        return out, "espeak-ng speech"
    samples, _ = burst_signal(seconds + 1, seed=index)
    write_wav(out, samples)
    return out, "synthetic voiced bursts (espeak-ng or sox missing)"


def codec_alone(wav: Path, settings: OpusSettings | None = None) -> dict[str, Any]:
    """Encode and decode µs per 20 ms frame with the call's encoder (or ``settings``)."""
    frames = [f for f in read_wav_frames(wav) if len(f) == FRAME_BYTES][:1500]
    best_enc = best_dec = float("inf")
    for _ in range(3):
        encoder, decoder = session_codec()
        if settings is not None:
            encoder = OpusEncoder(settings)
        t0 = time.process_time()
        packets = [encoder.encode(f) for f in frames]
        t1 = time.process_time()
        for p in packets:
            decoder.decode(p)
        t2 = time.process_time()
        best_enc = min(best_enc, (t1 - t0) / len(frames))
        best_dec = min(best_dec, (t2 - t1) / len(frames))
    frame_s = FRAME_MS / 1000
    return {
        "frames": len(frames),
        "encode_us": round(best_enc * 1e6, 1),
        "decode_us": round(best_dec * 1e6, 1),
        "encode_pct": round(100 * best_enc / frame_s, 2),
        "decode_pct": round(100 * best_dec / frame_s, 2),
        "codec_pct": round(100 * (best_enc + best_dec) / frame_s, 2),
    }


async def _session_stages(wav: Path, workdir: Path, seconds: float) -> dict[str, Any]:
    """Two MediaSessions in this process (direct in-memory carrier, realtime WAV source and
    sink): process CPU per session, and the thread CPU time of each stage per 20 ms frame
    (read-only wrappers timing with ``time.thread_time_ns``)."""
    from benchmarks.calls_delay import _DirectCarrier, call_keys
    from messenger_tui.media import receive_path as receive_path_module
    from messenger_tui.media import send_path as send_path_module
    from messenger_tui.media.levels import frame_level
    from messenger_tui.media.session import MediaSession
    from messenger_tui.media.wav_io import WavSink, WavSource

    spent: dict[str, list[int]] = {}

    def timed(name: str, func: Any) -> Any:
        entry = spent.setdefault(name, [0, 0])

        def wrapper(*args: Any) -> Any:
            t = time.thread_time_ns()
            try:
                return func(*args)
            finally:
                entry[0] += time.thread_time_ns() - t
                entry[1] += 1

        return wrapper

    def patch(owner: object, attr: str, value: object) -> None:
        """Set ``owner.attr`` (a method of an instance, or a function a module imported) to
        ``value``. By name: the type checker cannot follow a patch."""
        setattr(owner, attr, value)

    def instrument(owner: object, attr: str, name: str) -> None:
        """Put a timing wrapper in place of ``owner.attr``."""
        patch(owner, attr, timed(name, getattr(owner, attr)))

    loop = asyncio.get_running_loop()
    keys = call_keys()
    carriers = (_DirectCarrier(loop), _DirectCarrier(loop))
    sessions = [
        MediaSession(
            keys[i], carriers[i], WavSource(wav), WavSink(workdir / f"s{i}.wav"), loop=loop
        )
        for i in range(2)
    ]
    for s in sessions:
        send, rx = s._send, s._rx
        instrument(send, "on_captured", "send path (encode, pack, seal, send)")
        instrument(send.encoder, "encode", "  of which Opus encode")
        instrument(s, "receive", "receive (open, unpack, jitter buffer push)")
        instrument(rx, "pull", "playout pull (jitter buffer, decode)")
        instrument(rx.decoder, "decode", "  of which Opus decode")
    carriers[0].peer, carriers[1].peer = carriers[1], carriers[0]
    level = frame_level  # what both path modules imported from media/levels.py
    levels = timed("levels", level)
    for module in (send_path_module, receive_path_module):
        patch(module, "frame_level", levels)
    try:
        for s in sessions:
            s.start()
        await asyncio.sleep(1.0)
        for entry in spent.values():
            entry[:] = [0, 0]
        pid = os.getpid()
        c0, m0, t0 = cpu_seconds(pid), cpu_seconds(pid, pid), time.monotonic()
        await asyncio.sleep(seconds)
        c1, m1, t1 = cpu_seconds(pid), cpu_seconds(pid, pid), time.monotonic()
        for s in sessions:
            await s.stop()
    finally:
        for module in (send_path_module, receive_path_module):
            patch(module, "frame_level", level)
    wall = t1 - t0
    frames = wall / (FRAME_MS / 1000)
    usage = _usage((c0, m0), (c1, m1), wall)
    return {
        **{k: round(v / 2, 2) for k, v in usage.items()},
        "stages_us_per_frame": {
            name: round(ns / 1000 / 2 / frames, 1) for name, (ns, _n) in spent.items()
        },
    }


#: The first version's encoder: libopus CBR at complexity 7 (the codec baseline).
CBR_SETTINGS = OpusSettings(
    constant_bitrate=True, complexity=7, max_bandwidth="wideband", packet_loss_percent=0
)


class Client:
    """A CLI subprocess whose stderr lines are collected (with their arrival time)."""

    def __init__(self, args: list[str], loop: str = "uvloop") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "messenger_tui", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**cli_env(), "MESSENGER_TUI_LOOP": loop},
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in self.lines:
                if text in line:
                    return at
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"no {text!r} from the client; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def cpu(self) -> tuple[float, float]:
        """(all threads, main thread) CPU seconds."""
        pid = self.proc.pid
        return cpu_seconds(pid), cpu_seconds(pid, pid)

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(timeout=2)


def _usage(
    before: tuple[float, float], after: tuple[float, float], wall: float
) -> dict[str, float]:
    total = after[0] - before[0]
    main = after[1] - before[1]
    return {
        "cpu_pct": round(100 * total / wall, 2),
        "main_thread_pct": round(100 * main / wall, 2),
        "other_threads_pct": round(100 * (total - main) / wall, 2),
    }


def _measure_call(
    relay: ServerProcess,
    workdir: Path,
    wavs: list[tuple[Path, str]],
    loop: str,
    idle_s: float,
    measure_s: float,
    talk_s: float,
) -> dict[str, Any]:
    """One call between two fresh profiles on ``loop`` ("uvloop" or "asyncio"): the callee's
    idle CPU before it, then both clients' CPU during it."""
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    alice, bob = make_pair(workdir, relay.url)
    answer = Client(
        ["answer", "--home", str(bob), "--play", str(wavs[1][0]), "--record",
         str(workdir / "bob-heard.wav"), "--timeout", str(idle_s + 60)],
        loop,
    )  # fmt: skip
    call: Client | None = None
    try:
        answer.wait_for("waiting for a call", 30)
        time.sleep(1.0)
        c0, t0, b0 = answer.cpu(), time.monotonic(), machine_busy_seconds()
        time.sleep(idle_s)
        c1, t1, b1 = answer.cpu(), time.monotonic(), machine_busy_seconds()
        out["idle"] = _usage(c0, c1, t1 - t0)
        out["idle"]["machine_busy_cores"] = round((b1 - b0) / (t1 - t0), 2)
        call = Client(
            ["call", "--home", str(alice), "bob", "--play", str(wavs[0][0]), "--record",
             str(workdir / "alice-heard.wav"), "--duration", f"{talk_s:.1f}"],
            loop,
        )  # fmt: skip
        clients = {"caller": call, "callee": answer}
        active = max(c.wait_for("in a call with", 60) for c in clients.values())
        time.sleep(max(0.0, active + WARMUP_S - time.monotonic()))
        before = {k: c.cpu() for k, c in clients.items()}
        r0, t0, b0 = relay.cpu_seconds(), time.monotonic(), machine_busy_seconds()
        time.sleep(measure_s)
        after = {k: c.cpu() for k, c in clients.items()}
        r1, t1, b1 = relay.cpu_seconds(), time.monotonic(), machine_busy_seconds()
        wall = t1 - t0
        for k in clients:
            out[k] = _usage(before[k], after[k], wall)
        out["relay_cpu_pct"] = round(100 * (r1 - r0) / wall, 2)
        clients_cpu = sum(after[k][0] - before[k][0] for k in clients) + (r1 - r0)
        out["other_load_cores"] = round(max(0.0, (b1 - b0) - clients_cpu) / wall, 2)
        codes = {k: c.finish(talk_s + 30) for k, c in clients.items()}
        if any(codes.values()):
            raise RuntimeError(f"clients exited {codes}:\n{call.stderr()}\n{answer.stderr()}")
        out["summaries"] = {
            k: next((line for _, line in c.lines if line.startswith("audio:")), "")
            for k, c in clients.items()
        }
    finally:
        for c in (call, answer):
            if c is not None and c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
    return out


def _measure_children(
    cmds: list[list[str]], measure_s: float, what: str
) -> tuple[list[dict[str, float]], list[str]]:
    """Start ``cmds`` (each prints ``ready`` once started), let them warm up, and return the
    CPU usage of each over ``measure_s`` (as :func:`_usage`) and what each printed after."""
    procs = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
        )
        for cmd in cmds
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{what} failed: {proc.communicate()[1]}")
        time.sleep(WARMUP_S)
        before = [(cpu_seconds(p.pid), cpu_seconds(p.pid, p.pid)) for p in procs]
        t0 = time.monotonic()
        time.sleep(measure_s)
        after = [(cpu_seconds(p.pid), cpu_seconds(p.pid, p.pid)) for p in procs]
        wall = time.monotonic() - t0
        outs = [p.communicate(timeout=30)[0] for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [_usage(b, a, wall) for b, a in zip(before, after, strict=True)], outs


def _bare_media(workdir: Path, measure_s: float, framing: str) -> dict[str, Any]:
    """Two ``benchmarks.bare_media_client`` processes through the bare forwarder: the CPU of
    moving a call's frames in Python with nothing else (the floor under the real client),
    framed by websockets or as the media leg frames them (``framing``)."""
    token = os.urandom(32).hex()
    seconds = f"{measure_s + WARMUP_S + 1:.1f}"
    with ServerProcess.forwarder(workdir) as forwarder:
        usages, outs = _measure_children(
            [
                [sys.executable, "-m", "benchmarks.bare_media_client", forwarder.url,
                 str(leg), token, seconds, framing]
                for leg in (0, 1)
            ],
            measure_s,
            "bare media client",
        )  # fmt: skip
    return {
        "cpu_pct": round(sum(u["cpu_pct"] for u in usages) / 2, 2),
        "main_thread_pct": round(sum(u["main_thread_pct"] for u in usages) / 2, 2),
        "other_threads_pct": round(sum(u["other_threads_pct"] for u in usages) / 2, 2),
        "received": [o.strip().splitlines()[-1] for o in outs],
    }


def _wakeups_alone(measure_s: float, wakes: int = 1) -> dict[str, Any]:
    """A ``benchmarks.wakeups`` process: an event loop that wakes ``wakes`` times per 20 ms
    and does nothing else (what the wake-ups of a call cost on this machine)."""
    seconds = f"{measure_s + WARMUP_S + 1:.1f}"
    [usage], _ = _measure_children(
        [[sys.executable, "-m", "benchmarks.wakeups", seconds, str(wakes)]],
        measure_s,
        "wake-up baseline",
    )
    return {"wakes_per_frame": wakes, **usage}


def run(settings: Settings) -> dict[str, Any]:
    idle_s = 3.0 if settings.quick else 10.0
    measure_s = 6.0 if settings.quick else 20.0
    stage_s = 4.0 if settings.quick else 10.0
    workdir = settings.workdir / NAME
    workdir.mkdir(parents=True, exist_ok=True)
    talk_s = WARMUP_S + measure_s + 3.0
    wavs = [speech(workdir, talk_s + 2, i) for i in range(2)]
    out: dict[str, Any] = {
        "aim_pct": AIM_PCT,
        "signal": wavs[0][1],
        "idle_s": idle_s,
        "measure_s": measure_s,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "codec_alone": codec_alone(wavs[0][0]),
        "codec_cbr": codec_alone(wavs[0][0], CBR_SETTINGS),
    }
    out["session_alone"] = asyncio.run(_session_stages(wavs[0][0], workdir, stage_s))
    with ServerProcess.relay(workdir, RELAY_BENCH_ARGS) as relay:
        for loop in ("uvloop", "asyncio"):
            args = (relay, workdir / loop, wavs, loop, idle_s, measure_s, talk_s)
            result = _measure_call(*args)
            if loop == "uvloop":
                out.update(result)
            else:
                out["asyncio_loop"] = result
    out["bare_media"] = _bare_media(workdir, measure_s, "websockets")
    out["bare_media_framing"] = _bare_media(workdir, measure_s, "media")
    out["wakeups"] = _wakeups_alone(measure_s)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _codec_row(label: str, codec: dict[str, Any]) -> list[str]:
    return [
        label,
        fmt(codec["codec_pct"], 2, " %"),
        f"encode {fmt(codec['encode_us'], 0)} µs ({fmt(codec['encode_pct'], 2, ' %')})",
        f"decode {fmt(codec['decode_us'], 0)} µs ({fmt(codec['decode_pct'], 2, ' %')})",
    ]


def render(result: dict[str, Any]) -> str:
    aim = result["aim_pct"]
    rows = []
    baseline = result.get("asyncio_loop", {})
    for source, key, label in (
        (result, "idle", "bob's `answer` process, connected, waiting (no call)"),
        (result, "caller", "`messenger-tui call` (alice), active call"),
        (result, "callee", "`messenger-tui answer` (bob), active call"),
        (baseline, "caller", "baseline: the same call on asyncio's own loop, caller"),
        (baseline, "callee", "baseline: the same call on asyncio's own loop, callee"),
    ):
        r = source.get(key)
        if r is None:
            continue
        total = fmt(r["cpu_pct"], 2, " %")
        if key != "idle" and source is result:
            total += " ✓" if r["cpu_pct"] <= aim else " ✗"
        rows.append(
            [
                label,
                total,
                fmt(r["main_thread_pct"], 2, " %"),
                fmt(r["other_threads_pct"], 2, " %"),
            ]
        )
    for key, label in (
        (
            "bare_media",
            "baseline: bare websockets client moving the same frames (no codec, crypto, "
            "jitter buffer or service), websockets' framing, per client",
        ),
        (
            "bare_media_framing",
            "the same bare client with the media leg's own framing (as the call frames), "
            "per client",
        ),
    ):
        bare = result.get(key)
        if bare is not None:
            rows.append(
                [
                    label,
                    fmt(bare["cpu_pct"], 2, " %"),
                    fmt(bare["main_thread_pct"], 2, " %"),
                    fmt(bare["other_threads_pct"], 2, " %"),
                ]
            )
    wakeups = result.get("wakeups")
    if wakeups is not None:
        rows.append(
            [
                "baseline: an event loop that wakes once per 20 ms and does nothing else "
                "(the least a 20 ms audio client pays on this machine)",
                fmt(wakeups["cpu_pct"], 2, " %"),
                fmt(wakeups["main_thread_pct"], 2, " %"),
                fmt(wakeups["other_threads_pct"], 2, " %"),
            ]
        )
    sess = result.get("session_alone")
    if sess is not None:
        rows.append(
            [
                "media session alone (no transport, no service), per session",
                fmt(sess["cpu_pct"], 2, " %"),
                fmt(sess["main_thread_pct"], 2, " %"),
                fmt(sess["other_threads_pct"], 2, " %"),
            ]
        )
    rows.append(_codec_row("codec alone: the call's Opus encode + decode", result["codec_alone"]))
    if "codec_cbr" in result:
        rows.append(
            _codec_row("baseline: libopus CBR, complexity 7 (calls' first version)",
                       result["codec_cbr"])
        )  # fmt: skip
    table = md_table(
        [
            "process / work",
            f"% of one core (aim ≤ {aim:g})",
            "main thread (event loop)",
            "other threads",
        ],
        rows,
    )
    stages = ""
    if sess is not None:
        stages = (
            "\n\nPer 20 ms frame in the media session alone (thread CPU time): "
            + "; ".join(
                f"{name.strip()} {fmt(us, 0)} µs"
                for name, us in sess["stages_us_per_frame"].items()
            )
            + " (20 ms = 20,000 µs: 200 µs = 1 % of a core)."
        )
    note = (
        "Two real headless clients through a relay subprocess, both playing "
        f"{result['signal']} and recording what they hear (WAV source/sink in place of the "
        "devices, paced on the event loop). CPU = user + system time of the process "
        f"(`/proc/PID/stat`, all threads) over {result['measure_s']:g} s of steady call "
        f"(from {WARMUP_S:g} s after both are active) / wall time; idle over "
        f"{result['idle_s']:g} s in the same `answer` process before the call. The commands "
        "run on uvloop; the baseline rows are the same call again with "
        "`MESSENGER_TUI_LOOP=asyncio`. The codec rows are this process encoding and decoding "
        "the same speech: the call's settings (24 kb/s VBR under a 75-byte packet limit, "
        "padded to constant frame sizes; complexity 6; wideband), and libopus's CBR mode. "
        f"Relay during the call: {fmt(result['relay_cpu_pct'], 2, ' %')}; other load on the "
        f"machine: {fmt(result.get('other_load_cores'), 2)} cores; load average (1 min) "
        f"before / after: {result['loadavg_before'][0]} / {result['loadavg_after'][0]}."
    )
    return f"{note}\n\n{table}{stages}"
