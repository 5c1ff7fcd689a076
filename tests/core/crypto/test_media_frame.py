"""Media frame AEAD: known answers, an independent implementation, tamper/replay/key/direction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.crypto.media_frame import (
    FLAG_CONTROL,
    MAX_SEQUENCE,
    MEDIA_HEADER_LEN,
    MalformedMediaFrame,
    MediaDirection,
    MediaFrameHeader,
    MediaFrameOpener,
    MediaFrameSealer,
    PayloadType,
    ReplayedMediaFrame,
    ReplayWindow,
    media_nonce,
    open_media_frame,
    seal_media_frame,
)
from messenger_tui.core.errors import CryptoError, DecryptionFailed

from ._util import flip_bit, ref_xchacha_encrypt

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TO_CALLEE = MediaDirection.CALLER_TO_CALLEE
TO_CALLER = MediaDirection.CALLEE_TO_CALLER

# Frozen: frame 7 (timestamp 6720), payload b"opus frame seven", key 00..1f, caller -> callee.
KNOWN_FRAME = bytes.fromhex(
    "0100010000000700001a40"  # version 1, flags 0, type OPUS, sequence 7, timestamp 6720
    "e55f9e5b1cdf59acb173d41913a4e411"  # ciphertext of the 16-byte payload
    "d49166a910a0147b580693ad8b512e44"  # Poly1305 tag
)


# Frozen: control-stream frame 7 (timestamp 6720), payload b"report number 7!", same key.
KNOWN_CONTROL_FRAME = bytes.fromhex(
    "0101030000000700001a40"  # version 1, flags CONTROL, type REPORT, sequence 7, timestamp 6720
    "04ddb4f525cf899b80770ad2a5b13fbe"  # ciphertext of the 16-byte payload
    "7f93f7f3f233fad69ac95a0d2bf36518"  # Poly1305 tag
)


def test_known_answer_byte_exact() -> None:
    header = MediaFrameHeader(sequence=7, timestamp=6720, payload_type=PayloadType.OPUS)
    frame = seal_media_frame(KEY, TO_CALLEE, header, b"opus frame seven")
    assert frame == KNOWN_FRAME
    opened = open_media_frame(KEY, TO_CALLEE, KNOWN_FRAME)
    assert opened.payload == b"opus frame seven"
    assert opened.header == header


def test_construction_matches_independent_xchacha() -> None:
    """Header as AD, nonce = direction || 15 zeros || u64 sequence, checked with `cryptography`."""
    nonce = bytes([0]) + bytes(15) + (7).to_bytes(8, "big")
    assert media_nonce(TO_CALLEE, 7) == nonce
    header = KNOWN_FRAME[:MEDIA_HEADER_LEN]
    assert KNOWN_FRAME[MEDIA_HEADER_LEN:] == ref_xchacha_encrypt(
        KEY, nonce, b"opus frame seven", header
    )
    assert media_nonce(TO_CALLER, 7)[0] == 1


def test_control_stream_known_answer_and_its_own_nonces() -> None:
    """Reports: flag bit 0 in the header and stream byte 1 in the nonce, checked with
    `cryptography`; audio frame 7 and control frame 7 never share a (key, nonce)."""
    header = MediaFrameHeader(7, 6720, PayloadType.REPORT, FLAG_CONTROL)
    assert header.control
    frame = seal_media_frame(KEY, TO_CALLEE, header, b"report number 7!")
    assert frame == KNOWN_CONTROL_FRAME
    nonce = bytes([0, 1]) + bytes(14) + (7).to_bytes(8, "big")
    assert media_nonce(TO_CALLEE, 7, control=True) == nonce != media_nonce(TO_CALLEE, 7)
    assert frame[MEDIA_HEADER_LEN:] == ref_xchacha_encrypt(
        KEY, nonce, b"report number 7!", frame[:MEDIA_HEADER_LEN]
    )
    sealer = MediaFrameSealer(KEY, TO_CALLEE, first_sequence=7, control=True)
    assert sealer.control and "control" in repr(sealer)
    assert sealer.seal(b"report number 7!", 6720) == KNOWN_CONTROL_FRAME
    opened = open_media_frame(KEY, TO_CALLEE, KNOWN_CONTROL_FRAME)
    assert opened.header == header and opened.payload == b"report number 7!"


def test_streams_have_separate_numbers_and_replay_windows() -> None:
    audio = MediaFrameSealer(KEY, TO_CALLEE)
    control = MediaFrameSealer(KEY, TO_CALLEE, control=True)
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    frames = [audio.seal(b"a", 0), control.seal(b"r", 0), audio.seal(b"b", 960)]
    assert [MediaFrameHeader.unpack(f).sequence for f in frames] == [0, 0, 1]
    opened = [opener.open(f) for f in frames]
    assert all(opened) and opener.counters.opened == 3 and opener.counters.control == 1
    assert [o.header.control for o in opened if o] == [False, True, False]
    assert opener.open(frames[1]) is None and opener.counters.replayed == 1  # control replay
    # moving a frame to the other stream (flag flipped) never authenticates
    moved = frames[0][:1] + bytes([FLAG_CONTROL]) + bytes([PayloadType.REPORT]) + frames[0][3:]
    assert opener.open(moved) is None and opener.counters.auth_failed == 1


def test_payload_types_belong_to_one_stream() -> None:
    with pytest.raises(ValueError):
        MediaFrameHeader(0, 0, PayloadType.REPORT).pack()  # a report on the audio stream
    with pytest.raises(ValueError):
        MediaFrameHeader(0, 0, PayloadType.OPUS, FLAG_CONTROL).pack()
    with pytest.raises(ValueError):
        MediaFrameSealer(KEY, TO_CALLEE).seal(b"r", 0, PayloadType.REPORT)
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    for data in (
        KNOWN_CONTROL_FRAME[:1] + b"\x00" + KNOWN_CONTROL_FRAME[2:],  # report without the flag
        KNOWN_FRAME[:1] + b"\x01" + KNOWN_FRAME[2:],  # opus with the flag
        KNOWN_FRAME[:1] + b"\x02" + KNOWN_FRAME[2:],  # an unknown flag
    ):
        with pytest.raises(MalformedMediaFrame):
            opener.open(data, strict=True)


def test_sealer_numbers_frames_and_never_repeats_a_nonce() -> None:
    sealer = MediaFrameSealer(KEY, TO_CALLEE)
    frames = [sealer.seal(b"x" * 60, timestamp=960 * i) for i in range(5)]
    sealer.skip(2)
    frames.append(sealer.seal(b"x" * 60, timestamp=960 * 7, payload_type=PayloadType.OPUS_RED))
    seqs = [MediaFrameHeader.unpack(f).sequence for f in frames]
    assert seqs == [0, 1, 2, 3, 4, 7]
    assert len({f[MEDIA_HEADER_LEN:] for f in frames}) == 6  # same payload, distinct boxes
    assert sealer.next_sequence == 8
    assert "key" not in repr(sealer) and KEY.hex() not in repr(sealer)


def test_sealer_refuses_to_wrap() -> None:
    sealer = MediaFrameSealer(KEY, TO_CALLEE, first_sequence=MAX_SEQUENCE)
    sealer.seal(b"last", 0)
    with pytest.raises(OverflowError):
        sealer.seal(b"one too many", 0)


def test_roundtrip_in_order_and_reordered() -> None:
    sealer = MediaFrameSealer(KEY, TO_CALLEE)
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    frames = [sealer.seal(bytes([i]) * 60, 960 * i) for i in range(10)]
    order = [0, 2, 1, 3, 5, 4, 9, 6, 8, 7]
    opened = [opener.open(frames[i]) for i in order]
    assert [f.payload[0] for f in opened if f] == order
    assert opener.counters.opened == 10 and opener.counters.dropped == 0


def test_every_bit_of_the_frame_is_authenticated() -> None:
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    for bit in range(len(KNOWN_FRAME) * 8):
        assert opener.open(flip_bit(KNOWN_FRAME, bit)) is None
    c = opener.counters
    # header bits in version/flags/type make it malformed, everything else fails the tag
    assert c.malformed + c.auth_failed == len(KNOWN_FRAME) * 8
    assert c.auth_failed >= (len(KNOWN_FRAME) - 3) * 8
    assert c.opened == 0
    # a clean copy still opens afterwards: failures changed nothing
    assert opener.open(KNOWN_FRAME) is not None


def test_replay_is_dropped_and_counted() -> None:
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    assert opener.open(KNOWN_FRAME) is not None
    assert opener.open(KNOWN_FRAME) is None
    assert opener.counters.replayed == 1
    with pytest.raises(ReplayedMediaFrame):
        opener.open(KNOWN_FRAME, strict=True)
    assert opener.counters.replayed == 2 and opener.counters.opened == 1


def test_frames_older_than_the_window_are_dropped() -> None:
    sealer = MediaFrameSealer(KEY, TO_CALLEE)
    opener = MediaFrameOpener(KEY, TO_CALLEE, window=8)
    old = sealer.seal(b"old", 0)
    sealer.skip(20)
    assert opener.open(sealer.seal(b"new", 0)) is not None
    assert opener.open(old) is None
    assert opener.counters.too_old == 1


def test_wrong_key_and_wrong_direction_fail_authentication() -> None:
    for opener in (
        MediaFrameOpener(OTHER_KEY, TO_CALLEE),  # wrong key
        MediaFrameOpener(KEY, TO_CALLER),  # our own frame reflected back to us
    ):
        assert opener.open(KNOWN_FRAME) is None
        assert opener.counters.auth_failed == 1
        with pytest.raises(DecryptionFailed):
            opener.open(KNOWN_FRAME, strict=True)


def test_forged_frames_do_not_advance_the_window() -> None:
    """A forged frame with a huge sequence number must not push real frames out."""
    sealer = MediaFrameSealer(KEY, TO_CALLEE)
    opener = MediaFrameOpener(KEY, TO_CALLEE, window=16)
    first = sealer.seal(b"a", 0)
    forged = MediaFrameHeader(sequence=1_000_000, timestamp=0).pack() + bytes(32)
    assert opener.open(forged) is None
    assert opener.open(first) is not None


def test_malformed_frames() -> None:
    opener = MediaFrameOpener(KEY, TO_CALLEE)
    cases = [
        b"",
        KNOWN_FRAME[:5],  # shorter than a header
        KNOWN_FRAME[: MEDIA_HEADER_LEN + 3],  # shorter than header + tag
        b"\x02" + KNOWN_FRAME[1:],  # unknown version
        KNOWN_FRAME[:1] + b"\x04" + KNOWN_FRAME[2:],  # reserved flag
        KNOWN_FRAME[:2] + b"\x09" + KNOWN_FRAME[3:],  # unknown payload type
        KNOWN_FRAME[:MEDIA_HEADER_LEN] + bytes(5000),  # too large
    ]
    for data in cases:
        assert opener.open(data) is None
        with pytest.raises(MalformedMediaFrame):
            opener.open(data, strict=True)
    assert opener.counters.malformed == 2 * len(cases)


def test_key_and_payload_sizes_are_checked() -> None:
    header = MediaFrameHeader(0, 0)
    with pytest.raises(CryptoError):
        seal_media_frame(b"short", TO_CALLEE, header, b"")
    with pytest.raises(CryptoError):
        MediaFrameOpener(b"short", TO_CALLEE)
    with pytest.raises(ValueError):
        seal_media_frame(KEY, TO_CALLEE, header, bytes(5000))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=200), st.integers(1, 64))
def test_replay_window_matches_a_simple_model(seqs: list[int], size: int) -> None:
    """Accept a number once; refuse numbers `size` or more below the highest accepted."""
    window = ReplayWindow(size)
    seen: set[int] = set()
    highest = -1
    for seq in seqs:
        expected = "too_old" if seq <= highest - size else "replay" if seq in seen else "new"
        assert window.check(seq) == expected
        if expected == "new":
            window.accept(seq)
            seen.add(seq)
            highest = max(highest, seq)
