"""Calls in the app: the signalling machine, its timers, the media session and the call log.

:class:`CallManager` drives :class:`~messenger_tui.core.calls.signalling.CallSignalling` (the
sans-I/O transition table) and carries out the effects it returns:

* ``SendSignal``: the call message is sealed in the contact's ratchet session and sent as an
  ephemeral ``signal`` frame (the relay forwards it only to an online recipient and never
  stores it). Sends go out one at a time, in order, from one task.
* ``StartMedia`` / ``StopMedia``: a media link on the relay's media route (joined with the
  call's join token) and a :class:`~messenger_tui.media.session.MediaSession` between it and
  the audio source/sink that ``audio_factory`` makes (devices in the UI, WAV files headless,
  a delay loop for Echo). The session's first authentic frame is ``media_connected``; silence
  from the peer or a link that stays down for 10 s is ``media_lost``.
* ``StateChanged`` / ``PeerRinging``: a :class:`~messenger_tui.app.events.CallChanged` event.
* ``CallEnded`` / ``BusyRejected``: a call-log line in the conversation.

Timers: after every input the manager re-arms one loop timer at the machine's
``next_deadline_ms`` and calls ``poll`` when it fires.

The manager holds no secrets beyond the call (the machine forgets the media keys when the call
ends); it never logs keys, tokens or audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from messenger_tui.app import events as ev
from messenger_tui.app.call_log import call_log_text, call_stats
from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import CallStats, CallView, Contact, Message
from messenger_tui.core.calls import effects as fx
from messenger_tui.core.calls.media_keys import CallRole, MediaKeys
from messenger_tui.core.calls.messages import CallMessage, encode_call_message
from messenger_tui.core.calls.signalling import CallSignalling, CallStateError
from messenger_tui.core.calls.states import CallInfo, CallState, EndReason
from messenger_tui.media.codec import CodecUnavailable
from messenger_tui.media.ports import AudioFactory, AudioSink, AudioSource, AudioUnavailable
from messenger_tui.media.stats import MediaStats

log = logging.getLogger(__name__)

#: Makes the audio ends of a call. Called once per call when media starts.
#: How often the active call's statistics are published.
STATS_INTERVAL_S = 1.0


class MediaCarrierLink(Protocol):
    """What the manager needs of a media link (see transport/media_link.py); the media
    session starts it with its receive path (``start(on_frame)``)."""

    def send(self, frame: bytes) -> bool: ...
    def start(self, on_frame: Callable[[bytes], None]) -> None: ...
    async def close(self) -> None: ...


class MediaSessionLike(Protocol):
    """What the manager needs of a media session (see media/session.py)."""

    muted: bool

    async def start_async(self) -> None: ...
    async def stop(self) -> None: ...
    def stats(self) -> MediaStats: ...


#: ``open_link(join_token, leg, on_state)``: a media link, not yet started (the session
#: starts it). ``on_state`` gets the link state's name in lower case (connecting, joined,
#: reconnecting, lost, closed).
LinkFactory = Callable[[bytes, int, Callable[[str], None]], MediaCarrierLink]
#: ``make_session(keys, carrier, source, sink, on_connected, on_lost)``.
SessionFactory = Callable[
    [
        MediaKeys,
        MediaCarrierLink,
        AudioSource,
        AudioSink,
        Callable[[], None],
        Callable[[str], None],
    ],
    MediaSessionLike,
]


@dataclass
class _Media:
    call_id: bytes
    link: MediaCarrierLink
    session: MediaSessionLike | None = None
    link_state: str = "connecting"


class CallManager:
    """One profile's phone line. All methods run on the event loop.

    The service calls :meth:`on_signal` for every call message the ratchet authenticated, and
    :meth:`close` when it shuts down. Front ends use :meth:`place_call`, :meth:`accept`,
    :meth:`decline`, :meth:`hang_up`, :meth:`set_muted` and read :meth:`current` /
    :meth:`stats`, reacting to ``CallChanged`` / ``CallStatsChanged`` events.
    """

    def __init__(
        self,
        *,
        now_ms: Callable[[], int],
        send_signal: Callable[[bytes, bytes], Awaitable[bool]],
        contact_for: Callable[[bytes], Contact | None],
        log_call: Callable[[CallInfo, str], Message | None],
        emit: Callable[[ev.Event], None],
        open_link: LinkFactory,
        make_session: SessionFactory,
        audio_factory: AudioFactory,
        signalling: CallSignalling | None = None,
    ) -> None:
        self._now_ms = now_ms
        self._send_signal = send_signal
        self._contact_for = contact_for
        self._log_call = log_call
        self._emit = emit
        self._open_link = open_link
        self._make_session = make_session
        self.audio_factory = audio_factory
        self._machine = signalling or CallSignalling()
        self._timer: asyncio.TimerHandle | None = None
        self._media: _Media | None = None
        self._muted = False
        #: The mic gate (hold-to-talk / toggle): closed, the call sends silence as if muted.
        self._talking = True
        #: Calls start with the gate closed (the talk mode is hold or toggle; the service
        #: sets this from the settings).
        self.gated = False
        self._problem: str | None = None
        self._signals: asyncio.Queue[tuple[bytes, CallMessage]] = asyncio.Queue()
        self._signal_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ reading

    def current(self) -> CallView | None:
        """The live call, or the last one after it ended; None before the first."""
        info = self._machine.call
        if info is None:
            return None
        media = self._media if self._media and self._media.call_id == info.call_id else None
        return CallView(
            call_id=info.call_id,
            peer=info.peer,
            contact=self._contact_for(info.peer),
            state=info.state.value,
            outgoing=info.outgoing,
            started_ms=info.started_ms,
            active_ms=info.active_ms,
            ended_ms=info.ended_ms,
            end_reason=info.end_reason.value if info.end_reason else None,
            peer_ringing=info.peer_ringing,
            muted=self._muted,
            link=media.link_state if media else "none",
            problem=self._problem,
            talking=self._talking,
        )

    def stats(self) -> CallStats | None:
        """Statistics of the running media session, or None when there is none."""
        media = self._media
        if media is None or media.session is None:
            return None
        return call_stats(media.session.stats())

    @property
    def busy(self) -> bool:
        return self._machine.state in (
            CallState.OUTGOING_RINGING,
            CallState.INCOMING_RINGING,
            CallState.CONNECTING,
            CallState.ACTIVE,
        )

    # ------------------------------------------------------------------ the local user

    def place_call(self, contact: Contact) -> CallView:
        """Ring ``contact`` (or answer their ringing call). :class:`BadInput` when a call is
        already under way with someone else."""
        state = self._machine.state
        info = self._machine.call
        answering = (
            state is CallState.INCOMING_RINGING
            and info is not None
            and info.peer == contact.identity
        )
        if self.busy and not answering:
            raise BadInput("you are already in a call; hang up first")
        self._problem = None
        self._muted = False
        self._talking = not self.gated
        self._run(self._machine.place_call(contact.identity, self._now_ms()))
        view = self.current()
        assert view is not None
        return view

    def accept(self) -> None:
        """Answer the ringing call. :class:`BadInput` when nothing rings."""
        if self._machine.state is not CallState.INCOMING_RINGING:
            raise BadInput("no call is ringing")
        self._problem = None
        self._muted = False
        self._talking = not self.gated
        self._run(self._machine.accept(self._now_ms()))

    def decline(self) -> None:
        """Decline the ringing call. :class:`BadInput` when nothing rings."""
        if self._machine.state is not CallState.INCOMING_RINGING:
            raise BadInput("no call is ringing")
        self._run(self._machine.decline(self._now_ms()))

    def hang_up(self) -> None:
        """End, cancel or decline the current call; nothing happens without one."""
        self._run(self._machine.hang_up(self._now_ms()))

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute the microphone. Muted calls keep sending (encoded silence), so the
        relay cannot tell."""
        self._muted = muted
        self._apply_mic()

    def set_talking(self, talking: bool) -> None:
        """Open or close the mic gate (hold-to-talk, toggle). Closed, the capture is muted
        like :meth:`set_muted` (encoded silence); the next captured frame obeys. Both must
        be open for the peer to hear us."""
        if talking == self._talking:
            return
        self._talking = talking
        self._apply_mic()

    def _apply_mic(self) -> None:
        media = self._media
        if media is not None and media.session is not None:
            media.session.muted = self._muted or not self._talking
        self._changed()

    # ------------------------------------------------------------------ the peer

    def on_signal(self, peer: bytes, message: CallMessage) -> None:
        """A call message from ``peer`` (authenticated by the ratchet)."""
        try:
            effects = self._machine.receive(peer, message, self._now_ms())
        except CallStateError:  # the machine ignores peer events it has no row for
            return
        self._run(effects)

    async def close(self) -> None:
        """Hang up any call (telling the peer when the relay is still there) and stop media."""
        if self.busy:
            self.hang_up()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Let the hangup go out and the media stop before the link closes (bounded: closing
        # must not hang).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._signals.join(), 2.0)
        await self._stop_media(self._detach_media())
        if self._background:
            await asyncio.wait(set(self._background), timeout=3.0)
        for task in (self._signal_task, self._stats_task, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ------------------------------------------------------------------ effects

    def _run(self, effects: list[fx.CallEffect]) -> None:
        try:
            for effect in effects:
                if isinstance(effect, fx.SendSignal):
                    self._queue_signal(effect.peer, effect.message)
                elif isinstance(effect, fx.StartMedia):
                    self._start_media(effect)
                elif isinstance(effect, fx.StopMedia):
                    # Detached now, so a StartMedia right after it cannot be stopped by it.
                    self._spawn(self._stop_media(self._detach_media()))
                elif isinstance(effect, fx.StateChanged | fx.PeerRinging):
                    self._changed()
                elif isinstance(effect, fx.CallEnded):
                    self._call_ended(effect.call)
                elif isinstance(effect, fx.BusyRejected):
                    self._busy_rejected(effect)
        finally:
            self._arm_timer()

    def _changed(self) -> None:
        view = self.current()
        if view is not None:
            self._emit(ev.CallChanged(view))

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._machine.next_deadline_ms
        if deadline is None:
            return
        delay = max(0.0, (deadline - self._now_ms()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._run(self._machine.poll(self._now_ms()))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ signalling out

    def _queue_signal(self, peer: bytes, message: CallMessage) -> None:
        self._signals.put_nowait((peer, message))
        if self._signal_task is None or self._signal_task.done():
            self._signal_task = asyncio.get_running_loop().create_task(self._signal_loop())

    async def _signal_loop(self) -> None:
        while True:
            peer, message = await self._signals.get()
            try:
                sent = await self._send_signal(peer, encode_call_message(message))
                if not sent:
                    log.info("call message %s not sent (offline or no session)", _tag(message))
            except Exception as exc:  # a failed send must not stop later ones
                log.warning("call message could not be sent: %s", type(exc).__name__)
            finally:
                self._signals.task_done()

    # ------------------------------------------------------------------ media

    def _start_media(self, effect: fx.StartMedia) -> None:
        call_id = effect.call_id
        leg = 0 if effect.role is CallRole.CALLER else 1

        def on_link_state(state: str) -> None:
            media = self._media
            if media is None or media.call_id != call_id:
                return
            media.link_state = state
            if state == "lost":
                self._run(self._machine.media_lost(call_id, self._now_ms()))
            else:
                self._changed()

        link = self._open_link(effect.keys.join_token, leg, on_link_state)
        media = _Media(call_id, link)
        self._media = media

        def on_connected() -> None:
            if self._media is media:
                self._run(self._machine.media_connected(call_id, self._now_ms()))

        def on_lost(reason: str) -> None:
            if self._media is media:
                log.info("call media lost: %s", reason)
                self._run(self._machine.media_lost(call_id, self._now_ms()))

        try:
            source, sink = self.audio_factory()
            session = self._make_session(effect.keys, link, source, sink, on_connected, on_lost)
        except (AudioUnavailable, CodecUnavailable) as exc:
            self._media_failed(call_id, exc)
            return
        session.muted = self._muted or not self._talking
        media.session = session
        # The session starts the link (its frames go straight to the session's receive path),
        # which connects while the devices open (off the loop: a first PortAudio open takes
        # ~50 ms here, seconds on some hosts).
        self._spawn(self._start_session(media, session))
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = asyncio.get_running_loop().create_task(self._stats_loop())

    async def _start_session(self, media: _Media, session: MediaSessionLike) -> None:
        try:
            await session.start_async()
        except (AudioUnavailable, CodecUnavailable) as exc:
            if self._media is media:  # not hung up while the devices opened
                self._media_failed(media.call_id, exc)

    def _media_failed(self, call_id: bytes, exc: AudioUnavailable | CodecUnavailable) -> None:
        self._problem = exc.reason + (f" ({exc.fix})" if exc.fix else "")
        log.warning("call audio unavailable: %s", exc.reason)
        self._run(self._machine.media_failed(call_id, self._now_ms()))

    def _detach_media(self) -> _Media | None:
        media, self._media = self._media, None
        return media

    async def _stop_media(self, media: _Media | None) -> None:
        if media is None:
            return
        try:
            if media.session is not None:
                await media.session.stop()
        finally:
            await media.link.close()
        self._changed()

    async def _stats_loop(self) -> None:
        while self._media is not None:
            await asyncio.sleep(STATS_INTERVAL_S)
            stats = self.stats()
            if stats is not None:
                self._emit(ev.CallStatsChanged(stats))

    # ------------------------------------------------------------------ call log

    def _call_ended(self, info: CallInfo) -> None:
        try:
            message = self._log_call(info, call_log_text(info))
        except Exception as exc:  # the log must not break hanging up
            log.warning("call log entry not stored: %s", type(exc).__name__)
            message = None
        self._changed()
        contact = self._contact_for(info.peer)
        if message is not None and contact is not None:
            self._emit(ev.MessageReceived(contact, message))

    def _busy_rejected(self, effect: fx.BusyRejected) -> None:
        contact = self._contact_for(effect.peer)
        if contact is None:
            return
        now = self._now_ms()
        info = CallInfo(
            call_id=effect.call_id,
            peer=effect.peer,
            role=CallRole.CALLEE,
            state=CallState.ENDED,
            created_ms=effect.created_ms,
            started_ms=now,
            ended_ms=now,
            end_reason=EndReason.BUSY,
        )
        try:
            message = self._log_call(info, "Missed call (you were in another call)")
        except Exception as exc:  # the log must not break the call under way
            log.warning("call log entry not stored: %s", type(exc).__name__)
            return
        if message is not None:
            self._emit(ev.MessageReceived(contact, message))


def _tag(message: CallMessage) -> str:
    return type(message).__name__
