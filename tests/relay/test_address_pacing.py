"""Pacing per source address: the schedule itself (fake clock), and a real relay process that
slows an address over its rate down (in order, nothing refused) while another address is not
slowed, closes handshakes that would wait too long with 1013, and keeps another user's round
trip within RTT_FACTOR of idle during a storage flood from one address."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from messenger_tui.relay.__main__ import build_parser, config_from_args
from messenger_tui.relay.address_pacing import SEND_SLOT_BYTES, AddressPacer, send_slots
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.config import RateLimit, RelayConfig
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key
from tests.helpers.stranger_flood import FloodProcess
from tests.relay.test_relay_abuse_quotas import RTT_FACTOR, RTT_FLOOR_S

A, B = b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x02"


def test_a_burst_goes_at_once_then_one_slot_per_interval() -> None:
    clock = ManualClock()
    pacer = AddressPacer(RateLimit(10.0, 5), clock)  # one slot per 100 ms
    assert [pacer.reserve(A) for _ in range(5)] == [0.0] * 5
    assert pacer.reserve(A) == pytest.approx(0.1)
    assert pacer.reserve(A) == pytest.approx(0.2)  # booked behind the previous one
    assert pacer.reserve(B) == 0.0  # another address has its own schedule
    clock.advance(200)
    assert pacer.reserve(A) == pytest.approx(0.1)
    clock.advance(10_000)
    assert [pacer.reserve(A) for _ in range(5)] == [0.0] * 5  # refilled, not beyond the burst
    assert pacer.reserve(A) == pytest.approx(0.1)


def test_large_sends_take_a_slot_per_block() -> None:
    assert [send_slots(n) for n in (0, 1, SEND_SLOT_BYTES, SEND_SLOT_BYTES + 1)] == [1, 1, 1, 2]
    assert send_slots(96 * 1024) == 24
    clock = ManualClock()
    pacer = AddressPacer(RateLimit(10.0, 30), clock)
    assert pacer.reserve(A, slots=24) == 0.0
    assert pacer.reserve(A, slots=24) == pytest.approx(1.8)  # 18 slots over the burst


def test_a_wait_over_the_maximum_books_nothing() -> None:
    clock = ManualClock()
    pacer = AddressPacer(RateLimit(10.0, 1), clock)
    assert pacer.reserve(A, max_wait_s=0.15) == 0.0
    assert pacer.reserve(A, max_wait_s=0.15) == pytest.approx(0.1)
    assert pacer.reserve(A, max_wait_s=0.15) is None
    assert pacer.reserve(A, max_wait_s=0.15) is None  # refusals did not push the schedule on
    clock.advance(100)
    assert pacer.reserve(A, max_wait_s=0.15) == pytest.approx(0.1)


def test_prune_forgets_addresses_that_caught_up() -> None:
    clock = ManualClock()
    pacer = AddressPacer(RateLimit(10.0, 5), clock)
    pacer.reserve(A)
    for _ in range(3):
        pacer.reserve(B)
    clock.advance(150)
    assert pacer.prune() == 1 and len(pacer) == 1
    clock.advance(1_000)
    assert pacer.prune() == 1 and len(pacer) == 0


def test_the_relay_flags_set_the_pacing(tmp_path: Path) -> None:
    parser = build_parser()
    default = config_from_args(parser.parse_args(["--data", str(tmp_path)]))
    assert default.address_send_limit == RateLimit(200.0, 2_000)
    assert default.address_auth_limit == RateLimit(5.0, 30)
    args = ["--data", str(tmp_path), "--address-send-rate", "50", "--address-send-burst", "9"]
    args += ["--address-auth-rate", "0.5", "--address-auth-burst", "3"]
    config = config_from_args(parser.parse_args(args))
    assert config.address_send_limit == RateLimit(50.0, 9)
    assert config.address_auth_limit == RateLimit(0.5, 3)
    with pytest.raises(ValueError, match="rate limit"):
        config_from_args(parser.parse_args([*args, "--address-send-rate", "0"]))


# ------------------------------------------------------------------------ real relay process


@pytest.mark.xdist_group("realtime")
async def test_an_address_over_its_send_rate_is_slowed_in_order_and_others_are_not() -> None:
    args = ["--address-send-rate", "50", "--address-send-burst", "10"]
    with RelayProcess(extra_args=args) as relay:
        sender = await WireClient.connect(relay.url, source="127.0.0.2")
        other = await WireClient.connect(relay.url)
        to = bytes(new_key().verify_key)
        frames = [wire.Send(id=new_id(), to=to, body=b"%d" % i) for i in range(60)]
        start = time.monotonic()
        for frame in frames:
            await sender.send(frame)
        # Meanwhile another address's Sends go at once.
        rtts = []
        for _ in range(10):
            probe_id = new_id()
            sent = time.perf_counter()
            await other.send(wire.Send(id=probe_id, to=to, body=b"p"))
            stored, _ = await other.recv_until(wire.Stored)
            assert stored.id == probe_id
            rtts.append(time.perf_counter() - sent)
        answers: list[wire.Stored | wire.Error] = []
        while len(answers) < len(frames):
            answer = await sender.recv(10.0)
            if isinstance(answer, (wire.Stored, wire.Error)):
                answers.append(answer)
        elapsed = time.monotonic() - start
        assert [a.id if isinstance(a, wire.Stored) else a for a in answers] == [
            f.id for f in frames
        ]
        assert elapsed >= (60 - 10) / 50 * 0.9, elapsed  # paced: 50 over the burst at 50/s
        assert statistics.median(rtts) < 0.1, rtts
        for client in (sender, other):
            await client.close()


@pytest.mark.xdist_group("realtime")
async def test_handshakes_over_the_address_rate_wait_then_get_1013() -> None:
    args = ["--address-auth-rate", "2", "--address-auth-burst", "2"]
    with RelayProcess(extra_args=args) as relay:
        started = time.monotonic()
        first = [await WireClient.connect(relay.url, source="127.0.0.3") for _ in range(2)]
        assert time.monotonic() - started < 1.0  # the burst
        # Up to 2 s of waiting is booked (4 more at 2/s); the next ones are closed with 1013.
        attempts = [
            asyncio.create_task(WireClient.connect(relay.url, source="127.0.0.3")) for _ in range(8)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        waited = [r for r in results if isinstance(r, WireClient)]
        closed = [r for r in results if not isinstance(r, WireClient)]
        assert 3 <= len(waited) <= 5, results
        assert closed, results
        for refused in closed:
            assert isinstance(refused, ConnectionClosed), refused
            assert refused.rcvd is not None and refused.rcvd.code == 1013, refused
        assert time.monotonic() - started >= 1.4
        # Another address is not held up by that.
        quick = time.monotonic()
        other = await WireClient.connect(relay.url)
        assert time.monotonic() - quick < 1.0
        for client in (*first, *waited, other):
            await client.close()


@pytest.mark.xdist_group("realtime")
async def test_a_storage_flood_from_one_address_does_not_slow_others_down() -> None:
    """20 identities of one address send stored envelopes to random recipients (nothing is
    refused, nothing closes their connections): only the Send pacing bounds them. Before it,
    another user's round trip went from about 1 ms to seconds (the commit queue filled)."""
    send, auth = RelayConfig(data_dir=Path("unused")).address_send_limit, RateLimit(5.0, 30)
    assert send is not None
    args = ["--address-send-rate", str(send.rate_per_s), "--address-send-burst", str(send.burst)]
    args += ["--address-auth-rate", str(auth.rate_per_s), "--address-auth-burst", str(auth.burst)]
    with RelayProcess(extra_args=args) as relay:
        probe = await WireClient.connect(relay.url)
        to = bytes(new_key().verify_key)

        async def rtts(seconds: float) -> list[float]:
            out: list[float] = []
            until = time.monotonic() + seconds
            while time.monotonic() < until or len(out) < 15:
                probe_id = new_id()
                sent = time.perf_counter()
                await probe.send(wire.Send(id=probe_id, to=to, body=b"p"))
                while True:
                    frame = await probe.recv(30.0)
                    if isinstance(frame, wire.Stored) and frame.id == probe_id:
                        break
                out.append(time.perf_counter() - sent)
                await asyncio.sleep(0.01)
            return out

        idle = max(statistics.median(await rtts(0.0)), RTT_FLOOR_S)
        started = time.monotonic()
        with FloodProcess(relay.url, b"", spread=True, source="127.0.0.2") as flood:
            await flood.wait_ready()
            during = statistics.median(await rtts(6.0))
            stats = flood.stop()
        elapsed = time.monotonic() - started
        print(f"storage flood: idle {idle * 1e3:.2f} ms, during {during * 1e3:.2f} ms; {stats}")
        assert stats.sent > 2 * send.burst, stats  # it pushed past the burst
        assert stats.stored > send.burst / 2, stats
        assert stats.stored <= send.burst + send.rate_per_s * elapsed + 10, (stats, elapsed)
        assert during <= RTT_FACTOR * idle, (idle, during, stats)
        await probe.close()
