"""Three group call clients through a real relay process, without the app: the core machine
(GroupCall), the leg (GroupLink), the send and receive paths with real Opus. The E2E channel
is simulated by direct calls (the app's wiring is not built yet). Each plays its own tone and
hears the two others; a leaver's stream goes and the others rotate their keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from messenger_tui.core.calls.group_call import (
    ConnectLeg,
    DisconnectLeg,
    GroupCall,
    GroupCallState,
    GroupEffect,
    SendFrameKey,
    SendInvite,
)
from messenger_tui.core.calls.group_keys import GroupCallInvite
from messenger_tui.media.codec import OpusEncoder, load_opus
from messenger_tui.media.group_receive import GroupReceivePath
from messenger_tui.media.group_send import GroupSendPath
from messenger_tui.media.jitter_buffer import JitterBufferConfig
from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.transport.group_link import GroupLink
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import new_key

try:
    load_opus()
except Exception:  # pragma: no cover
    pytest.skip("libopus is not installed", allow_module_level=True)

GROUP = b"g" * 16


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    with RelayProcess() as process:
        yield process


def tone(freq: float, index: int) -> bytes:
    t = (np.arange(FRAME_SAMPLES) + index * FRAME_SAMPLES) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * 0.2 * 32767).astype("<i2").tobytes()


def band_db(pcm: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)
    return float(20 * np.log10(spectrum[(bins > freq - 30) & (bins < freq + 30)].max() + 1e-9))


class Client:
    def __init__(self, relay_url: str, freq: float, everyone: dict[bytes, Client]) -> None:
        self.key = new_key()
        self.identity = bytes(self.key.verify_key)
        self.freq = freq
        self.url = relay_url
        self.everyone = everyone
        everyone[self.identity] = self
        self.call = GroupCall(
            own=self.identity,
            group_id=GROUP,
            members=lambda: frozenset(everyone),
            clock=time.monotonic,
        )
        self.link: GroupLink | None = None
        self.send: GroupSendPath | None = None
        self.recv: GroupReceivePath | None = None
        self.out: list[bytes] = []
        self.ended: str | None = None

    def apply(self, effects: list[GroupEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendInvite):
                self.everyone[effect.member].invited(self.identity, effect.invite)
            elif isinstance(effect, SendFrameKey):
                self.everyone[effect.member].call.frame_key_received(self.identity, effect.key)
            elif isinstance(effect, ConnectLeg):
                self.link = GroupLink(
                    self.url,
                    self.identity,
                    lambda m: self.key.sign(m).signature,
                    join_token=effect.token,
                    on_frame=self.on_frame,
                    on_joined=self.on_joined,
                    on_member=self.on_member,
                    on_ended=self.on_ended,
                )
                self.link.start()
            elif isinstance(effect, DisconnectLeg):
                self.send = None

    def invited(self, sender: bytes, invite: GroupCallInvite) -> None:
        self.invite_effects = self.call.invite_received(sender, invite, int(time.time() * 1000))

    def on_joined(self, participants: list[bytes]) -> None:
        self.apply(self.call.relay_joined(participants))
        assert self.call.sealer is not None and self.call.opener is not None
        self.send = GroupSendPath(self.call.sealer, OpusEncoder())
        self.recv = GroupReceivePath(self.call.opener, JitterBufferConfig(), clock=time.monotonic)

    def on_member(self, identity: bytes, present: bool) -> None:
        self.apply(self.call.relay_member(identity, present))
        if not present and self.recv is not None:
            self.recv.remove(identity)

    def on_frame(self, frame: bytes) -> None:
        if self.recv is not None:
            self.recv.receive(frame)

    def on_ended(self, reason: str) -> None:
        self.ended = reason

    def tick(self, index: int) -> None:
        if self.send is not None and self.link is not None and self.link.joined:
            self.link.send(self.send.frame(tone(self.freq, index)))
        if self.recv is not None:
            self.out.append(self.recv.pull())

    def heard(self, last_frames: int) -> np.ndarray:
        return np.frombuffer(b"".join(self.out[-last_frames:]), dtype="<i2").astype(np.float64)


async def test_three_clients_hear_each_other_and_a_leaver_drops_out(relay: RelayProcess) -> None:
    everyone: dict[bytes, Client] = {}
    alice, bob, carol = (Client(relay.url, f, everyone) for f in (440.0, 1000.0, 2500.0))
    alice.apply(alice.call.start(int(time.time() * 1000)))
    for client in (bob, carol):
        assert client.call.state is GroupCallState.RINGING
        client.apply(client.call.join())
    for client in (alice, bob, carol):
        assert client.link is not None and await client.link.wait_joined(10)

    async def run(seconds: float, clients: list[Client], first: int) -> int:
        start = time.monotonic()
        index = first
        while time.monotonic() - start < seconds:
            for client in clients:
                client.tick(index)
            index += 1
            await asyncio.sleep(max(0.0, start + (index - first) * 0.02 - time.monotonic()))
        return index

    try:
        index = await run(3.0, [alice, bob, carol], 0)
        for client in (alice, bob, carol):
            pcm = client.heard(50)
            floor = band_db(pcm, 1700.0)
            others = [c.freq for c in (alice, bob, carol) if c is not client]
            for freq in others:
                assert band_db(pcm, freq) > floor + 25, (client.freq, freq)
            assert band_db(pcm, client.freq) < floor + 10  # never one's own voice
        rotations = alice.call.counters.rotations
        assert carol.link is not None
        await carol.link.leave()
        carol.apply(carol.call.leave())
        await run(2.0, [alice, bob], index)
        assert alice.call.counters.rotations == rotations + 1
        assert alice.call.participants == [bob.identity]
        pcm = alice.heard(50)
        floor = band_db(pcm, 1700.0)
        assert band_db(pcm, bob.freq) > floor + 25
        assert band_db(pcm, carol.freq) < floor + 10
    finally:
        for client in (alice, bob, carol):
            if client.link is not None:
                await client.link.close()
