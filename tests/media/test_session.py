"""The media session end to end in simulated time: speech quality (WB-PESQ) on a clean and an
impaired link, mute, bad frames, connect/lost callbacks, statistics and health flags; plus one
call on a real event loop with realtime WAV threads."""

from __future__ import annotations

import array
import asyncio
import math
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_tui.core.calls.report import REPORT_LEN
from messenger_tui.core.crypto.media_frame import (
    MEDIA_HEADER_LEN,
    MEDIA_TAG_LEN,
    MediaDirection,
    MediaFrameHeader,
    MediaFrameSealer,
)
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, AudioUnavailable
from messenger_tui.media.session import MediaSession
from messenger_tui.media.wav_io import WavSink, WavSource
from tests.helpers.speech import SENTENCES, pesq_wb, speech_wav

from ._call_sim import FrameSink, FrameSource, Impairment, call_keys, make_call, speech_call

IMPAIRED = Impairment(loss=0.05, delay_s=0.02, jitter_s=0.03, reorder=0.05, reorder_s=0.03)
#: Long enough for the 9.4 s sentences, the codec delay and the jitter buffer.
SPEECH_S = 10.5
#: 24 kb/s: packets of at most 75 bytes, two per frame (this one and the previous), padded
AUDIO_FRAME_RED = MEDIA_HEADER_LEN + 4 + 2 * 75 + MEDIA_TAG_LEN
AUDIO_FRAME = MEDIA_HEADER_LEN + 2 + 75 + MEDIA_TAG_LEN  # the same without redundancy


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("speech")
    return speech_wav(directory, SENTENCES[0]), speech_wav(directory, SENTENCES[1])


def tone(n: int, amplitude: int = 12000) -> bytes:
    """Frame ``n`` of a continuous 440 Hz tone."""
    start = n * FRAME_SAMPLES
    return array.array(
        "h",
        (
            int(amplitude * math.sin(2 * math.pi * 440 * (start + i) / 48000))
            for i in range(FRAME_SAMPLES)
        ),
    ).tobytes()


def is_audio(frame: bytes) -> bool:
    return not MediaFrameHeader.unpack(frame).control


# ---------------------------------------------------------------- speech quality


def test_clean_path_speech_scores_at_least_3_3_both_ways(
    tmp_path: Path, speech: tuple[Path, Path]
) -> None:
    alice_wav, bob_wav = speech
    bob_heard, alice_heard = speech_call(tmp_path, alice_wav, bob_wav, seconds=SPEECH_S)
    scores = pesq_wb(alice_wav, bob_heard), pesq_wb(bob_wav, alice_heard)
    print("clean WB-PESQ", scores)
    assert min(scores) >= 3.3, scores


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_impaired_path_speech_scores_at_least_3_0(
    tmp_path: Path, speech: tuple[Path, Path], seed: int
) -> None:
    """5 % random loss, 30 ms jitter, 5 % of frames held back 30 ms more (reordered)."""
    alice_wav, bob_wav = speech
    bob_heard, alice_heard = speech_call(
        tmp_path, alice_wav, bob_wav, seconds=SPEECH_S, to_bob=IMPAIRED, to_alice=IMPAIRED,
        seed=seed,
    )  # fmt: skip
    scores = pesq_wb(alice_wav, bob_heard), pesq_wb(bob_wav, alice_heard)
    print(f"impaired WB-PESQ (seed {seed})", scores)
    assert min(scores) >= 3.0, scores


def test_control_without_redundancy_the_impaired_path_falls_below_the_bar(
    tmp_path: Path, speech: tuple[Path, Path]
) -> None:
    """The redundant copy is what carries the impaired path over 3.0 (FEC + PLC alone: ~2.6)."""
    alice_wav, bob_wav = speech
    bob_heard, alice_heard = speech_call(
        tmp_path, alice_wav, bob_wav, seconds=SPEECH_S, to_bob=IMPAIRED, to_alice=IMPAIRED,
        seed=1, redundancy=False,
    )  # fmt: skip
    scores = pesq_wb(alice_wav, bob_heard), pesq_wb(bob_wav, alice_heard)
    print("impaired WB-PESQ without redundancy", scores)
    assert max(scores) < 3.0, scores


# ---------------------------------------------------------------- mute


def test_muted_sender_keeps_constant_size_frames_and_the_peer_hears_silence() -> None:
    alice_source = FrameSource(tone)
    bob_sink = FrameSink()
    with make_call(alice_source=alice_source, bob_sink=bob_sink) as call:
        call.start()
        call.sim.run_for(1.0)
        loud = [frame_level(f) for f in bob_sink.frames[-10:]]
        call.alice.session.muted = True
        call.sim.run_for(1.0)
        stats = call.alice.session.stats()
        bob_stats = call.bob.session.stats()
        call.alice.session.muted = False
        call.sim.run_for(0.5)
    assert min(loud) > 0.1  # the tone arrives while not muted
    after_mute = bob_sink.frames[50 + 10 : 100]  # past the frames in flight and buffered
    assert max(frame_level(f) for f in after_mute) < 0.003
    assert frame_level(bob_sink.frames[-1]) > 0.1  # and comes back after unmuting
    sizes = [len(f) for f in call.alice.link.sent if is_audio(f)]
    # 181 bytes, muted or not, and for frame 0 too (it has no previous frame to carry)
    assert set(sizes) == {AUDIO_FRAME_RED}
    reports = [len(f) for f in call.alice.link.sent if not is_audio(f)]
    assert reports and set(reports) == {MEDIA_HEADER_LEN + REPORT_LEN + MEDIA_TAG_LEN}
    assert stats.muted and stats.mic_level > 0.1  # the meter still shows the microphone
    assert bob_stats.peer_muted


# ---------------------------------------------------------------- bad frames


def test_tampered_replayed_wrong_key_and_garbage_frames_are_dropped_and_counted() -> None:
    rng = random.Random(5)
    intruder = MediaFrameSealer(bytes(32), MediaDirection.CALLER_TO_CALLEE)  # wrong key
    with make_call(alice_source=FrameSource(tone)) as call:
        call.start()
        bob = call.bob.session
        deliver = bob.receive
        counts = {"tampered": 0, "replayed": 0, "forged": 0, "garbage": 0}
        seen: list[bytes] = []

        def hostile(frame: bytes) -> None:
            deliver(frame)
            seen.append(frame)
            roll = rng.random()
            if roll < 0.1:
                data = bytearray(frame)
                data[rng.randrange(MEDIA_HEADER_LEN - 8, len(data))] ^= 1 << rng.randrange(8)
                counts["tampered"] += 1
                deliver(bytes(data))
            elif roll < 0.2:
                counts["replayed"] += 1
                deliver(rng.choice(seen[-20:]))
            elif roll < 0.3:
                counts["forged"] += 1
                deliver(intruder.seal(b"\x00" * 60, 0))
            elif roll < 0.4:
                counts["garbage"] += 1
                deliver(rng.randbytes(rng.randrange(0, 200)))

        call.alice.link.deliver = hostile
        call.sim.run_for(3.0)
        stats = bob.stats()
    assert stats.auth_failed >= counts["tampered"] // 2 + counts["forged"]
    assert stats.auth_failed + stats.malformed >= counts["tampered"] + counts["forged"]
    assert stats.replayed == counts["replayed"]
    assert stats.malformed >= counts["garbage"] // 2  # random bytes: short or bad header
    assert stats.frames_received == len([f for f in seen if is_audio(f)])
    assert stats.concealed_plc == 0 and stats.remote_level > 0.1  # audio unharmed


def test_on_connected_fires_once_and_only_on_an_authentic_frame() -> None:
    with make_call() as call:
        alice, bob = call.alice, call.bob
        alice.session.start()
        bob.session.start()
        garbage = MediaFrameSealer(bytes(32), MediaDirection.CALLEE_TO_CALLER).seal(b"x" * 60, 0)
        for frame in (b"", b"\x01" * 40, garbage, bytes(149)):
            alice.session.receive(frame)
        assert alice.connected == [] and not alice.session.stats().connected
        bob.source.tick()  # bob's first frame, delivered 20 ms later
        call.sim.run_for(0.1)
        assert alice.connected == [pytest.approx(call.sim.clock.now - 0.08)]
        bob.source.tick(5)
        call.sim.run_for(0.1)
        assert len(alice.connected) == 1 and alice.session.stats().connected


def test_on_lost_after_ten_seconds_without_authentic_media() -> None:
    with make_call() as call:
        call.start()
        call.sim.run_for(2.0)
        assert call.alice.lost == [] and call.bob.lost == []
        call.bob.link.up = False  # bob's frames stop reaching alice (a crashed peer)
        call.alice.session.receive(b"\x01\x00\x01" + bytes(100))  # garbage keeps nothing alive
        last = call.sim.clock.now
        call.sim.run_for(9.9)
        assert call.alice.lost == []
        call.sim.run_for(0.2)
        assert call.alice.lost == ["no media from peer for 10 s"]
        assert call.bob.lost == []  # alice's frames still reach bob
        call.sim.run_for(15)
        assert call.alice.lost == ["no media from peer for 10 s"]  # once
        assert call.sim.clock.now - last > 10


def test_on_lost_when_nothing_ever_arrives_even_without_capture() -> None:
    with make_call(lost_after_s=3.0) as call:
        call.alice.session.start()  # bob never starts; no capture ticks drive alice either
        call.sim.run_for(2.9)
        call.alice.session.poll()
        assert call.alice.lost == []
        call.sim.run_for(0.2)
        call.alice.session.poll()
        assert call.alice.lost == ["no media from peer for 3 s"]


# ---------------------------------------------------------------- statistics


def test_rtt_from_report_echoes_with_injected_one_way_delays() -> None:
    to_bob = Impairment(delay_s=0.030)
    to_alice = Impairment(delay_s=0.050)
    with make_call(to_bob=to_bob, to_alice=to_alice) as call:
        call.start()
        call.sim.run_for(0.9)
        assert call.alice.session.stats().rtt_ms is None  # no report has come back yet
        call.sim.run_for(4.0)
        alice, bob = call.alice.session.stats(), call.bob.session.stats()
    assert alice.rtt_ms == pytest.approx(80.0, abs=0.01)
    assert bob.rtt_ms == pytest.approx(80.0, abs=0.01)
    assert alice.reports_sent == 4 and bob.reports_received == 4
    assert len(alice.history.rtt_ms) == 4 and alice.history.rtt_ms[-1] == pytest.approx(80.0)


def test_loss_jitter_bitrate_and_the_encoder_loss_hint() -> None:
    lossy = Impairment(loss=0.10, jitter_s=0.03)
    with make_call(alice_source=FrameSource(tone), to_bob=lossy, redundancy=False) as call:
        call.start()
        call.sim.run_for(20.0)
        alice, bob = call.alice.session.stats(), call.bob.session.stats()
    lost = call.alice.link.lost
    sent = len(call.alice.link.sent)
    assert 0.07 < lost / sent < 0.13
    mean_loss = sum(bob.history.loss_percent[2:]) / len(bob.history.loss_percent[2:])
    assert mean_loss == pytest.approx(100 * lost / sent, abs=2.0)
    assert alice.peer_loss_percent is not None and 0 <= alice.peer_loss_percent <= 30
    # without redundancy, FEC is the repair: the encoder's hint follows the reported loss
    assert 5 <= alice.encoder_loss_percent <= 20
    assert bob.concealed_fec > 0.5 * lost
    # 30 ms uniform jitter: RFC 3550 jitter ~ 10 ms; the clean direction has none
    assert 6 < bob.jitter_ms < 14 and alice.jitter_ms < 0.5
    assert alice.peer_jitter_ms == pytest.approx(bob.jitter_ms, abs=3)
    assert bob.jb_target_ms > 40 and alice.jb_target_ms == pytest.approx(20)
    assert len(bob.history.jitter_ms) in (19, 20)  # one per second
    assert len(bob.history.jb_delay_ms) == len(bob.history.jitter_ms)
    # 104-byte frames without redundancy, 50 a second
    assert alice.send_kbps == pytest.approx(AUDIO_FRAME * 8 * 50 / 1000, rel=0.02)
    assert bob.receive_kbps == pytest.approx(alice.send_kbps * (1 - lost / sent), rel=0.1)
    assert alice.loss_percent == 0 and alice.frames_sent in (1000, 1001)


def test_with_redundancy_the_encoder_spends_nothing_on_fec() -> None:
    with make_call(to_bob=Impairment(loss=0.10)) as call:
        call.start()
        call.sim.run_for(5.0)
        alice = call.alice.session.stats()
    assert alice.peer_loss_percent is not None and alice.peer_loss_percent > 0
    assert alice.encoder_loss_percent == 0


@pytest.mark.slow
def test_history_keeps_the_last_minute() -> None:
    with make_call() as call:
        call.start()
        call.sim.run_for(65.5)
        stats = call.alice.session.stats()
    assert len(stats.history.send_kbps) == 60 and len(stats.history.rtt_ms) == 60
    assert stats.reports_sent == 65


def test_health_flags_follow_each_link_of_the_leg() -> None:
    with make_call(alice_source=FrameSource(tone)) as call:
        call.start()
        call.sim.run_for(3.0)
        s = call.alice.session.stats()
        assert (s.capturing, s.sending, s.peer_receiving, s.peer_playing) == (True,) * 4
        assert s.first_broken is None

        call.bob.sink.stop()  # bob's speaker stops pulling
        call.sim.run_for(3.0)
        s = call.alice.session.stats()
        assert s.peer_receiving and not s.peer_playing
        assert s.first_broken == "peer playing"

        call.alice.link.up = False  # the carrier refuses alice's frames
        call.sim.run_for(3.0)
        s = call.alice.session.stats()
        assert s.capturing and not s.sending and not s.peer_receiving
        assert s.first_broken == "sending"
        assert s.frames_send_failed >= 149

        call.alice.source.stop()  # the microphone delivers nothing
        call.sim.run_for(1.0)
        call.alice.session.poll()
        s = call.alice.session.stats()
        assert s.first_broken == "capturing"


def test_close_is_idempotent_and_silences_everything() -> None:
    sink = FrameSink()
    with make_call(alice_source=FrameSource(tone), bob_sink=sink) as call:
        call.start()
        call.sim.run_for(1.0)
        pull = call.bob.session._rx.pull
        call.bob.session.close()
        call.bob.session.close()
        assert pull() == bytes(FRAME_BYTES)
        sent = len(call.bob.link.sent)
        call.bob.session.receive(call.alice.link.sent[-1])
        call.sim.run_for(1.0)
        assert len(call.bob.link.sent) == sent  # nothing more sent
        assert not call.bob.session.running


# ---------------------------------------------------------------- real loop, real threads


class LoopCarrier:
    """Delivers to a session on the loop, like a websocket carrier would."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.peer: LoopCarrier | None = None  # the other session's carrier
        self.on_frame: Callable[[bytes], None] | None = None

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self.on_frame = on_frame

    def send(self, frame: bytes) -> bool:
        peer = self.peer
        if peer is not None and peer.on_frame is not None:
            self.loop.call_soon(peer.on_frame, frame)
        return True


@pytest.mark.xdist_group("realtime")  # real-time threads: frame counts over 2.2 s
async def test_realtime_call_on_an_event_loop(tmp_path: Path, speech: tuple[Path, Path]) -> None:
    """Device-like threads: a realtime WAV source hands frames over with call_soon_threadsafe,
    a realtime WAV sink pulls from its own thread."""
    loop = asyncio.get_running_loop()
    alice_keys, bob_keys = call_keys()
    to_bob, to_alice = LoopCarrier(loop), LoopCarrier(loop)
    connected = asyncio.Event()
    alice = MediaSession(
        alice_keys, to_bob, WavSource(speech[0]), WavSink(tmp_path / "a.wav"), loop=loop
    )
    bob = MediaSession(
        bob_keys, to_alice, WavSource(speech[1]), WavSink(tmp_path / "b.wav"), loop=loop,
        on_connected=connected.set,
    )  # fmt: skip
    to_bob.peer, to_alice.peer = to_alice, to_bob  # each delivers to the other's on_frame
    alice.start()
    bob.start()
    await asyncio.wait_for(connected.wait(), 2.0)
    await asyncio.sleep(2.2)
    a, b = alice.stats(), bob.stats()
    await alice.stop()
    bob.close()
    await bob.stop()  # idempotent
    assert 100 <= a.frames_sent <= 130 and 100 <= b.frames_received <= 130
    assert a.rtt_ms is not None and a.rtt_ms < 50
    assert b.capturing and b.sending and b.peer_receiving and b.peer_playing
    assert b.remote_level > 0 or b.mic_level > 0
    recorded = WavSource(tmp_path / "b.wav", pace="manual")
    assert 100 <= recorded.duration_s * 50 <= 140


# ---------------------------------------------------------------- devices that open slowly


class SlowDevice:
    """A device end whose start blocks until ``release`` is set (PortAudio's first open loads
    the library and lists every device), recording which thread started and stopped it."""

    opens_slowly = True

    def __init__(self, fail: str | None = None) -> None:
        self.release = threading.Event()
        self.fail = fail
        self.started_on: int | None = None
        self.running = False
        self.stops = 0

    def start(self, callback: object) -> None:
        assert self.release.wait(5.0)
        if self.fail is not None:
            raise AudioUnavailable(self.fail, "plug it in")
        self.started_on = threading.get_ident()
        self.running = True

    def stop(self) -> None:
        self.stops += 1
        self.running = False


def slow_session(source: SlowDevice, sink: SlowDevice) -> MediaSession:
    keys, _ = call_keys()
    return MediaSession(keys, LoopCarrier(asyncio.get_running_loop()), source, sink,
                        loop=asyncio.get_running_loop())  # fmt: skip


async def test_devices_open_on_a_worker_thread_while_the_loop_runs() -> None:
    source, sink = SlowDevice(), SlowDevice()
    session = slow_session(source, sink)
    opening = asyncio.ensure_future(session.start_async())
    ticks = 0
    while ticks < 5:  # the loop keeps running while start() blocks on the worker thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert not opening.done() and not source.running
    source.release.set()
    sink.release.set()
    await asyncio.wait_for(opening, 5.0)
    assert all(device.running for device in (source, sink)) and session.running
    assert source.started_on != threading.get_ident() and sink.started_on == source.started_on
    await session.stop()
    assert not source.running and not sink.running


async def test_hanging_up_while_the_devices_open_closes_them_once_open() -> None:
    source, sink = SlowDevice(), SlowDevice()
    session = slow_session(source, sink)
    opening = asyncio.ensure_future(session.start_async())
    await asyncio.sleep(0.02)  # the worker thread now waits inside sink.start()
    stopping = asyncio.ensure_future(session.stop())
    await asyncio.sleep(0.02)
    assert not stopping.done()  # stop waits for the open in progress...
    sink.release.set()
    source.release.set()
    await asyncio.wait_for(asyncio.gather(opening, stopping), 5.0)
    assert not sink.running and not source.running  # ...then closes what it opened
    assert not session.running and session._timer is None


async def test_a_device_that_fails_to_open_raises_its_reason_and_closes_the_other() -> None:
    source, sink = SlowDevice(fail="no microphone found"), SlowDevice()
    source.release.set()
    sink.release.set()
    session = slow_session(source, sink)
    with pytest.raises(AudioUnavailable, match="no microphone found"):
        await session.start_async()
    assert sink.stops >= 1 and not sink.running and not session.running


# ---------------------------------------------------------------- a device that goes away


def test_a_microphone_that_stops_mid_call_says_why_on_the_health_line() -> None:
    """A PortAudio device that went away reports it in its stats; the call's statistics
    carry the reason, so "capturing ✗" comes with an explanation, not a guess."""
    from messenger_tui.app.call_log import call_stats
    from messenger_tui.media.audio_io import DeviceStats
    from messenger_tui.ui.widgets.call_pane import health_line

    class DyingMic(FrameSource):
        lost = False

        def stats(self) -> DeviceStats:
            return DeviceStats(
                device="USB mic",
                device_lost=self.lost,
                last_error="the microphone stopped unexpectedly" if self.lost else None,
            )

    mic = DyingMic(tone)
    with make_call(alice_source=mic) as call:
        call.start()
        call.sim.run_for(1.0)
        healthy = call.alice.session.stats()
        mic.lost = True
        mic.stop()  # PortAudio stopped calling back
        call.sim.run_for(1.0)
        broken = call.alice.session.stats()
    assert healthy.capturing and healthy.audio_problem is None
    assert not broken.capturing
    assert broken.audio_problem == "the microphone stopped unexpectedly"
    line = health_line(call_stats(broken), muted=False).plain
    assert "capturing ✗" in line and "⚠ the microphone stopped unexpectedly" in line
    assert "⚠" not in health_line(call_stats(healthy), muted=False).plain


def test_close_logs_one_summary_line_of_the_media_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the far end's audio went through here (the jitter buffer's counters), once, at
    INFO, when the call ends: the line that would have shown the drops and stretches of a
    busy machine (docs/performance.md, "Calls under load"). Counters only: no key, no audio."""
    with make_call(alice_source=FrameSource(tone), bob_sink=FrameSink()) as call:
        call.start()
        call.sim.run_for(2.0)
        with caplog.at_level("INFO", logger="messenger_tui.media.session"):
            call.bob.session.close()
            call.bob.session.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "messenger_tui.media.session"]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("media: sent ") and " received " in line
    for counter in ("played", "late", "lost", "concealed", "dropped", "stretched", "resyncs"):
        assert f" {counter} " in line
    keys = call_keys()
    for key in (keys[0].send_key, keys[0].receive_key):
        assert key.hex() not in line and repr(key) not in line
