"""The relay connection's lifecycle (the message link), its behaviour as a table.

Design rules
============

1. **The table is the behaviour.** :data:`TRANSITIONS` maps ``(phase, event)`` to a
   :class:`RelayLinkTransition`: the next phase and the named :class:`Step` s to run, in
   order. The driver (``messenger_tui.transport.client.RelayClient``) only *classifies* what
   happened into a :class:`RelayLinkEvent` (a drop with close code 4000 is
   ``DROPPED_REPLACED``) and *carries out* the effects (:mod:`.effects`). The table has no
   conditions in it.
2. **Sans-I/O.** Inputs are method calls that carry ``now`` (seconds, monotonic); outputs
   are lists of effects. Timers are deadlines: read :attr:`RelayLink.next_deadline` and call
   :meth:`RelayLink.poll` when it has passed. Retry delays come from an injected
   :class:`~.effects.DelayPolicy` (exponential backoff with full jitter).
3. **Two ways to be connected.** ``run`` keeps the link up forever (the managed phases:
   CONNECTING, CONNECTED, HEALTHY, WAITING); ``connect_once`` makes one attempt and a drop
   simply ends it (ONCE_CONNECTING, ONCE_CONNECTED). ``run`` adopts a link that
   ``connect_once`` made instead of opening a second one (the relay keeps one connection per
   identity, so a second would replace the first).
4. **Healthy.** A connection is *healthy* once it is authenticated and either lasted
   ``stable_after`` seconds (10 s) or completed a round trip after authentication (the relay
   answered: ``Drained``, which it sends after the initial backlog, or any answer to a
   request). A healthy connection's drop restarts the backoff from its base, so a client that
   was online retries within half a second; a connection that drops before it proved healthy
   (a relay that accepts and then fails) keeps the backoff growing.
5. **Replaced.** A drop with close code 4000 means another instance of this identity took
   over: wait ``replaced_retry_s`` (60 s) instead of the backoff, or the two instances would
   evict each other forever; the report says why.
6. **Reconnect now** (the user's "reconnect" key) ends a wait at once and restarts the
   backoff; while an attempt is in flight or the link is up it changes nothing.
7. **Stopping** goes through CLOSING: drops, failures and timers that arrive while the
   driver tears the connection down are ignored; ``closed`` ends in OFFLINE.
8. **Local events the table does not list are errors** (:class:`LinkStateError`: the driver
   asked for something impossible, e.g. ``start`` twice). Connection and timer events it does
   not list are ignored (a late outcome of an attempt that was aborted is normal).
9. **Reports.** The public :class:`ConnectionState` of a phase is in :data:`PUBLIC_STATE`
   (CLOSING keeps the last one shown). A ``REPORT`` step emits :class:`~.effects.Report`
   when the public state changes or when it carries an error or a retry delay.
10. **Failover.** A profile may list several relay URLs of one deployment (``urls``; the
    driver connects to :attr:`RelayLink.url_index`). A failed attempt or a drop moves to the
    next URL (``NEXT_URL``, round robin) and counts one failure of the round; a replacement
    stays on the same URL (the identity is connected there). ``WAIT_BACKOFF`` waits
    :data:`FAILOVER_DELAY` while the round still has untried URLs and the backoff once every
    URL failed in a row, so a dead node costs no wait but a dead deployment is retried at the
    backoff's pace. A healthy connection (rule 4) starts a new round (``NEW_ROUND``). With one
    URL the table behaves exactly as without failover.
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
    "FAILOVER_DELAY",
    "PUBLIC_STATE",
    "REPLACED_RETRY_S",
    "STABLE_AFTER",
    "TRANSITIONS",
    "ConnectionState",
    "LinkEffect",
    "LinkPhase",
    "LinkStateError",
    "RelayLink",
    "RelayLinkEvent",
    "RelayLinkTransition",
    "Step",
]

#: Seconds a connection must have lasted to count as healthy without a round trip (rule 4).
STABLE_AFTER: Final = 10.0
#: Wait before reconnecting after being replaced (rule 5).
REPLACED_RETRY_S: Final = 60.0
#: Wait before trying the next URL while a failover round has untried ones (rule 10).
FAILOVER_DELAY: Final = 0.0


class ConnectionState(Enum):
    """Where the client is, as shown to the user (``StateChange.state``)."""

    OFFLINE = "offline"  # not connected and not trying (before start, after close)
    CONNECTING = "connecting"  # an attempt is in progress
    CONNECTED = "connected"  # authenticated; sends are accepted
    RECONNECTING = "reconnecting"  # waiting ``retry_in`` seconds before the next attempt


class LinkStateError(CoreError):
    """The driver asked for something the current phase does not allow."""


class LinkPhase(Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"  # run(): an attempt is in flight
    CONNECTED = "connected"  # run(): authenticated, not yet healthy
    HEALTHY = "healthy"  # run(): authenticated and proven (rule 4)
    WAITING = "waiting"  # run(): a retry timer is armed
    ONCE_CONNECTING = "once_connecting"  # connect_once(): the attempt is in flight
    ONCE_CONNECTED = "once_connected"  # connect_once(): authenticated
    CLOSING = "closing"  # stop requested; the driver is tearing down (rule 7)


class RelayLinkEvent(Enum):
    # the driver's own calls (local: unlisted ones are errors)
    START = "start"
    CONNECT_ONCE = "connect_once"
    RECONNECT_NOW = "reconnect_now"
    STOP = "stop"
    CLOSED = "closed"
    # the connection
    AUTHENTICATED = "authenticated"
    FAILED = "failed"
    ROUND_TRIP = "round_trip"
    DROPPED = "dropped"
    DROPPED_REPLACED = "dropped_replaced"
    # deadlines
    STABLE_TIMEOUT = "stable_timeout"
    RETRY_DUE = "retry_due"


_LOCAL_EVENTS: Final = frozenset(
    {
        RelayLinkEvent.START,
        RelayLinkEvent.CONNECT_ONCE,
        RelayLinkEvent.RECONNECT_NOW,
        RelayLinkEvent.STOP,
        RelayLinkEvent.CLOSED,
    }
)


class Step(Enum):
    """Named steps a transition runs, in order (see ``RelayLink._run``)."""

    CONNECT = "connect"  # effect Connect
    ABORT = "abort"  # effect Abort
    ARM_STABLE_TIMER = "arm_stable_timer"  # healthy after stable_after seconds (rule 4)
    RESET_BACKOFF = "reset_backoff"
    NEXT_URL = "next_url"  # fail over to the next relay URL (rule 10)
    NEW_ROUND = "new_round"  # a healthy connection: every URL is worth a try again (rule 10)
    WAIT_BACKOFF = "wait_backoff"  # arm the retry timer: next backoff delay or failover (10)
    WAIT_REPLACED = "wait_replaced"  # arm the retry timer with replaced_retry_s (rule 5)
    REPORT = "report"  # effect Report (rule 9)


@dataclass(frozen=True, slots=True)
class RelayLinkTransition:
    """One row of the table."""

    target: LinkPhase
    steps: tuple[Step, ...] = ()


_P = LinkPhase
_E = RelayLinkEvent
_St = Step
_T = RelayLinkTransition

_STOP: Final = _T(_P.CLOSING, (_St.ABORT,))
_DROP: Final = _T(_P.WAITING, (_St.NEXT_URL, _St.WAIT_BACKOFF, _St.REPORT))
_DROP_HEALTHY: Final = _T(
    _P.WAITING, (_St.RESET_BACKOFF, _St.NEXT_URL, _St.WAIT_BACKOFF, _St.REPORT)
)
_HEALTHY: Final = _T(_P.HEALTHY, (_St.NEW_ROUND,))
_REPLACED: Final = _T(_P.WAITING, (_St.WAIT_REPLACED, _St.REPORT))
_STAY_CONNECTING: Final = _T(_P.CONNECTING)

#: The whole lifecycle: ``TRANSITIONS[phase][event]``. Missing pairs: rule 8.
TRANSITIONS: Final[Mapping[LinkPhase, Mapping[RelayLinkEvent, RelayLinkTransition]]] = {
    _P.OFFLINE: {
        _E.START: _T(_P.CONNECTING, (_St.CONNECT, _St.REPORT)),
        _E.CONNECT_ONCE: _T(_P.ONCE_CONNECTING, (_St.CONNECT, _St.REPORT)),
        _E.STOP: _T(_P.CLOSING),
    },
    _P.CONNECTING: {
        _E.AUTHENTICATED: _T(_P.CONNECTED, (_St.ARM_STABLE_TIMER, _St.REPORT)),
        _E.FAILED: _T(_P.WAITING, (_St.NEXT_URL, _St.WAIT_BACKOFF, _St.REPORT)),
        _E.RECONNECT_NOW: _STAY_CONNECTING,
        _E.STOP: _STOP,
    },
    _P.CONNECTED: {
        _E.ROUND_TRIP: _HEALTHY,
        _E.STABLE_TIMEOUT: _HEALTHY,
        _E.DROPPED: _DROP,
        _E.DROPPED_REPLACED: _REPLACED,
        _E.RECONNECT_NOW: _T(_P.CONNECTED),
        _E.STOP: _T(_P.CLOSING),
    },
    _P.HEALTHY: {
        _E.DROPPED: _DROP_HEALTHY,
        _E.DROPPED_REPLACED: _T(_P.WAITING, (_St.RESET_BACKOFF, _St.WAIT_REPLACED, _St.REPORT)),
        _E.RECONNECT_NOW: _T(_P.HEALTHY),
        _E.STOP: _T(_P.CLOSING),
    },
    _P.WAITING: {
        _E.RETRY_DUE: _T(_P.CONNECTING, (_St.CONNECT, _St.REPORT)),
        _E.RECONNECT_NOW: _T(_P.CONNECTING, (_St.RESET_BACKOFF, _St.CONNECT, _St.REPORT)),
        _E.STOP: _T(_P.CLOSING),
    },
    _P.ONCE_CONNECTING: {
        _E.START: _STAY_CONNECTING,  # run() takes the attempt over (rule 3)
        _E.AUTHENTICATED: _T(_P.ONCE_CONNECTED, (_St.REPORT,)),
        _E.FAILED: _T(_P.OFFLINE, (_St.NEXT_URL, _St.REPORT)),
        _E.RECONNECT_NOW: _T(_P.ONCE_CONNECTING),
        _E.STOP: _STOP,
    },
    _P.ONCE_CONNECTED: {
        _E.START: _T(_P.CONNECTED, (_St.ARM_STABLE_TIMER,)),  # run() adopts the link (rule 3)
        _E.DROPPED: _T(_P.OFFLINE, (_St.REPORT,)),
        _E.DROPPED_REPLACED: _T(_P.OFFLINE, (_St.REPORT,)),
        _E.RECONNECT_NOW: _T(_P.ONCE_CONNECTED),
        _E.STOP: _T(_P.CLOSING),
    },
    _P.CLOSING: {
        _E.STOP: _T(_P.CLOSING),
        _E.CLOSED: _T(_P.OFFLINE, (_St.REPORT,)),
    },
}

#: What the user sees in each phase (rule 9); CLOSING keeps the last state shown.
PUBLIC_STATE: Final[Mapping[LinkPhase, ConnectionState]] = {
    _P.OFFLINE: ConnectionState.OFFLINE,
    _P.CONNECTING: ConnectionState.CONNECTING,
    _P.CONNECTED: ConnectionState.CONNECTED,
    _P.HEALTHY: ConnectionState.CONNECTED,
    _P.WAITING: ConnectionState.RECONNECTING,
    _P.ONCE_CONNECTING: ConnectionState.CONNECTING,
    _P.ONCE_CONNECTED: ConnectionState.CONNECTED,
}

LinkEffect = ConnectionEffect[ConnectionState]


@dataclass(slots=True)
class _Input:
    event: RelayLinkEvent
    error: str | None = None
    effects: list[LinkEffect] = field(default_factory=list)
    retry_in: float | None = None


class RelayLink:
    """The relay link's lifecycle. Drive it with the methods below and carry out the effects
    each returns, in order."""

    def __init__(
        self,
        backoff: DelayPolicy,
        *,
        stable_after: float = STABLE_AFTER,
        replaced_retry_s: float = REPLACED_RETRY_S,
        urls: int = 1,
    ) -> None:
        if urls < 1:
            raise ValueError("a relay link needs at least one URL")
        self.backoff = backoff
        self.urls = urls
        self._url_index = 0
        self._round_failures = 0  # failed attempts and drops since the last healthy link
        self.stable_after = stable_after
        self.replaced_retry_s = replaced_retry_s
        self._phase = LinkPhase.OFFLINE
        self._shown = ConnectionState.OFFLINE
        self._deadline: float | None = None

    # ------------------------------------------------------------------ reading

    @property
    def phase(self) -> LinkPhase:
        return self._phase

    def set_urls(self, count: int) -> None:
        """The driver's list of URLs changed (the user edited it): ``count`` URLs, starting
        over at the first (configuration, not an event: the phase does not change)."""
        if count < 1:
            raise ValueError("a relay link needs at least one URL")
        self.urls = count
        self._url_index = 0
        self._round_failures = 0

    @property
    def url_index(self) -> int:
        """Which of the ``urls`` relay URLs the next attempt uses (rule 10)."""
        return self._url_index

    @property
    def state(self) -> ConnectionState:
        """The state last reported (rule 9)."""
        return self._shown

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`poll` must next be called (``None``: no timer running)."""
        return self._deadline

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[LinkEffect]:
        """``run`` begins: connect (or adopt the ``connect_once`` link)."""
        return self._apply(_Input(_E.START), now)

    def connect_once(self, now: float) -> list[LinkEffect]:
        """One attempt, no retries."""
        return self._apply(_Input(_E.CONNECT_ONCE), now)

    def reconnect_now(self, now: float) -> list[LinkEffect]:
        """The user asked to reconnect (rule 6); an error while OFFLINE or CLOSING."""
        return self._apply(_Input(_E.RECONNECT_NOW), now)

    def stop(self, now: float) -> list[LinkEffect]:
        """``close`` or the end of ``run``: ignore the connection from now on (rule 7)."""
        return self._apply(_Input(_E.STOP), now)

    def closed(self, now: float) -> list[LinkEffect]:
        """The driver finished tearing down after :meth:`stop`."""
        return self._apply(_Input(_E.CLOSED), now)

    def authenticated(self, now: float) -> list[LinkEffect]:
        return self._apply(_Input(_E.AUTHENTICATED), now)

    def failed(self, now: float, error: str) -> list[LinkEffect]:
        """The attempt failed (unreachable, TLS, pin, authentication, cancelled)."""
        return self._apply(_Input(_E.FAILED, error=error), now)

    def round_trip(self, now: float) -> list[LinkEffect]:
        """The relay answered something on this connection after authentication (rule 4)."""
        return self._apply(_Input(_E.ROUND_TRIP), now)

    def dropped(self, now: float, reason: str, *, replaced: bool = False) -> list[LinkEffect]:
        """The connection ended; ``replaced``: the relay closed it with 4000 (rule 5)."""
        event = _E.DROPPED_REPLACED if replaced else _E.DROPPED
        return self._apply(_Input(event, error=reason), now)

    def poll(self, now: float) -> list[LinkEffect]:
        """Fire the deadline if it has passed; call it at :attr:`next_deadline`."""
        if self._deadline is None or now < self._deadline:
            return []
        event = _E.RETRY_DUE if self._phase is _P.WAITING else _E.STABLE_TIMEOUT
        return self._apply(_Input(event), now)

    # ------------------------------------------------------------------ the engine

    def _apply(self, inp: _Input, now: float) -> list[LinkEffect]:
        previous = self._phase
        row = TRANSITIONS[previous].get(inp.event)
        if row is None:
            if inp.event in _LOCAL_EVENTS:
                raise LinkStateError(f"cannot {inp.event.value} while {previous.value}")
            return []  # rule 8
        if row.target is not previous:
            self._deadline = None  # every timer belongs to one phase
        self._phase = row.target
        for step in row.steps:
            self._run(step, inp, now)
        return inp.effects

    def _run(self, step: Step, inp: _Input, now: float) -> None:
        if step is _St.CONNECT:
            inp.effects.append(Connect())
        elif step is _St.ABORT:
            inp.effects.append(Abort())
        elif step is _St.ARM_STABLE_TIMER:
            self._deadline = now + self.stable_after
        elif step is _St.RESET_BACKOFF:
            self.backoff.reset()
        elif step is _St.NEXT_URL:
            self._url_index = (self._url_index + 1) % self.urls
            self._round_failures += 1
        elif step is _St.NEW_ROUND:
            self._round_failures = 0
        elif step is _St.WAIT_BACKOFF or step is _St.WAIT_REPLACED:
            if step is _St.WAIT_REPLACED:
                delay = self.replaced_retry_s
            elif self._round_failures % self.urls:
                delay = FAILOVER_DELAY  # the round has untried URLs (rule 10)
            else:
                delay = self.backoff.next_delay()
            self._deadline = now + delay
            inp.retry_in = delay
            inp.effects.append(Wait(delay))
        elif step is _St.REPORT:
            shown = PUBLIC_STATE[self._phase]
            if shown is not self._shown or inp.error is not None or inp.retry_in is not None:
                self._shown = shown
                inp.effects.append(Report(shown, inp.retry_in, inp.error))
        else:  # pragma: no cover - every Step is handled above
            raise AssertionError(f"unhandled step {step}")
