"""The media leg's hand framing (transport/media_frames.py): byte-exact against websockets'
own frames, the splitter's partition of any server byte stream under any chunking, and a
MediaConnection against a real websockets server that mixes media frames with pings,
fragmented and text messages, cut at arbitrary points."""

from __future__ import annotations

import asyncio
import itertools
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader

from messenger_tui.transport import media_frames
from messenger_tui.transport.media_frames import (
    MaskKeys,
    ServerFrameSplitter,
    client_binary_frame,
    parser_between_frames,
)
from messenger_tui.transport.media_link import MAX_MESSAGE, MediaConnection

MEDIA = 0x01


def serialize(frame: Frame, *, mask: bool = False) -> bytes:
    return frame.serialize(mask=mask, extensions=[])


def parse_client_frame(data: bytes) -> Frame:
    """How a server (websockets) reads ``data``: exactly one masked frame, nothing left."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=True, max_size=None)
    with pytest.raises(StopIteration) as done:
        next(parser)
    assert not reader.buffer
    frame: Frame = done.value.value
    return frame


# ---------------------------------------------------------------------- sending


@pytest.mark.parametrize("size", [1, 125, 126, 181, 1500, 65535])
def test_client_frame_is_byte_for_byte_websockets(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"\x01" + os.urandom(size - 1)
    mask = os.urandom(4)
    monkeypatch.setattr("websockets.frames.secrets.token_bytes", lambda n: mask)
    expected = serialize(Frame(Opcode.BINARY, payload), mask=True)
    assert client_binary_frame(payload, mask) == expected
    frame = parse_client_frame(client_binary_frame(payload, mask))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload)


def test_client_frame_refuses_empty_and_oversized_payloads() -> None:
    with pytest.raises(ValueError, match="never empty"):
        client_binary_frame(b"", bytes(4))
    with pytest.raises(ValueError, match="65,535"):
        client_binary_frame(bytes(65536), bytes(4))


def test_mask_keys_are_fresh_four_byte_keys() -> None:
    keys = MaskKeys()
    drawn = [keys.next() for _ in range(3000)]  # crosses two 4 KiB refills
    assert all(len(k) == 4 for k in drawn)
    assert len(set(drawn)) > 2990  # 32-bit random keys: a handful of repeats at most


# ---------------------------------------------------------------------- splitting

FRAMES = st.one_of(
    st.builds(lambda n: Frame(Opcode.BINARY, b"\x01" + os.urandom(n)), st.integers(0, 1400)),
    st.builds(lambda b: Frame(Opcode.BINARY, b), st.binary(max_size=300)),  # control message
    st.builds(lambda t: Frame(Opcode.TEXT, t.encode()), st.text(max_size=200)),
    st.builds(lambda b: Frame(Opcode.PING, b), st.binary(max_size=125)),
    st.builds(lambda b: Frame(Opcode.PONG, b), st.binary(max_size=125)),
    st.builds(lambda b: Frame(Opcode.BINARY, b, fin=False), st.binary(max_size=50)),
    st.builds(lambda b: Frame(Opcode.CONT, b), st.binary(max_size=50)),
    st.builds(lambda n: Frame(Opcode.BINARY, b"\x01" * n), st.integers(MAX_MESSAGE, 9000)),
)


def is_media(frame: Frame) -> bool:
    return frame.opcode is Opcode.BINARY and frame.fin and frame.data[:1] == b"\x01"


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(FRAMES, max_size=12),
    cuts=st.lists(st.integers(0, 20_000), max_size=8),
    closing_after=st.integers(0, 15),
)
def test_splitter_partitions_any_stream_under_any_chunking(
    frames: list[Frame], cuts: list[int], closing_after: int
) -> None:
    """Media frames taken out, every other byte handed on in order: what the splitter
    delivered plus what it handed to websockets is the stream, frame for frame."""
    stream = b"".join(serialize(f) for f in frames)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    taken: list[bytes] = []
    handed: list[bytes] = []  # whole frames, then (after giving up) raw rest
    others = 0

    def on_other(frame: bytes) -> bool:
        nonlocal others
        handed.append(frame)
        others += 1
        return others <= closing_after  # "the connection is closing" after that many

    splitter = ServerFrameSplitter(
        taken.append, on_other, max_size=MAX_MESSAGE, media_first_byte=MEDIA
    )
    gave_up = False
    for chunk in chunks:
        if gave_up:
            handed.append(chunk)
            continue
        rest = splitter.feed(chunk)
        if rest is not None:
            gave_up = True
            handed.append(rest)
    if not gave_up:
        handed.append(splitter.take_pending())

    # the model: media taken and other whole frames handed on, until the first frame only
    # websockets may judge (or the connection closing); from there on, every byte handed on
    expected_taken: list[bytes] = []
    expected_handed = b""
    model_gave_up = False
    model_others = 0
    for frame in frames:
        data = serialize(frame)
        if model_gave_up:
            expected_handed += data
        elif not frame.fin or frame.opcode is Opcode.CONT or len(frame.data) > MAX_MESSAGE:
            model_gave_up = True
            expected_handed += data
        elif is_media(frame):
            expected_taken.append(bytes(frame.data))
        else:
            expected_handed += data
            model_others += 1
            model_gave_up = model_others > closing_after
    assert taken == expected_taken
    assert b"".join(handed) == expected_handed
    assert all(isinstance(t, bytes) for t in taken)


def test_splitter_takes_media_and_hands_whole_frames_in_order() -> None:
    media = [b"\x01" + os.urandom(180), b"\x01" + os.urandom(300)]
    ping = serialize(Frame(Opcode.PING, b"hi"))
    text = serialize(Frame(Opcode.TEXT, b"{}"))
    stream = serialize(Frame(Opcode.BINARY, media[0])) + ping + text
    stream += serialize(Frame(Opcode.BINARY, media[1]))
    log: list[tuple[str, bytes]] = []

    def on_other(f: bytes) -> bool:
        log.append(("other", f))
        return True

    splitter = ServerFrameSplitter(
        lambda f: log.append(("media", f)),
        on_other,
        max_size=MAX_MESSAGE,
        media_first_byte=MEDIA,
    )
    for byte in range(len(stream)):  # one byte at a time: every cut point
        assert splitter.feed(stream[byte : byte + 1]) is None
    assert log == [("media", media[0]), ("other", ping), ("other", text), ("media", media[1])]
    assert splitter.take_pending() == b""


def with_rsv1(frame: bytes) -> bytes:
    return bytes([frame[0] | 0x40]) + frame[1:]


@pytest.mark.parametrize(
    "data",
    [
        serialize(Frame(Opcode.BINARY, b"\x01abc", fin=False)),  # a fragment
        serialize(Frame(Opcode.CONT, b"abc")),
        with_rsv1(serialize(Frame(Opcode.BINARY, b"\x01abc"))),  # an extension's bit
        serialize(Frame(Opcode.BINARY, b"\x01" * (MAX_MESSAGE + 1))),  # over the limit
        serialize(Frame(Opcode.BINARY, b"\x01" * 70_000)),  # a 64-bit length
    ],
    ids=["fragment", "continuation", "rsv1", "over-limit", "64-bit-length"],
)
def test_splitter_gives_up_on_what_websockets_must_judge(data: bytes) -> None:
    before = serialize(Frame(Opcode.BINARY, b"\x01x"))
    taken: list[bytes] = []
    splitter = ServerFrameSplitter(
        taken.append, lambda f: True, max_size=MAX_MESSAGE, media_first_byte=MEDIA
    )
    assert splitter.feed(before + data) == data
    assert taken == [b"\x01x"]
    assert splitter.take_pending() == b""


def test_splitter_gives_up_on_a_masked_server_frame() -> None:
    data = serialize(Frame(Opcode.BINARY, b"\x01abc"), mask=True)
    splitter = ServerFrameSplitter(
        print, lambda f: True, max_size=MAX_MESSAGE, media_first_byte=MEDIA
    )
    assert splitter.feed(data) == data


# ---------------------------------------------------------------------- a real connection


async def test_media_connection_splits_a_real_stream_and_websockets_keeps_the_rest() -> None:
    """A websockets server writes media frames between pings, a fragmented message, text and
    binary control messages, cut at random points; the client's splitter takes the media,
    websockets answers the pings and assembles the messages, and the media keeps flowing
    through the splitter after each hand-over."""
    rng = random.Random(7)
    media = [b"\x01" + rng.randbytes(rng.randrange(20, 400)) for _ in range(120)]
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        assert await ws.recv() == "go"
        for i, frame in enumerate(media):
            raw = serialize(Frame(Opcode.BINARY, frame))
            if i == 40:  # a fragmented message: the splitter hands over, then takes back
                raw += serialize(Frame(Opcode.BINARY, b"frag", fin=False))
                raw += serialize(Frame(Opcode.CONT, b"ment"))
            if i == 60:
                raw += serialize(Frame(Opcode.TEXT, b'{"peer": true}'))
            cut = rng.randrange(len(raw) + 1)
            ws.transport.write(raw[:cut])
            await asyncio.sleep(0)
            ws.transport.write(raw[cut:])
            if i % 30 == 10:  # websockets resolves the pong only if the client answered it
                async with asyncio.timeout(2):
                    await (await ws.ping(b"p%d" % i))
        await done.wait()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=MediaConnection, compression=None
        ) as ws:
            assert isinstance(ws, MediaConnection)
            got: list[bytes] = []
            ws.on_media_frame = got.append
            await ws.send("go")
            async with asyncio.timeout(5):
                assert await ws.recv() == b"fragment"
                assert await ws.recv() == '{"peer": true}'
                while len(got) < len(media):
                    await asyncio.sleep(0.01)
            assert got == media
            # everything but the media right around the hand-over went through the splitter
            assert ws.split_frames >= len(media) - 5
            assert ws.protocol.state is State.OPEN
            done.set()


async def test_parser_between_frames_follows_websockets_parser() -> None:
    async def handler(ws: ServerConnection) -> None:
        ws.transport.write(serialize(Frame(Opcode.BINARY, b"\x01abcdef"))[:2])  # header only
        await asyncio.sleep(3)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            # right after the handshake: between frames (unless the header already came)
            for _ in range(100):
                if not parser_between_frames(ws.protocol):
                    break
                await asyncio.sleep(0.01)
            # the header is consumed and the payload awaited: not a place to take over
            assert not parser_between_frames(ws.protocol)
            assert not ws.protocol.reader.buffer


def test_parser_check_fails_safe_on_an_unknown_parser() -> None:
    class Unknown:
        state = State.OPEN
        current_size = None
        parser = iter(())

        class reader:
            buffer = b""

    assert media_frames.parser_between_frames(Unknown()) is False  # type: ignore[arg-type]
