"""Fuzz the relay's frame decoding (hypothesis): arbitrary bytes and structured-but-wrong
msgpack frames into every decode path must give a frame of the right type or
MalformedFrame, never another exception."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_tui.core import media_wire, wire
from messenger_tui.core.errors import MalformedFrame

DECODERS = (
    (wire.decode_client_frame, wire.Auth | wire.Send | wire.Ack | wire.PublishPrekeys),
    (wire.decode_relay_frame, object),
    (media_wire.decode_media_client_frame, media_wire.MediaJoin),
    (media_wire.decode_media_relay_frame, object),
)
TAGS = [
    "auth",
    "send",
    "ack",
    "publish_prekeys",
    "fetch_bundle",
    "subscribe",
    "signal",
    "media_join",
    "error",
    "deliver",
    "challenge",
    "x",
    "",
]
FIELDS = [
    "t",
    "id",
    "to",
    "body",
    "ids",
    "ref",
    "identity",
    "token",
    "leg",
    "opks",
    "spk",
    "time_ms",
    "signature",
    "code",
    "message",
    "x",
]

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=20,
)
frames = st.fixed_dictionaries({"t": st.sampled_from(TAGS)}).flatmap(
    lambda base: st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(
        lambda extra: {**extra, **base}
    )
)


def _check(data: bytes) -> None:
    for decode, _ in DECODERS:
        try:
            decode(data)
        except MalformedFrame:
            pass


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_frame_or_malformed(data: bytes) -> None:
    _check(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_structured_but_wrong_frames_give_a_frame_or_malformed(frame: dict[str, Any]) -> None:
    _check(msgspec.msgpack.encode(frame))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20_000), st.sampled_from([b"\x91", b"\x81\xa1k", b"\xdc\x00\x01"]))
def test_any_nesting_depth_gives_a_frame_or_malformed(depth: int, level: bytes) -> None:
    for tag in (b"auth", b"error", b"media_join"):
        _check(b"\x82\xa1t" + bytes([0xA0 | len(tag)]) + tag + b"\xa1x" + level * depth + b"\xc0")
