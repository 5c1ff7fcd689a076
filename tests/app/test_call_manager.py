"""CallManager with its I/O edges replaced (a unit test of the app layer): two managers wired
back to back through an in-memory signalling channel, fake media links and sessions. The real
relay, media route and audio are exercised end to end in tests/integration/test_calls_e2e.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.call_log import call_log_text, format_duration
from messenger_tui.app.calls import CallManager, MediaCarrierLink
from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import CallView, Contact, ContactId, Message
from messenger_tui.core.calls.media_keys import CallRole, MediaKeys
from messenger_tui.core.calls.messages import decode_call_message
from messenger_tui.core.calls.signalling import CallSignalling, CallTimeouts
from messenger_tui.core.calls.states import CallInfo, CallState, EndReason, EventSource
from messenger_tui.media.codec import CodecUnavailable
from messenger_tui.media.ports import AudioSink, AudioSource, AudioUnavailable
from messenger_tui.media.stats import MediaHistory, MediaStats


class FakeLink:
    def __init__(self, token: bytes, leg: int, on_state: Callable[[str], None]) -> None:
        self.token, self.leg, self.on_state = token, leg, on_state
        self.on_frame: Callable[[bytes], None] | None = None
        self.sent: list[bytes] = []
        self.started = self.closed = False

    def send(self, frame: bytes) -> bool:
        self.sent.append(frame)
        return True

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self.on_frame = on_frame
        self.started = True
        self.on_state("joined")

    async def close(self) -> None:
        self.closed = True


class FakeSession:
    def __init__(
        self,
        keys: MediaKeys,
        carrier: FakeLink,
        on_connected: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.keys, self.on_connected, self.on_lost = keys, on_connected, on_lost
        self.carrier = carrier
        self.muted = False
        self.started = self.stopped = False
        self.start_error: AudioUnavailable | None = None
        self.opening: asyncio.Event | None = None  # set: the devices finished opening

    async def start_async(self) -> None:
        self.carrier.start(self.receive)  # as the real one: the link connects meanwhile
        await asyncio.sleep(0)  # the real one may hop to a worker thread
        if self.opening is not None:
            await self.opening.wait()
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    def receive(self, frame: bytes) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    def stats(self) -> MediaStats:
        return MediaStats(
            rtt_ms=12.5,
            jitter_ms=3.0,
            capturing=True,
            concealed_plc=2,
            concealed_fec=1,
            history=MediaHistory(rtt_ms=(None, 10.0, 12.5)),
        )


def capture_muted(session: FakeSession) -> bool:
    """Whether the session's capture is muted now. A function, so that the type checker reads
    it afresh after each manager call instead of keeping what an earlier assert narrowed."""
    return session.muted


class NullSource:
    """An audio source that never captures (the fake sessions do not start their ends)."""

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        pass

    def stop(self) -> None:
        pass


class NullSink:
    """An audio sink that never plays."""

    def start(self, pull: Callable[[], bytes]) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class Phone:
    name: str
    identity: bytes
    clock: list[int]
    events: list[ev.Event] = field(default_factory=list)
    log: list[tuple[bytes, str]] = field(default_factory=list)
    links: list[FakeLink] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)
    peer: Phone | None = None
    manager: CallManager | None = None
    audio_error: AudioUnavailable | None = None
    session_error: Exception | None = None
    start_error: AudioUnavailable | None = None
    opening: asyncio.Event | None = None
    deliver_signals: bool = True

    def build(self, timeouts: CallTimeouts | None = None) -> CallManager:
        async def send_signal(peer: bytes, plaintext: bytes) -> bool:
            assert self.peer is not None and peer == self.peer.identity
            if not self.deliver_signals:
                return False
            message = decode_call_message(plaintext)  # what the ratchet would carry
            target = self.peer
            asyncio.get_running_loop().call_soon(lambda: target.m.on_signal(self.identity, message))
            return True

        def contact_for(identity: bytes) -> Contact | None:
            if self.peer is None or identity != self.peer.identity:
                return None
            return Contact(ContactId(1), self.peer.name, identity, False, False, False, False)

        def log_call(info: CallInfo, text: str) -> Message:
            self.log.append((info.call_id, text))
            return Message(
                len(self.log), info.call_id, ContactId(1), info.outgoing, "call", text, 0, 0, "seen"
            )

        def open_link(token: bytes, leg: int, on_state: Callable[[str], None]) -> FakeLink:
            link = FakeLink(token, leg, on_state)
            self.links.append(link)
            return link

        def make_session(
            keys: MediaKeys,
            carrier: MediaCarrierLink,
            source: AudioSource,
            sink: AudioSink,
            on_connected: Callable[[], None],
            on_lost: Callable[[str], None],
        ) -> FakeSession:
            assert isinstance(carrier, FakeLink)  # open_link above made it
            if self.session_error is not None:
                raise self.session_error
            session = FakeSession(keys, carrier, on_connected, on_lost)
            session.start_error, session.opening = self.start_error, self.opening
            self.sessions.append(session)
            return session

        def audio() -> tuple[AudioSource, AudioSink]:
            if self.audio_error is not None:
                raise self.audio_error
            return NullSource(), NullSink()

        self.manager = CallManager(
            now_ms=lambda: self.clock[0] + int(time.monotonic() * 1000),
            send_signal=send_signal,
            contact_for=contact_for,
            log_call=log_call,
            emit=self.events.append,
            open_link=open_link,
            make_session=make_session,
            audio_factory=audio,
            signalling=CallSignalling(timeouts=timeouts),
        )
        return self.manager

    @property
    def m(self) -> CallManager:
        assert self.manager is not None
        return self.manager

    def view(self) -> CallView:
        """The manager's current call, which the test expects to exist."""
        view = self.m.current()
        assert view is not None, "no call"
        return view

    def states(self) -> list[str]:
        return [e.call.state for e in self.events if isinstance(e, ev.CallChanged)]


_open: list[Phone] = []


@pytest.fixture(autouse=True)
async def _close_phones() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().m.close()


def pair(timeouts: CallTimeouts | None = None) -> tuple[Phone, Phone]:
    clock = [0]
    alice = Phone("alice", b"A" * 32, clock)
    bob = Phone("bob", b"B" * 32, clock)
    alice.peer, bob.peer = bob, alice
    alice.build(timeouts)
    bob.build(timeouts)
    _open.extend((alice, bob))
    return alice, bob


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def bob_contact(alice: Phone) -> Contact:
    assert alice.peer is not None
    return Contact(ContactId(1), "bob", alice.peer.identity, False, False, False, False)


async def test_call_rings_connects_and_hangs_up_with_log_on_both_sides() -> None:
    alice, bob = pair()
    view = alice.m.place_call(bob_contact(alice))
    assert view.state == "outgoing_ringing" and view.outgoing
    await until(lambda: bob.m.current() is not None)
    await settle()
    assert bob.view().state == "incoming_ringing"
    assert alice.view().peer_ringing

    bob.m.accept()
    await until(lambda: bool(alice.sessions) and bool(bob.sessions))
    # Both derived the same keys from the exchange: send of one = receive of the other.
    assert alice.sessions[0].keys.send_key == bob.sessions[0].keys.receive_key
    assert alice.links[0].token == bob.links[0].token
    assert (alice.links[0].leg, bob.links[0].leg) == (0, 1)
    assert alice.sessions[0].started and bob.sessions[0].started
    await until(lambda: alice.links[0].started and bob.links[0].started)

    alice.sessions[0].on_connected()  # first authentic frame from bob
    bob.sessions[0].on_connected()
    assert alice.view().state == "active"
    assert bob.view().state == "active"
    stats = alice.m.stats()
    assert stats is not None and stats.rtt_ms == 12.5 and stats.capturing
    assert stats.concealed_frames == 3 and stats.rtt_history == (10.0, 12.5)

    alice.clock[0] += 65_000  # a minute and five seconds of talk
    alice.m.hang_up()
    await until(lambda: bob.view().state == "ended")
    await until(lambda: alice.links[0].closed and bob.links[0].closed)
    assert alice.sessions[0].stopped and bob.sessions[0].stopped
    assert [t for _, t in alice.log] == ["Outgoing call, 1:05"]
    assert [t for _, t in bob.log] == ["Incoming call, 1:05"]
    assert bob.view().end_reason == "hung_up"
    assert "incoming_ringing" in bob.states() and "active" in alice.states()
    assert any(isinstance(e, ev.MessageReceived) for e in bob.events)


async def test_decline_logs_declined_on_both_sides() -> None:
    alice, bob = pair()
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.decline()
    await until(lambda: alice.view().state == "ended")
    assert alice.view().end_reason == "declined"
    assert [t for _, t in alice.log] == ["Outgoing call, declined"]
    assert [t for _, t in bob.log] == ["Declined call"]
    assert not alice.links and not bob.links  # no media for a call never answered


async def test_no_answer_timer_fires_from_the_loop() -> None:
    alice, bob = pair(CallTimeouts(no_answer_ms=150))
    alice.m.place_call(bob_contact(alice))
    await until(lambda: alice.view().state == "ended", 3.0)
    await until(lambda: (v := bob.m.current()) is not None and v.state == "ended")
    assert alice.view().end_reason == "no_answer"
    assert [t for _, t in alice.log] == ["Outgoing call, no answer"]
    assert [t for _, t in bob.log] == ["Missed call"]


async def test_media_lost_ends_the_call_with_that_reason() -> None:
    alice, bob = pair()
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bool(alice.sessions) and bool(bob.sessions))
    alice.sessions[0].on_connected()
    bob.sessions[0].on_connected()
    alice.links[0].on_state("reconnecting")
    assert alice.view().link == "reconnecting"
    alice.links[0].on_state("lost")  # the link stayed down past its window
    await until(lambda: bob.view().state == "ended")
    assert alice.view().end_reason == "connection_lost"
    assert bob.view().end_reason == "connection_lost"
    assert alice.log[0][1].endswith("(connection lost)")


async def test_missing_audio_device_fails_the_call_with_the_reason() -> None:
    alice, bob = pair()
    alice.audio_error = AudioUnavailable("no microphone found", "connect one")
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bob.view().state == "ended")
    view = alice.m.current()
    assert view is not None and view.state == "ended" and view.end_reason == "failed"
    assert view.problem == "no microphone found (connect one)"
    assert not alice.sessions


async def test_a_device_that_fails_to_open_fails_the_call_with_the_reason() -> None:
    alice, bob = pair()
    alice.start_error = AudioUnavailable("the microphone is busy", "close the other app")
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bob.view().state == "ended")
    view = alice.m.current()
    assert view is not None and view.end_reason == "failed"
    assert view.problem == "the microphone is busy (close the other app)"
    await until(lambda: alice.sessions[0].stopped and alice.links[0].closed)


async def test_hanging_up_while_the_devices_open_stops_the_session_and_the_link() -> None:
    alice, bob = pair()
    alice.opening = asyncio.Event()
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bool(alice.sessions))
    await settle()
    assert alice.view().state in ("connecting", "active")
    alice.m.hang_up()  # the UI stays live while the devices open: hanging up works
    await until(lambda: alice.sessions[0].stopped and alice.links[0].closed)
    alice.opening.set()  # the open finishes after the hang-up: no failure, no problem
    await settle()
    view = alice.m.current()
    assert view is not None and view.end_reason == "hung_up" and view.problem is None
    await until(lambda: bob.view().state == "ended")


async def test_missing_libopus_fails_the_call_with_the_reason_not_a_crash() -> None:
    alice, bob = pair()
    bob.session_error = CodecUnavailable("libopus is not available", "install libopus0")
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()  # must not raise into the UI
    await until(lambda: alice.view().state == "ended")
    view = bob.m.current()
    assert view is not None and view.state == "ended" and view.end_reason == "failed"
    assert view.problem == "libopus is not available (install libopus0)"
    await until(lambda: bool(bob.links) and bob.links[0].closed)


async def test_a_second_call_or_accepting_nothing_is_refused() -> None:
    alice, _bob = pair()
    alice.m.place_call(bob_contact(alice))
    with pytest.raises(BadInput):
        alice.m.place_call(Contact(ContactId(2), "carol", b"C" * 32, False, False, False, False))
    with pytest.raises(BadInput):
        alice.m.accept()  # nothing rings here


async def test_mute_reaches_the_session_and_the_view() -> None:
    alice, bob = pair()
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bool(alice.sessions))
    alice.m.set_muted(True)
    assert alice.sessions[0].muted and alice.view().muted


async def test_the_mic_gate_mutes_the_capture_while_closed() -> None:
    """Hold-to-talk: a gated call starts with the capture muted; opening the gate unmutes it
    (on the session at once), muting wins over an open gate, and the next call starts
    closed again."""
    alice, bob = pair()
    alice.m.gated = True
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bool(alice.sessions))
    session = alice.sessions[0]
    view = alice.m.current()
    assert view is not None and capture_muted(session) and not view.talking and not view.muted
    alice.m.set_talking(True)
    assert not capture_muted(session) and alice.view().talking
    alice.m.set_muted(True)
    assert capture_muted(session)
    alice.m.set_muted(False)
    alice.m.set_talking(False)
    assert capture_muted(session)


async def test_close_hangs_up_and_tells_the_peer() -> None:
    alice, bob = pair()
    alice.m.place_call(bob_contact(alice))
    await until(lambda: bob.m.current() is not None)
    bob.m.accept()
    await until(lambda: bool(alice.sessions))
    await alice.m.close()
    await until(lambda: bob.view().state == "ended")
    assert alice.links[0].closed


def info(role: CallRole, reason: EndReason, *, active: bool, by: EventSource) -> CallInfo:
    return CallInfo(
        call_id=b"x" * 16,
        peer=b"p" * 32,
        role=role,
        state=CallState.ENDED,
        created_ms=0,
        started_ms=0,
        accepted_ms=1000 if active else None,
        active_ms=1000 if active else None,
        ended_ms=3_726_000,
        end_reason=reason,
        ended_by=by,
    )


def test_call_log_texts() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(61_999) == "1:01"
    assert format_duration(3_725_000) == "1:02:05"
    caller, callee = CallRole.CALLER, CallRole.CALLEE
    peer, local, timer = EventSource.PEER, EventSource.LOCAL, EventSource.TIMER
    assert call_log_text(info(caller, EndReason.HUNG_UP, active=True, by=peer)) == (
        "Outgoing call, 1:02:05"
    )
    assert call_log_text(info(callee, EndReason.NO_ANSWER, active=False, by=timer)) == (
        "Missed call"
    )
    assert call_log_text(info(callee, EndReason.DECLINED, active=False, by=local)) == (
        "Declined call"
    )
    assert call_log_text(info(caller, EndReason.BUSY, active=False, by=peer)) == (
        "Outgoing call, busy"
    )
    assert call_log_text(info(caller, EndReason.HUNG_UP, active=False, by=local)) == (
        "Outgoing call, cancelled"
    )
