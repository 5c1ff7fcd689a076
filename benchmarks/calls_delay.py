"""Added delay of a call's audio, capture -> playback, through the relay on loopback.

Method. A WAV file has no device buffers, and the two ends of a call start their files at
different moments, so the delay cannot be read from the played and recorded files alone: the
benchmark instruments the capture and playout instants instead, with one clock
(``time.monotonic()``, CLOCK_MONOTONIC, shared by every process on the machine).

* **Signal**: 0.5 s of silence, then a voiced burst every 250 ms (120 ms of harmonics of a
  gliding pitch through two formants, 3 ms attack: a sharp onset; every burst has its own
  pitch, formants and phases, so no burst correlates with another).
* **Real stack** (the figure): a relay subprocess and two headless clients, each a real
  ``messenger-tui answer`` / ``messenger-tui call NAME --play WAV --record WAV`` process
  (``python -m benchmarks.calls_delay child ...`` runs the CLI's own ``main`` with its WAV
  source and sink replaced by subclasses that stamp time: the source stamps each 20 ms frame
  when its realtime thread hands it to the call, the sink stamps each frame when ``pull()``
  has returned it, decoded). Both ends play the signal at once (both directions measured).
* **Per burst**: capture time of the onset sample = delivery stamp of its frame - 20 ms + its
  offset in the frame (a device delivers a block when its last sample has been captured);
  playback time of recording sample j = pull stamp of its frame + its offset. The burst's
  waveform is found in the recording by normalised cross-correlation over the 0-500 ms after
  its capture; delay = playback time of the matching sample - capture time. Bursts whose
  correlation peak is below 0.5 are not counted (reported).
* **What is included**: capture framing (20 ms), the Opus lookahead (6.5 ms), encode, seal,
  websocket and relay on loopback, open, the adaptive jitter buffer and playout framing (the
  sink pulls on its own 20 ms clock, unsynchronised with the sender). **Excluded**: device
  buffers (there are none with WAV; real devices add their own, e.g. ~40 ms for PortAudio on
  PulseAudio, docs/notes/calls.md).
* **Baselines in the same run**: the codec alone (encode -> decode, frames played the instant
  they are decoded, simulated time): 20 ms framing + 6.5 ms lookahead = 26.5 ms, which also
  checks the method; and two ``MediaSession`` objects in this process joined by a direct
  in-memory carrier (no relay, no websocket, no processes), with the same stamping WAV source
  and sink in realtime: what the session itself (jitter buffer, playout framing) adds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, machine_busy_seconds
from messenger_tui.media.ports import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.wav_io import WavSink, WavSource

NAME = "calls_delay"
TITLE = "Call audio delay, capture -> playback"
AIM_P95_MS = 80.0
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
LEAD_S = 0.5
PERIOD_S = 0.25
BURST_S = 0.12
SEARCH_S = 0.5
MIN_NCC = 0.5
#: A stand-in for the lookahead when the codec cannot be asked (it always can here).
OPUS_LOOKAHEAD_MS = 6.5


# ---------------------------------------------------------------------------- the signal


def burst_signal(seconds: float, seed: int) -> tuple[np.ndarray, list[int]]:
    """Int16 samples at 48 kHz and the onset sample of every burst."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    out = np.zeros(total, dtype=np.float64)
    n = int(BURST_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    attack = int(0.003 * SAMPLE_RATE)
    release = int(0.015 * SAMPLE_RATE)
    env = np.ones(n)
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    env[-release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    env *= np.exp(-t * 4.0)
    onsets: list[int] = []
    start = LEAD_S
    while start + PERIOD_S <= seconds:
        a = int(start * SAMPLE_RATE)
        f0a, f0b = rng.uniform(100, 220, size=2)
        f0 = np.linspace(f0a, f0b, n)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        f1, f2 = rng.uniform(300, 850), rng.uniform(900, 2400)
        burst = np.zeros(n)
        for h in range(1, int(7000 / max(f0a, f0b))):
            freq = h * f0
            gain = 1.0 / (1 + ((freq - f1) / 120) ** 2) + 0.6 / (1 + ((freq - f2) / 180) ** 2)
            gain += 0.02
            burst += gain * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        burst *= env
        out[a : a + n] = burst / np.max(np.abs(burst)) * 0.5 * 32767
        onsets.append(a)
        start += PERIOD_S
    return out.astype(np.int16), onsets


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


# ---------------------------------------------------------------------------- measuring


def burst_delays(
    source: np.ndarray,
    onsets: list[int],
    capture_stamps: list[float],
    recording: np.ndarray,
    play_stamps: list[float],
) -> dict[str, Any]:
    """Delay of every burst (ms) from the stamps and the two signals; see the module doc."""
    cap = np.asarray(capture_stamps)
    play = np.asarray(play_stamps)
    n = int(BURST_S * SAMPLE_RATE)
    search = int(SEARCH_S * SAMPLE_RATE)
    delays: list[float] = []
    nccs: list[float] = []
    missed = 0
    for a in onsets:
        k = a // FRAME_SAMPLES
        if k >= len(cap):
            missed += 1
            continue
        t_cap = cap[k] - FRAME_S + (a % FRAME_SAMPLES) / SAMPLE_RATE
        # first recorded frame that started playing at or after the capture
        m = int(np.searchsorted(play, t_cap - FRAME_S))
        j0 = m * FRAME_SAMPLES
        window = recording[j0 : j0 + search + n]
        if len(window) < n + FRAME_SAMPLES:
            missed += 1
            continue
        template = source[a : a + n]
        lag, ncc = _ncc_peak(template, window)
        j = j0 + lag
        frame = j // FRAME_SAMPLES
        if ncc < MIN_NCC or frame >= len(play):
            missed += 1
            continue
        t_play = play[frame] + (j % FRAME_SAMPLES) / SAMPLE_RATE
        delays.append(1000.0 * (t_play - t_cap))
        nccs.append(ncc)
    return {"delays_ms": delays, "ncc": nccs, "bursts": len(onsets), "missed": missed}


def _ncc_peak(template: np.ndarray, window: np.ndarray) -> tuple[int, float]:
    """Lag of ``template`` in ``window`` with the highest normalised cross-correlation."""
    n = len(template)
    size = 1 << (len(window) + n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(template, size)), size)
    lags = len(window) - n + 1
    corr = corr[:lags]
    sq = np.concatenate([[0.0], np.cumsum(window * window)])
    energy = sq[n : n + lags] - sq[:lags]
    denom = np.sqrt(np.maximum(energy, 1e-9) * float(np.dot(template, template)))
    ncc = corr / denom
    best = int(np.argmax(ncc))
    return best, float(ncc[best])


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    d = sorted(raw["delays_ms"])
    return {
        "bursts": raw["bursts"],
        "measured": len(d),
        "missed": raw["missed"],
        "p5_ms": _pct(d, 0.05),
        "p50_ms": _pct(d, 0.50),
        "p95_ms": _pct(d, 0.95),
        "max_ms": round(float(max(d)), 2) if d else None,
        "min_ms": round(float(min(d)), 2) if d else None,
        "median_ncc": round(float(np.median(raw["ncc"])), 3) if raw["ncc"] else None,
    }


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(float(sorted_values[index]), 2)


def _merge(*raws: dict[str, Any]) -> dict[str, Any]:
    return {
        "delays_ms": [d for r in raws for d in r["delays_ms"]],
        "ncc": [c for r in raws for c in r["ncc"]],
        "bursts": sum(r["bursts"] for r in raws),
        "missed": sum(r["missed"] for r in raws),
    }


# ---------------------------------------------------------------------------- stamping audio


#: The environment variable that gives a child's WAV sink its phase (seconds).
PHASE_ENV = "BENCH_SINK_PHASE_S"


def sink_phases(call: int, calls: int) -> tuple[float, float]:
    """The two sinks' phases in call ``call`` of ``calls``: together the calls' 2 x ``calls``
    sinks sit evenly over one 20 ms frame, so the delay is measured over every phase a pair
    of device clocks can have (not only the worst one, which the shared grid would give)."""
    frame_s = FRAME_MS / 1000
    return tuple((2 * call + k + 0.5) / (2 * calls) * frame_s for k in range(2))  # type: ignore[return-value]


class StampedSource(WavSource):
    """A loop-paced WAV source that stamps (monotonic) each frame as it hands it over."""

    def __init__(self, path: Path, stamps: list[float]) -> None:
        super().__init__(path)
        self.stamps = stamps

    def _deliver(self) -> bool:
        now = time.monotonic()
        ok = super()._deliver()
        if ok:
            self.stamps.append(now)
        return ok


class StampedSink(WavSink):
    """A loop-paced WAV sink that stamps (monotonic) each frame once ``pull()`` returned it."""

    def __init__(self, path: Path, stamps: list[float], phase_s: float = 0.0) -> None:
        # on the shared loop grid every process would tick at the same instants; two real
        # devices' clocks have some phase between them, which the delay depends on
        super().__init__(path, phase_s=phase_s)
        self.stamps = stamps

    def start(self, pull: Callable[[], bytes]) -> None:
        def stamped() -> bytes:
            pcm = pull()
            self.stamps.append(time.monotonic())
            return pcm

        super().start(stamped)


def child(argv: list[str]) -> int:
    """``python -m benchmarks.calls_delay child STAMPS.json CLI-ARGS...``: the real CLI
    (``messenger-tui CLI-ARGS``) with stamping WAV audio; stamps written to STAMPS.json."""
    from messenger_tui.cli import call_cmd
    from messenger_tui.cli.main import main

    stamps_path = Path(argv[0])
    stamps: dict[str, list[float]] = {"capture": [], "play": []}

    class StampedAudio(call_cmd.HeadlessAudio):
        def _wav_ends(self) -> tuple[Any, Any]:
            assert self._play is not None and self._record is not None
            gate = call_cmd._GatedSource(StampedSource(self._play, stamps["capture"]))
            self._gates.append(gate)
            phase = float(os.environ.get(PHASE_ENV, "0"))
            return gate, StampedSink(self._record, stamps["play"], phase)

    call_cmd.HeadlessAudio = StampedAudio  # type: ignore[misc]
    try:
        return main(argv[1:])
    finally:
        stamps_path.write_text(json.dumps(stamps), encoding="utf-8")


# ---------------------------------------------------------------------------- the runs


def session_codec() -> tuple[Any, Any]:
    """(encoder, decoder) exactly as a call's ``MediaSession`` sets them up (its settings,
    bandwidth cap and loss hint): taken from a session that is built but never started."""
    from messenger_tui.media.session import MediaSession

    keys = call_keys()
    loop = asyncio.new_event_loop()
    try:
        session = MediaSession(
            keys[0],
            _DirectCarrier(loop),
            _Nothing(),
            _Nothing(),
            loop=loop,
        )
    finally:
        loop.close()
    return session._send.encoder, session._rx.decoder


class _Nothing:
    def start(self, _callback: Any) -> None: ...

    def stop(self) -> None: ...


def call_keys() -> tuple[Any, Any]:
    """(caller's, callee's) media keys of a fresh call."""
    from messenger_tui.core.calls.media_keys import CallKeyPair, CallRole, derive_media_keys

    call_id = os.urandom(16)
    a, b = CallKeyPair.generate(), CallKeyPair.generate()
    return (
        derive_media_keys(call_id=call_id, role=CallRole.CALLER, own=a, peer_public=b.public),
        derive_media_keys(call_id=call_id, role=CallRole.CALLEE, own=b, peer_public=a.public),
    )


def codec_alone(source: np.ndarray, onsets: list[int]) -> dict[str, Any]:
    """Encode -> decode every frame with the call's encoder settings; frame k is captured
    (delivered) at 20k ms and its decoded frame played at once: the algorithmic delay."""
    encoder, decoder = session_codec()
    pcm = source.astype("<i2").tobytes()
    frame_bytes = 2 * FRAME_SAMPLES
    out = bytearray()
    stamps = []
    for k in range(len(pcm) // frame_bytes):
        out += decoder.decode(encoder.encode(pcm[k * frame_bytes : (k + 1) * frame_bytes]))
        stamps.append(k * FRAME_S)
    recording = np.frombuffer(bytes(out), dtype="<i2").astype(np.float64)
    raw = burst_delays(source.astype(np.float64), onsets, stamps, recording, stamps)
    result = summarise(raw)
    result["lookahead_ms"] = round(1000 * encoder.lookahead_samples / SAMPLE_RATE, 2)
    return result


class _DirectCarrier:
    """Hands each frame to the other carrier's ``on_frame`` (its session's receive path)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.peer: Any = None
        self.on_frame: Any = None

    def start(self, on_frame: Any) -> None:
        self.on_frame = on_frame

    def send(self, frame: bytes) -> bool:
        self._loop.call_soon(self.peer.on_frame, frame)
        return True


async def in_memory(
    wav: Path,
    source: np.ndarray,
    onsets: list[int],
    workdir: Path,
    phases: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    """Two MediaSessions in this process, joined by a direct carrier, loop-paced WAV audio
    (the sinks ``phases`` off the grid)."""
    from messenger_tui.media.session import MediaSession

    loop = asyncio.get_running_loop()
    keys = call_keys()
    carriers = (_DirectCarrier(loop), _DirectCarrier(loop))
    stamps: list[dict[str, list[float]]] = [{"capture": [], "play": []} for _ in range(2)]
    sessions = []
    for i in range(2):
        sessions.append(
            MediaSession(
                keys[i],
                carriers[i],
                StampedSource(wav, stamps[i]["capture"]),
                StampedSink(workdir / f"mem-{i}.wav", stamps[i]["play"], phases[i]),
                loop=loop,
            )
        )
    carriers[0].peer, carriers[1].peer = carriers[1], carriers[0]
    for s in sessions:
        s.start()
    await asyncio.sleep(len(source) / SAMPLE_RATE + 0.8)
    jb = [s.stats().jb_delay_ms for s in sessions]
    for s in sessions:
        await s.stop()
    src = source.astype(np.float64)
    raws = [
        burst_delays(
            src,
            onsets,
            stamps[i]["capture"],
            read_wav(workdir / f"mem-{1 - i}.wav"),
            stamps[1 - i]["play"],
        )
        for i in range(2)
    ]
    merged = _merge(*raws)
    result = summarise(merged)
    result["raw"] = merged
    result["jb_delay_ms_at_end"] = [round(x, 1) for x in jb]
    return result


_BUFFER = re.compile(r"buffer (\d+) ms")


def _spawn_child(stamps: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.calls_delay", "child", str(stamps), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )


def make_pair(workdir: Path, relay_url: str) -> tuple[Path, Path]:
    """Profiles alice and bob (no passphrase) that know each other."""
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService

    homes = (workdir / "alice", workdir / "bob")
    profiles = [create_profile(h, h.name, relay_url, None) for h in homes]
    services = [MessengerService(p) for p in profiles]
    addresses = [s.address for s in services]
    services[0].add_contact(addresses[1], "bob")
    services[1].add_contact(addresses[0], "alice")
    for p in profiles:
        p.close()
    return homes


def cli_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MESSENGER_TUI_HOME", None)
    env.pop("MESSENGER_TUI_PASSPHRASE_FILE", None)
    return env


def real_call(
    workdir: Path,
    relay_url: str,
    wav: Path,
    source: np.ndarray,
    onsets: list[int],
    phases: tuple[float, float],
) -> dict[str, Any]:
    """alice calls bob through the relay, both CLI processes play and record; their sinks
    tick ``phases`` (alice, bob) off the shared 20 ms grid."""
    alice, bob = make_pair(workdir, relay_url)
    env = cli_env()
    alice_env = {**env, PHASE_ENV: repr(phases[0])}
    bob_env = {**env, PHASE_ENV: repr(phases[1])}
    files = {
        who: (workdir / f"{who}.stamps.json", workdir / f"{who}-heard.wav")
        for who in ("alice", "bob")
    }
    talk = len(source) / SAMPLE_RATE + 1.5
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    answer = _spawn_child(
        files["bob"][0],
        ["answer", "--home", str(bob), "--play", str(wav), "--record", str(files["bob"][1]),
         "--timeout", "60"],
        bob_env,
    )  # fmt: skip
    assert answer.stderr is not None
    line = answer.stderr.readline()
    if "waiting for a call" not in line:
        answer.kill()
        raise RuntimeError(f"answer did not start: {line}{answer.stderr.read()}")
    call = _spawn_child(
        files["alice"][0],
        ["call", "--home", str(alice), "bob", "--play", str(wav), "--record",
         str(files["alice"][1]), "--duration", f"{talk:.1f}"],
        alice_env,
    )  # fmt: skip
    try:
        _, alice_err = call.communicate(timeout=talk + 60)
        _, bob_err = answer.communicate(timeout=30)
    finally:
        for proc in (call, answer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    bob_err = line + bob_err
    wall = time.monotonic() - t0
    busy = machine_busy_seconds() - busy0
    if call.returncode != 0 or answer.returncode != 0:
        raise RuntimeError(
            f"call exited {call.returncode}, answer {answer.returncode}:\n"
            f"{alice_err[-1500:]}\n{bob_err[-1500:]}"
        )
    stamps = {who: json.loads(files[who][0].read_text()) for who in files}
    src = source.astype(np.float64)
    raws = {
        "alice->bob": burst_delays(
            src,
            onsets,
            stamps["alice"]["capture"],
            read_wav(files["bob"][1]),
            stamps["bob"]["play"],
        ),
        "bob->alice": burst_delays(
            src,
            onsets,
            stamps["bob"]["capture"],
            read_wav(files["alice"][1]),
            stamps["alice"]["play"],
        ),
    }
    merged = _merge(*raws.values())
    result = summarise(merged)
    result["raw"] = merged
    result["directions"] = {k: summarise(v) for k, v in raws.items()}
    result["jb_buffer_ms_at_end"] = [
        int(m.group(1)) for err in (alice_err, bob_err) if (m := _BUFFER.search(err))
    ]
    result["machine_busy_cores"] = round(busy / wall, 2)
    return result


def run(settings: Settings) -> dict[str, Any]:
    seconds = 6.0 if settings.quick else 12.0
    calls = 1 if settings.quick else 3
    workdir = settings.workdir / NAME
    workdir.mkdir(parents=True, exist_ok=True)
    source, onsets = burst_signal(seconds, seed=7)
    wav = workdir / "bursts.wav"
    write_wav(wav, source)
    load = os.getloadavg()
    out: dict[str, Any] = {
        "signal_s": seconds,
        "calls": calls,
        "bursts": len(onsets),
        "aim_p95_ms": AIM_P95_MS,
        "loadavg_before": [round(x, 2) for x in load],
        "codec_alone": codec_alone(source, onsets),
    }
    memory = []
    for i in range(calls):
        d = workdir / f"mem{i}"
        d.mkdir()
        memory.append(asyncio.run(in_memory(wav, source, onsets, d, sink_phases(i, calls))))
    relayed = []
    with ServerProcess.relay(workdir, RELAY_BENCH_ARGS) as relay:
        for i in range(calls):
            d = workdir / f"call{i}"
            d.mkdir()
            relayed.append(real_call(d, relay.url, wav, source, onsets, sink_phases(i, calls)))
            relay.check_alive()
    out["in_memory"] = _combine(memory)
    out["relay"] = _combine(relayed)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary over every run's bursts, plus each run's (and direction's) p50."""
    result = summarise(_merge(*(r.pop("raw") for r in runs)))
    result["runs"] = runs
    return result


def render(result: dict[str, Any]) -> str:
    aim = result["aim_p95_ms"]
    rows = []
    labels = (
        ("codec_alone", "codec alone: encode -> decode (simulated time)"),
        ("in_memory", "two media sessions, direct in-memory carrier"),
        ("relay", "two `messenger-tui` processes through the relay"),
    )
    for key, label in labels:
        r = result[key]
        p95 = fmt(r["p95_ms"], 1)
        if key == "relay" and r["p95_ms"] is not None:
            p95 += " ✓" if r["p95_ms"] <= aim else " ✗"
        rows.append(
            [
                f"**{label}**",
                f"{r['measured']} / {r['bursts']}",
                fmt(r["p5_ms"], 1),
                fmt(r["p50_ms"], 1),
                p95,
                fmt(r["max_ms"], 1),
            ]
        )
        if key != "relay":
            continue
        for index, run_ in enumerate(r.get("runs", []), 1):
            for direction, d in run_.get("directions", {}).items():
                rows.append(
                    [
                        f"call {index}, {direction}",
                        f"{d['measured']} / {d['bursts']}",
                        fmt(d["p5_ms"], 1),
                        fmt(d["p50_ms"], 1),
                        fmt(d["p95_ms"], 1),
                        fmt(d["max_ms"], 1),
                    ]
                )
    table = md_table(
        ["path", "bursts measured", "p5 ms", "p50 ms", f"p95 ms (aim ≤ {aim:g})", "max ms"], rows
    )
    runs = result["relay"].get("runs", [])
    jb = ", ".join(f"{x} ms" for r in runs for x in r.get("jb_buffer_ms_at_end", [])) or "-"
    busy = ", ".join(f"{r.get('machine_busy_cores', 0):g}" for r in runs) or "-"
    loads = " / ".join(str(x[0]) for x in (result["loadavg_before"], result["loadavg_after"]))
    lookahead = result["codec_alone"].get("lookahead_ms", OPUS_LOOKAHEAD_MS)
    note = (
        f"{result['calls']} call(s) of a {result['signal_s']:g} s signal with "
        f"{result['bursts']} voiced bursts (sharp onsets), played by both ends at once. Per "
        "burst, delay = playback instant of its onset in the recording (found by normalised "
        "cross-correlation) - its capture instant, both from `time.monotonic()` stamps (one "
        "clock for every process) taken by the WAV source (frame handed to the call) and sink "
        "(frame pulled and decoded); the CLI processes run `messenger-tui`'s own `main` with "
        "those stamping WAV classes (`python -m benchmarks.calls_delay child`). Included: "
        f"20 ms capture framing, Opus lookahead ({lookahead:g} ms), encode/seal, websocket "
        "and relay on loopback, jitter buffer, playout framing. The WAV ends tick on the "
        "event loop's shared 20 ms grid; the delay depends on the phase between the sender's "
        "capture clock and the receiver's playout clock, so each sink is shifted off the grid "
        "by its own phase, the calls' sinks spread evenly over one frame (the spread within a "
        "path is that phase). Excluded: device buffers (WAV has none; real devices add theirs). "
        f"Jitter-buffer delay at the end of each call (the clients' summaries): {jb}. Load "
        f"average (1 min) before / after: {loads}; machine busy during each call: {busy} "
        "cores."
    )
    return f"{note}\n\n{table}"


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "child":
        sys.exit(child(sys.argv[2:]))
    print("usage: python -m benchmarks.calls_delay child STAMPS.json CLI-ARGS...")
    sys.exit(2)
