"""``messenger-tui call NAME`` and ``messenger-tui answer``: voice calls without the UI.

With ``--play`` / ``--record`` a WAV file stands in for the microphone / speaker (48 kHz mono
16-bit; the other side gets silence or is discarded when only one is given); with neither,
the system's default devices are used. Progress goes to stderr, one line per change.

Exit codes: 0 the call took place and ended; 5 relay unreachable; 10 nothing rang in time
(answer); 11 the call was not answered (declined, busy, no answer, or given up with
``--ring-timeout``); 12 the call failed or its connection was lost before it became active;
13 the call was connected and then its connection was lost (relay gone, peer crashed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from messenger_tui.app import events as ev
from messenger_tui.app.audio_setup import device_audio
from messenger_tui.app.config import load_config
from messenger_tui.app.echo import ECHO_CALL_DELAY_S
from messenger_tui.app.errors import BadInput, RelayUnavailable, TimedOut
from messenger_tui.app.models import CallStats, CallView, Contact
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.contact_names import contact_named
from messenger_tui.cli.group_call_cmd import describe as describe_group_call
from messenger_tui.cli.group_call_cmd import follow_group_call, is_group_call
from messenger_tui.cli.output import err
from messenger_tui.cli.profile_service import close_service, home_dir, open_service
from messenger_tui.media.pacing import LoopPacer
from messenger_tui.media.ports import FRAME_MS, SILENCE, AudioSink, AudioSource

#: Not answered: declined, busy, no answer.
EXIT_NOT_ANSWERED = 11
#: Failed to connect, or lost before it was active.
EXIT_CALL_FAILED = 12
#: Connected, then the connection was lost (relay gone, or the peer crashed).
EXIT_CALL_LOST = 13
#: Extra time recorded after the played file ends, so the tail is heard.
PLAY_TAIL_S = 1.0


def add_call_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``call`` and ``answer`` (called from main.build_parser)."""
    p = sub.add_parser(
        "call",
        parents=[common],
        help="call a contact or a group (headless: WAV files or the default devices)",
        description="Ring NAME and talk. Ends when --duration passes, when the --play file "
        "has been sent, when the peer hangs up, or on Ctrl-C. NAME may be a group: its call "
        "is started (ringing the members) or joined.",
    )
    p.add_argument("name")
    _audio_options(p)
    p.add_argument(
        "--ring-timeout",
        type=float,
        help="give up when not answered within S seconds (default: the protocol's 45)",
    )
    p.set_defaults(func=cmd_call)

    p = sub.add_parser(
        "answer",
        parents=[common],
        help="wait for a call and answer it (headless: WAV files or the default devices)",
    )
    _audio_options(p)
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a call (default 60)"
    )
    p.set_defaults(func=cmd_answer)


def _bitrate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of kb/s") from None
    if not 12 <= value <= 64:
        raise argparse.ArgumentTypeError("the call bitrate is 12-64 kb/s")
    return value


def _audio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bitrate",
        type=_bitrate,
        metavar="KBPS",
        help="Opus bitrate of what this side sends, 12-64 kb/s, for this call only "
        "(default: the settings, 24)",
    )
    p.add_argument("--play", type=Path, help="WAV file to send instead of the microphone")
    p.add_argument("--record", type=Path, help="WAV file to write what the peer sends")
    p.add_argument(
        "--duration",
        type=float,
        help="seconds of talk before hanging up (default: until --play ends, or the peer hangs up)",
    )
    p.add_argument(
        "--wait-for",
        type=int,
        default=0,
        metavar="N",
        help="group calls: hold the --play file (and --duration) until N others are in the call",
    )


def wav_seconds(path: Path) -> float:
    """Length of a WAV file a call can play; :class:`BadInput` (with the sox command to
    convert it) when it is not 48 kHz mono 16-bit, so it fails before anything rings."""
    from messenger_tui.media.wav_io import WavFormatError, read_wav_frames

    try:
        return len(read_wav_frames(path)) * FRAME_MS / 1000
    except WavFormatError as exc:
        raise BadInput(f"{exc.reason} ({exc.fix})") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None


class HeadlessAudio:
    """The audio ends of a headless call: WAV files when --play or --record is given (the
    other end silence, or discarded), the default devices otherwise. Hand :attr:`factory` to
    ``service.set_audio``; call :meth:`connected` when the call becomes active, so the --play
    file starts then and its first words are not spent while the media legs join the relay.
    Raises :class:`BadInput` now for a --play file the call cannot play."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._play: Path | None = args.play
        self._record: Path | None = args.record
        self._gates: list[_GatedSource] = []
        if self._play is not None:
            wav_seconds(self._play)  # fail now, not mid-call

    @property
    def factory(self) -> Callable[[], tuple[AudioSource, AudioSink]]:
        """The factory for ``service.set_audio`` (``device_audio`` without WAV files, so the
        service checks the devices before anything rings)."""
        if self._play is None and self._record is None:
            return device_audio
        return self._wav_ends

    def _wav_ends(self) -> tuple[AudioSource, AudioSink]:
        from messenger_tui.media.wav_io import WavSink, WavSource

        source: AudioSource
        if self._play is not None:
            gate = _GatedSource(WavSource(self._play))
            self._gates.append(gate)
            source = gate
        else:
            source = _LoopEnd(lambda on_frame: on_frame(SILENCE))
        sink: AudioSink = (
            WavSink(self._record) if self._record is not None else _LoopEnd(lambda pull: pull())
        )
        return source, sink

    def connected(self) -> None:
        for gate in self._gates:
            gate.open()
        self._gates.clear()


class _LoopEnd:
    """An end with no file: every 20 ms on the loop, ``step(callback)`` (a silent
    microphone, or a speaker that plays into nothing)."""

    def __init__(self, step: Callable[[Callable[..., Any]], object]) -> None:
        self._step = step
        self._pacer: LoopPacer | None = None

    def start(self, callback: Callable[..., Any]) -> None:
        self._pacer = LoopPacer(lambda: self._step(callback))
        self._pacer.start()

    def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.stop()


class _GatedSource:
    """A WAV source that sends silence until :meth:`open`, then the file. :meth:`stop` may
    come from another thread (the media session stops its ends off the loop): the lock keeps
    an ``open`` racing it from starting the file after the stop."""

    def __init__(self, source: AudioSource) -> None:
        self._source = source
        self._silence = _LoopEnd(lambda on_frame: on_frame(SILENCE))
        self._on_frame: Callable[[bytes], None] | None = None
        self._lock = threading.Lock()

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame
        self._silence.start(on_frame)

    def open(self) -> None:
        with self._lock:
            on_frame, self._on_frame = self._on_frame, None
            if on_frame is None:  # stopped, or already open
                return
            self._silence.stop()
            self._source.start(on_frame)

    def stop(self) -> None:
        with self._lock:
            self._on_frame = None
            self._silence.stop()
            self._source.stop()


def _open(args: argparse.Namespace) -> MessengerService:
    """The profile's service, with the config file's setting defaults (its problems are
    printed) and ``--bitrate`` for this call only (never stored)."""
    service = open_service(args)
    config = load_config(home_dir(args))
    for problem in config.problems:
        err(f"warning: {problem}")
    defaults = dict(config.defaults)
    service.set_setting_defaults(defaults)
    if args.bitrate is not None:
        service.call_bitrate_override = args.bitrate
    return service


async def _connect(service: MessengerService, timeout: float = 10.0) -> None:
    await service.start()
    deadline = asyncio.get_running_loop().time() + timeout
    while not service.connected:
        if asyncio.get_running_loop().time() >= deadline:
            raise RelayUnavailable(
                f"cannot reach the relay {service.profile.relay_url}"
                + (f": {service.last_error}" if getattr(service, "last_error", None) else "")
            )
        await asyncio.sleep(0.05)


def _talk_time(args: argparse.Namespace, echo: bool = False) -> float | None:
    """Seconds of active talk before hanging up: --duration, else the --play file plus a
    tail; calling Echo, the tail also waits for Echo's delayed answer of the file's end."""
    if args.duration is not None:
        return float(args.duration)
    if args.play is not None:
        return wav_seconds(args.play) + PLAY_TAIL_S + (ECHO_CALL_DELAY_S if echo else 0.0)
    return None


def _is_echo(service: MessengerService, contact: Contact) -> bool:
    """Whether ``contact`` is the relay's Echo participant (known once connected)."""
    echo = service.relay_echo_identity
    return echo is not None and contact.identity == echo


async def _follow(
    service: MessengerService,
    queue: asyncio.Queue[ev.Event],
    talk_s: float | None,
    on_active: Callable[[], None],
    ring_s: float | None = None,
) -> int:
    """Report the call's progress until it ends; ``on_active()`` when it becomes active;
    hang up after ``talk_s`` of active talk, or after ``ring_s`` if it never became active.
    Returns the exit code."""
    loop = asyncio.get_running_loop()
    hang_up_at: float | None = None if ring_s is None else loop.time() + ring_s
    last: str | None = None
    was_active = False
    stats: CallStats | None = None
    while True:
        timeout = None if hang_up_at is None else max(0.0, hang_up_at - loop.time())
        try:
            event = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            service.hang_up()
            hang_up_at = None
            continue
        if isinstance(event, ev.CallStatsChanged):
            stats = event.stats
            continue
        if not isinstance(event, ev.CallChanged):
            continue
        call = event.call
        line = _describe(call)
        if line != last:
            err(line)
            last = line
        if call.state == "active" and not was_active:
            was_active = True
            on_active()
            hang_up_at = None if talk_s is None else loop.time() + talk_s
        if call.state == "ended" and call.link in ("none", "closed"):
            if stats is not None:
                err(stats_summary(stats))
            if was_active:
                return EXIT_CALL_LOST if call.end_reason == "connection_lost" else 0
            if call.end_reason in ("declined", "busy", "no_answer", "hung_up"):
                return EXIT_NOT_ANSWERED
            return EXIT_CALL_FAILED


def stats_summary(stats: CallStats) -> str:
    """One line about the call's audio path, from its last statistics."""
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "unknown"
    return (
        f"audio: sent {stats.frames_sent} frames, received {stats.frames_received}, "
        f"concealed {stats.concealed_frames}, late {stats.late_frames}, "
        f"loss {stats.loss_percent:.1f} %, jitter {stats.jitter_ms:.0f} ms, "
        f"buffer {stats.buffer_delay_ms:.0f} ms, round trip {rtt}"
    )


def _describe(call: CallView) -> str:
    name = call.contact.name if call.contact else "unknown"
    if call.state == "outgoing_ringing":
        return f"ringing {name}…" if call.peer_ringing else f"calling {name}…"
    if call.state == "incoming_ringing":
        return f"{name} is calling"
    if call.state == "connecting":
        return "connecting…"
    if call.state == "active":
        return "reconnecting…" if call.link == "reconnecting" else f"in a call with {name}"
    if call.state == "ended":
        reason = (call.end_reason or "ended").replace("_", " ")
        text = f"call ended: {reason}"
        if call.problem:
            text += f" ({call.problem})"
        return text
    return call.state


@contextlib.asynccontextmanager
async def _calling(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[MessengerService, HeadlessAudio, asyncio.Queue[ev.Event]]]:
    """The service connected with the headless audio, its event queue; closed afterwards."""
    service = _open(args)
    try:
        audio = HeadlessAudio(args)
        service.set_audio(audio.factory)
        queue = service.subscribe()
        await _connect(service)
        yield service, audio, queue
    finally:
        await close_service(service, quiet=True)


async def cmd_call(args: argparse.Namespace) -> int:
    async with _calling(args) as (service, audio, queue):
        if is_group_call(service, args.name):
            service.group_calls.start_or_join(args.name)
            return await _follow_group(service, queue, args.name, args, audio)
        contact = contact_named(service, args.name)
        service.place_call(contact.id)
        talk_s = _talk_time(args, echo=_is_echo(service, contact))
        try:
            return await _follow(service, queue, talk_s, audio.connected, args.ring_timeout)
        except (asyncio.CancelledError, KeyboardInterrupt):
            service.hang_up()
            raise


async def cmd_answer(args: argparse.Namespace) -> int:
    async with _calling(args) as (service, audio, queue):
        err("waiting for a call…")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimedOut(f"no call within {args.timeout:g} s")
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                continue
            if isinstance(event, ev.CallChanged) and event.call.state == "incoming_ringing":
                err(_describe(event.call))
                service.accept_call()
                break
            if isinstance(event, ev.GroupCallChanged) and event.call.state == "ringing":
                name = event.call.group_name
                err(describe_group_call(event.call))
                service.group_calls.start_or_join(name)
                return await _follow_group(service, queue, name, args, audio)
        return await _follow(service, queue, _talk_time(args), audio.connected)


async def _follow_group(
    service: MessengerService,
    queue: asyncio.Queue[ev.Event],
    name: str,
    args: argparse.Namespace,
    audio: HeadlessAudio,
) -> int:
    try:
        return await follow_group_call(
            service,
            queue,
            name,
            talk_s=_talk_time(args),
            wait_for=args.wait_for,
            on_talking=audio.connected,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        service.group_calls.leave()
        raise
