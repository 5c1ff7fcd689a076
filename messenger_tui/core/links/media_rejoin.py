"""A call leg's media link lifecycle and its rejoin window, its behaviour as a table.

Design rules
============

1. **The table is the behaviour.** :data:`TRANSITIONS` maps ``(phase, event)`` to a
   :class:`MediaRejoinTransition`: the next phase and the named :class:`Step` s to run. The
   driver (``messenger_tui.transport.media_link.MediaLink``) only *classifies* outcomes (a refusal
   for good versus a failure worth retrying; a drop the relay meant versus a lost
   connection) and *carries out* the effects (:mod:`.effects`).
2. **Sans-I/O.** Inputs carry ``now`` (seconds, monotonic); timers are deadlines
   (:attr:`MediaRejoin.next_deadline`, :meth:`MediaRejoin.poll`). When both are due, the
   window's end wins over a retry.
3. **The window.** The link has ``window_s`` seconds (10 s) to join: counted from ``start``
   for the first join and from the drop for a rejoin. Past it the link is LOST and the call
   ends (``connection_lost``). An attempt still in flight then is aborted. A change of
   ``window_s`` applies from the next drop.
4. **Retries within the window** wait a short backoff (50 ms doubling to 1 s), never past
   the window's end; a join restarts the backoff from its base.
5. **For good.** A refusal (authentication failed, TLS or pin, the relay's join error, a
   protocol error) and a drop the relay meant (4000: another connection of ours took this
   leg; 4001: the peer never came; 1008: a policy close) end the link at once: LOST.
6. **Why.** LOST carries a reason: the refusal or drop itself, or for the window's end
   ``no media connection within W s (last error)``; an attempt the window cut short reads
   as "did not answer in time" unless an earlier attempt in the same window failed for a
   reason of its own.
7. **Close** is allowed in every phase and ends in CLOSED (idempotent). Other local events
   the table does not list are errors; outcomes and timers it does not list are ignored.
8. **Public state** (:class:`MediaLinkState`): DIALING and BACKING_OFF are CONNECTING before
   the first join and RECONNECTING after it; the others are themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from messenger_tui.core.errors import CoreError
from messenger_tui.core.links.effects import (
    Abort,
    Connect,
    ConnectionEffect,
    DelayPolicy,
    Report,
    Wait,
)

__all__ = [
    "REJOIN_WINDOW_S",
    "TRANSITIONS",
    "MediaEvent",
    "MediaLinkState",
    "MediaPhase",
    "MediaRejoin",
    "MediaStep",
    "RejoinEffect",
    "RejoinStateError",
]

#: Seconds to (re)join before the link is LOST (rule 3).
REJOIN_WINDOW_S: Final = 10.0


class MediaLinkState(Enum):
    """Where a media link is (what the call manager sees)."""

    CONNECTING = "connecting"  # first connection attempt(s), before the first join
    JOINED = "joined"  # joined the call's route: frames flow (if the peer is present)
    RECONNECTING = "reconnecting"  # the link dropped; re-joining within the window
    LOST = "lost"  # could not (re)join in time, or refused for good: end the call
    CLOSED = "closed"  # close() was called


class RejoinStateError(CoreError):
    """The driver asked for something the current phase does not allow."""


class MediaPhase(Enum):
    NEW = "new"  # before start
    DIALING = "dialing"  # an attempt to connect and join is in flight
    BACKING_OFF = "backing_off"  # waiting before the next attempt
    JOINED = "joined"
    LOST = "lost"
    CLOSED = "closed"


class MediaEvent(Enum):
    # the driver's own calls (local: unlisted ones are errors, rule 7)
    START = "start"
    CLOSE = "close"
    # outcomes
    JOINED = "joined"
    ATTEMPT_FAILED = "attempt_failed"  # worth retrying (unreachable, dropped while joining)
    REFUSED = "refused"  # for good (rule 5)
    DROPPED = "dropped"  # the joined connection was lost: rejoin
    DROPPED_FOR_GOOD = "dropped_for_good"  # the relay closed it on purpose (rule 5)
    # deadlines
    RETRY_DUE = "retry_due"
    WINDOW_OVER = "window_over"


_LOCAL_EVENTS: Final = frozenset({MediaEvent.START, MediaEvent.CLOSE})


class MediaStep(Enum):
    """Named steps a transition runs, in order (see ``MediaRejoin._run``)."""

    CONNECT = "connect"
    ABORT = "abort"  # the attempt in flight
    OPEN_WINDOW = "open_window"  # the window starts now (rule 3)
    CLOSE_WINDOW = "close_window"
    WAIT_BACKOFF = "wait_backoff"  # a retry timer, never past the window (rule 4)
    RESET_BACKOFF = "reset_backoff"
    COUNT_JOIN = "count_join"
    NOTE_ERROR = "note_error"  # remember why this attempt or connection ended
    NOTE_FAILED = "note_failed"  # ... and that it failed for a reason of its own (rule 6)
    NOTE_CUT_SHORT = "note_cut_short"  # the window cut an attempt short (rule 6)
    LOSE_WINDOW = "lose_window"  # the error becomes "no media connection within W s (...)"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class MediaRejoinTransition:
    target: MediaPhase
    steps: tuple[MediaStep, ...] = ()


_P = MediaPhase
_E = MediaEvent
_St = MediaStep
_T = MediaRejoinTransition

_CLOSE: Final = _T(_P.CLOSED, (_St.CLOSE_WINDOW, _St.REPORT))
_CLOSE_DIALING: Final = _T(_P.CLOSED, (_St.ABORT, _St.CLOSE_WINDOW, _St.REPORT))

#: The whole lifecycle: ``TRANSITIONS[phase][event]``. Missing pairs: rule 7.
TRANSITIONS: Final[Mapping[MediaPhase, Mapping[MediaEvent, MediaRejoinTransition]]] = {
    _P.NEW: {
        _E.START: _T(_P.DIALING, (_St.OPEN_WINDOW, _St.CONNECT)),
        _E.CLOSE: _CLOSE,
    },
    _P.DIALING: {
        _E.JOINED: _T(
            _P.JOINED,
            (_St.CLOSE_WINDOW, _St.RESET_BACKOFF, _St.COUNT_JOIN, _St.NOTE_ERROR, _St.REPORT),
        ),
        _E.ATTEMPT_FAILED: _T(_P.BACKING_OFF, (_St.NOTE_ERROR, _St.NOTE_FAILED, _St.WAIT_BACKOFF)),
        _E.REFUSED: _T(_P.LOST, (_St.CLOSE_WINDOW, _St.NOTE_ERROR, _St.REPORT)),
        _E.WINDOW_OVER: _T(_P.LOST, (_St.ABORT, _St.NOTE_CUT_SHORT, _St.LOSE_WINDOW, _St.REPORT)),
        _E.CLOSE: _CLOSE_DIALING,
    },
    _P.BACKING_OFF: {
        _E.RETRY_DUE: _T(_P.DIALING, (_St.CONNECT,)),
        _E.WINDOW_OVER: _T(_P.LOST, (_St.LOSE_WINDOW, _St.REPORT)),
        _E.CLOSE: _CLOSE,
    },
    _P.JOINED: {
        _E.DROPPED: _T(_P.DIALING, (_St.NOTE_ERROR, _St.OPEN_WINDOW, _St.CONNECT, _St.REPORT)),
        _E.DROPPED_FOR_GOOD: _T(_P.LOST, (_St.NOTE_ERROR, _St.REPORT)),
        _E.CLOSE: _CLOSE,
    },
    _P.LOST: {
        _E.CLOSE: _CLOSE,
    },
    _P.CLOSED: {
        _E.CLOSE: _T(_P.CLOSED),
    },
}

RejoinEffect = ConnectionEffect[MediaLinkState]


@dataclass(slots=True)
class _Input:
    event: MediaEvent
    error: str | None = None
    effects: list[RejoinEffect] = field(default_factory=list)


class MediaRejoin:
    """One media link's lifecycle. ``display`` names the relay in error texts."""

    def __init__(
        self, backoff: DelayPolicy, *, display: str, window_s: float = REJOIN_WINDOW_S
    ) -> None:
        self.backoff = backoff
        self.display = display
        #: Seconds to (re)join; a change applies from the next drop (rule 3).
        self.window_s = window_s
        self._phase = MediaPhase.NEW
        self._shown = MediaLinkState.CONNECTING
        self._window_end: float | None = None
        self._retry_at: float | None = None
        self._window_used = window_s
        self._attempt_failed = False
        #: How many times the link joined (1 + rejoins).
        self.joins = 0
        #: Why the link is (or was last) down; None while joined after a join. Never secret.
        self.error: str | None = None

    # ------------------------------------------------------------------ reading

    @property
    def phase(self) -> MediaPhase:
        return self._phase

    @property
    def state(self) -> MediaLinkState:
        """The public state (rule 8), as last reported."""
        return self._shown

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`poll` must next be called (``None``: no timer running)."""
        deadlines = [d for d in (self._window_end, self._retry_at) if d is not None]
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[RejoinEffect]:
        return self._apply(_Input(_E.START), now)

    def close(self, now: float) -> list[RejoinEffect]:
        return self._apply(_Input(_E.CLOSE), now)

    def joined(self, now: float) -> list[RejoinEffect]:
        return self._apply(_Input(_E.JOINED), now)

    def attempt_failed(self, now: float, error: str) -> list[RejoinEffect]:
        """The attempt failed for a reason worth retrying within the window."""
        return self._apply(_Input(_E.ATTEMPT_FAILED, error=error), now)

    def refused(self, now: float, error: str) -> list[RejoinEffect]:
        """The attempt failed for good (rule 5)."""
        return self._apply(_Input(_E.REFUSED, error=error), now)

    def dropped(self, now: float, reason: str, *, for_good: bool) -> list[RejoinEffect]:
        """The joined connection ended; ``for_good``: the relay meant it (rule 5)."""
        event = _E.DROPPED_FOR_GOOD if for_good else _E.DROPPED
        return self._apply(_Input(event, error=reason), now)

    def poll(self, now: float) -> list[RejoinEffect]:
        """Fire a due deadline (the window's end first, rule 2)."""
        if self._window_end is not None and now >= self._window_end:
            return self._apply(_Input(_E.WINDOW_OVER), now)
        if self._retry_at is not None and now >= self._retry_at:
            return self._apply(_Input(_E.RETRY_DUE), now)
        return []

    # ------------------------------------------------------------------ the engine

    def _apply(self, inp: _Input, now: float) -> list[RejoinEffect]:
        previous = self._phase
        row = TRANSITIONS[previous].get(inp.event)
        if row is None:
            if inp.event in _LOCAL_EVENTS:
                raise RejoinStateError(f"cannot {inp.event.value} while {previous.value}")
            return []
        self._retry_at = None  # the retry timer belongs to one BACKING_OFF visit
        self._phase = row.target
        for step in row.steps:
            self._run(step, inp, now)
        return inp.effects

    def _run(self, step: MediaStep, inp: _Input, now: float) -> None:
        if step is _St.CONNECT:
            inp.effects.append(Connect())
        elif step is _St.ABORT:
            inp.effects.append(Abort())
        elif step is _St.OPEN_WINDOW:
            self._window_used = self.window_s
            self._window_end = now + self.window_s
            self._attempt_failed = False
            if self.error is None:
                self.error = "not connected yet"
        elif step is _St.CLOSE_WINDOW:
            self._window_end = None
        elif step is _St.WAIT_BACKOFF:
            end = self._window_end if self._window_end is not None else now
            delay = min(self.backoff.next_delay(), max(0.0, end - now))
            self._retry_at = now + delay
            inp.effects.append(Wait(delay))
        elif step is _St.RESET_BACKOFF:
            self.backoff.reset()
        elif step is _St.COUNT_JOIN:
            self.joins += 1
        elif step is _St.NOTE_ERROR:
            self.error = inp.error
        elif step is _St.NOTE_FAILED:
            self._attempt_failed = True
        elif step is _St.NOTE_CUT_SHORT:
            if not self._attempt_failed:
                self.error = f"relay {self.display} did not answer in time"
        elif step is _St.LOSE_WINDOW:
            self._window_end = None
            self.error = f"no media connection within {self._window_used:g} s ({self.error})"
        elif step is _St.REPORT:
            shown = self._public(self._phase)
            if shown is not self._shown:
                self._shown = shown
                error = self.error if shown is MediaLinkState.LOST else None
                inp.effects.append(Report(shown, None, error))
        else:  # pragma: no cover - every step is handled above
            raise AssertionError(f"unhandled step {step}")

    def _public(self, phase: MediaPhase) -> MediaLinkState:
        if phase is _P.JOINED:
            return MediaLinkState.JOINED
        if phase is _P.LOST:
            return MediaLinkState.LOST
        if phase is _P.CLOSED:
            return MediaLinkState.CLOSED
        return MediaLinkState.RECONNECTING if self.joins else MediaLinkState.CONNECTING
