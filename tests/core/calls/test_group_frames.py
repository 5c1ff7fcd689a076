"""Group call frames: per-participant keys, rotation with switch-over and grace, replay, the
leaver bound, the level byte, a known-answer vector (fake clock, deterministic)."""

from __future__ import annotations

import nacl.bindings
import pytest

from messenger_tui.core.calls.group_frames import (
    GRACE_S,
    GROUP_HEADER_LEN,
    SWITCH_OVER_S,
    FrameKey,
    GroupFrameOpener,
    GroupFrameSealer,
    KeyIdConflict,
    UnknownFrameKey,
    level_byte,
    level_dbov,
    seal_group_frame,
)
from messenger_tui.core.calls.group_keys import (
    GroupCallFrameKey,
    group_join_token,
    room_id,
)
from messenger_tui.core.crypto.media_frame import MalformedMediaFrame, ReplayedMediaFrame
from messenger_tui.core.errors import DecryptionFailed

ALICE, BOB, CAROL = b"A" * 32, b"B" * 32, b"C" * 32


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


KAT = "029401010203040000000700001a4026ae8f4d5a07da68afb9b2eda09a57f8990394d1aef41aeca0be"


def test_known_answer_vector() -> None:
    key = FrameKey(0x01020304, bytes(range(32)))
    frame = seal_group_frame(
        key, sequence=7, timestamp=6720, level=level_byte(-20, voice=True), payload=b"opus frame"
    )
    assert frame.hex() == KAT
    # the layout, checked against libsodium directly: header is AD, nonce = key_id||0*12||seq
    header = bytes.fromhex("029401010203040000000700001a40")
    nonce = bytes.fromhex("01020304") + bytes(12) + (7).to_bytes(8, "big")
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"opus frame", header, nonce, key.key
    )
    assert frame == header + sealed
    opener = GroupFrameOpener(FakeClock())
    opener.add_key(ALICE, key)
    opened = opener.open(frame, strict=True)
    assert opened is not None and opened.sender == ALICE and opened.payload == b"opus frame"
    assert opened.header.voice and level_dbov(opened.header.level) == -20


def test_level_byte_is_rfc6464_style() -> None:
    assert level_byte(0, voice=False) == 0
    assert level_byte(-127, voice=False) == 127
    assert level_byte(-300, voice=True) == 0x80 | 127  # clamped
    assert level_byte(3.0, voice=True) == 0x80  # above 0 dBov clamps to 0
    assert level_dbov(0x80 | 42) == -42


def test_level_is_authenticated() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    opener = GroupFrameOpener(clock)
    opener.add_key(ALICE, sealer.current)
    frame = bytearray(sealer.seal(b"x" * 60, 0, level_byte(-30, voice=True)))
    frame[1] = level_byte(0, voice=True)  # a relay promoting a speaker
    with pytest.raises(DecryptionFailed):
        opener.open(bytes(frame), strict=True)
    assert opener.counters.auth_failed == 1


def test_replay_refused_and_reorder_accepted() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    opener = GroupFrameOpener(clock)
    opener.add_key(ALICE, sealer.current)
    frames = [sealer.seal(bytes([i]) * 40, i * 960, 50) for i in range(5)]
    for index in (0, 2, 1, 4, 3):
        assert opener.open(frames[index]) is not None
    with pytest.raises(ReplayedMediaFrame):
        opener.open(frames[2], strict=True)
    assert opener.open(frames[4]) is None
    assert opener.counters.replayed == 2 and opener.counters.opened == 5


def test_malformed_and_unknown_key_are_counted_not_raised() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    opener = GroupFrameOpener(clock)
    frame = sealer.seal(b"x" * 40, 0, 10)
    assert opener.open(frame) is None  # key not announced yet
    with pytest.raises(UnknownFrameKey):
        opener.open(frame, strict=True)
    assert opener.open(b"\x01" + frame[1:]) is None  # a 1:1 frame version
    assert opener.open(frame[: GROUP_HEADER_LEN + 3]) is None
    with pytest.raises(MalformedMediaFrame):
        opener.open(frame[:5], strict=True)
    assert opener.counters.unknown_key == 2
    assert opener.counters.malformed == 3
    assert opener.counters.received == opener.counters.opened + opener.counters.dropped


def test_rotation_switches_after_the_switch_over() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    first = sealer.current
    new = sealer.rotate()
    assert new.key_id != first.key_id and new.key != first.key
    assert sealer.current == first and sealer.pending == new
    clock.advance(SWITCH_OVER_S - 0.01)
    assert frame_key_id(sealer.seal(b"a", 0, 0)) == first.key_id
    clock.advance(0.02)
    assert frame_key_id(sealer.seal(b"a", 0, 0)) == new.key_id
    assert sealer.pending is None


def frame_key_id(frame: bytes) -> int:
    return int.from_bytes(frame[3:7], "big")


def test_a_second_rotation_replaces_the_pending_key_and_never_postpones() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    sealer.rotate()
    clock.advance(0.8)
    second = sealer.rotate()  # a join right after a leave: the leaver may hold the first
    clock.advance(0.21)  # 1.01 s after the first rotation
    assert sealer.current == second


def test_receiver_grace_then_drop() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    opener = GroupFrameOpener(clock)
    old = sealer.current
    opener.add_key(ALICE, old)
    late_old = sealer.seal(b"late", 0, 0)  # sealed under the old key, delivered late
    opener.add_key(ALICE, sealer.rotate())
    clock.advance(SWITCH_OVER_S)
    assert opener.open(sealer.seal(b"new", 960, 0)) is not None  # the new key is in use
    clock.advance(GRACE_S - 0.1)
    assert opener.open(late_old) is not None  # within the grace
    clock.advance(0.2)
    assert opener.key_ids(ALICE) == [sealer.current.key_id]
    assert opener.open(sealer.seal(b"more", 1920, 0)) is not None


def test_key_id_conflicts_are_refused() -> None:
    clock = FakeClock()
    opener = GroupFrameOpener(clock)
    key = FrameKey(7, b"k" * 32)
    assert opener.add_key(ALICE, key) is True
    assert opener.add_key(ALICE, key) is False  # idempotent
    with pytest.raises(KeyIdConflict):
        opener.add_key(BOB, key)  # Bob cannot claim Alice's key id (and her frames)
    with pytest.raises(KeyIdConflict):
        opener.add_key(ALICE, FrameKey(7, b"x" * 32))
    assert opener.senders() == [ALICE]


def test_a_leaver_opens_nothing_sent_after_the_switch_over() -> None:
    """Alice, Bob and Carol talk; Carol leaves at t=0 keeping every key she was given. Alice
    and Bob learn of it at once (the relay's member event) and rotate; the new keys go only to
    each other. Carol's opener, fed every frame sent afterwards, opens frames only until the
    switch-over, and none sent more than 3.5 s after she left."""
    clock = FakeClock()
    sealers = {name: GroupFrameSealer(clock) for name in (ALICE, BOB)}
    carol = GroupFrameOpener(clock)
    bob_view = GroupFrameOpener(clock)
    for name, sealer in sealers.items():
        carol.add_key(name, sealer.current)
    bob_view.add_key(ALICE, sealers[ALICE].current)
    left_at = clock.now
    notice_delay = 0.05
    clock.advance(notice_delay)
    for name, sealer in sealers.items():
        announced = sealer.rotate()
        if name == ALICE:
            bob_view.add_key(
                ALICE, GroupCallFrameKey(b"c" * 16, announced.key_id, announced.key).frame_key()
            )
    opened_after: list[float] = []
    bob_heard = 0
    sent = 0
    for index in range(300):  # 6 s of 20 ms frames from each
        clock.advance(0.02)
        for name, sealer in sealers.items():
            frame = sealer.seal(b"voice", index * 960, level_byte(-20, voice=True))
            sent += 1
            if carol.open(frame) is not None:
                opened_after.append(clock.now - left_at)
            if name == ALICE and bob_view.open(frame) is not None:
                bob_heard += 1
    assert bob_heard == 300  # the remaining participants lose nothing across the rotation
    assert opened_after, "frames before the switch-over are still under the old key"
    assert max(opened_after) <= notice_delay + SWITCH_OVER_S + 1e-9
    assert sum(1 for t in opened_after if t > 3.5) == 0
    assert carol.counters.opened == len(opened_after) < sent


def test_join_token_and_room_id() -> None:
    call_id, secret = b"i" * 16, b"s" * 32
    token = group_join_token(call_id, secret)
    assert len(token) == 32 and token != secret
    assert group_join_token(b"j" * 16, secret) != token
    assert room_id(token) != token and len(room_id(token)) == 32
    # every member derives the same room (known answer)
    assert token.hex() == "c5175349203ef758fa4517ebff10ec3eccfbf9f00336beecdbdc3ef3eea5ed6b"
    assert "s" * 8 not in repr(GroupCallFrameKey(call_id, 1, secret))
