"""The mic gate of a call: open mic, hold-to-talk or toggle, as a transition table.

The gate decides whether the microphone is live (the app's ``set_call_talking``); muting
(F6) is separate and wins over it. It runs in the UI because its inputs are keys and the
terminal's focus; the service only opens and closes the capture.

Design rules
============

1. **The table is the behaviour.** :data:`TRANSITIONS` maps ``(style, state, event)`` to the
   next state. Code outside it only classifies inputs (is this key the talk key, a press or
   a repeat) and reads the result. The table has no conditions in it.
2. **Sans-I/O.** Inputs carry ``now`` (monotonic seconds); the gate never sleeps. The maximum
   hold is a deadline: read :attr:`TalkGate.deadline` and call :meth:`TalkGate.poll`.
3. **Events the table does not list are ignored**: key input is noisy (a release whose press
   came before the call, a press the terminal repeats, a focus report while closed).
4. **The style follows the setting and the terminal**: ``open`` mode is :attr:`Style.OPEN`;
   ``toggle`` is :attr:`Style.TOGGLE`; ``hold`` is :attr:`Style.HOLD` only where the terminal
   reports key releases, else :attr:`Style.TOGGLE` (the fallback: a hold whose release never
   comes would leave the microphone open, so the key toggles instead and the UI says so).
5. **Reset to rest.** A new call, the end of a call and a change of style put the gate at its
   style's rest state (:data:`REST`): open for open mic, closed otherwise.
6. **Closed when unattended.** Losing the terminal's focus closes the gate in every gated
   style; a hold longer than ``max_hold_s`` (60 s) closes it too (a release that got lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Final

#: The longest hold; past it the gate closes as if the key was released.
MAX_HOLD_S: Final = 60.0


class Style(Enum):
    OPEN = "open"
    HOLD = "hold"
    TOGGLE = "toggle"


class GateState(Enum):
    OPEN_MIC = "open_mic"  # open mic: always live
    CLOSED = "closed"
    HELD = "held"  # live while the talk key is held
    LATCHED = "latched"  # live until the talk key is pressed again


class GateEvent(Enum):
    TALK_DOWN = "talk_down"  # the talk key went down (not a repeat)
    TALK_UP = "talk_up"  # the talk key was released
    BLUR = "blur"  # the terminal lost the focus
    MAX_HOLD = "max_hold"  # the deadline passed


S, G, E = Style, GateState, GateEvent
TRANSITIONS: Final[Mapping[tuple[Style, GateState, GateEvent], GateState]] = {
    (S.HOLD, G.CLOSED, E.TALK_DOWN): G.HELD,
    (S.HOLD, G.HELD, E.TALK_UP): G.CLOSED,
    (S.HOLD, G.HELD, E.BLUR): G.CLOSED,
    (S.HOLD, G.HELD, E.MAX_HOLD): G.CLOSED,
    (S.TOGGLE, G.CLOSED, E.TALK_DOWN): G.LATCHED,
    (S.TOGGLE, G.LATCHED, E.TALK_DOWN): G.CLOSED,
    (S.TOGGLE, G.LATCHED, E.BLUR): G.CLOSED,
}
#: Where each style starts (rule 5).
REST: Final[Mapping[Style, GateState]] = {
    S.OPEN: G.OPEN_MIC,
    S.HOLD: G.CLOSED,
    S.TOGGLE: G.CLOSED,
}
#: The states in which the microphone is live.
LIVE: Final = frozenset({G.OPEN_MIC, G.HELD, G.LATCHED})


def style_for(mode: str, releases: bool | None) -> Style:
    """Rule 4: the style of talk ``mode`` on a terminal that reports key releases
    (``releases``; None: not known yet, treated as not)."""
    if mode == "hold":
        return Style.HOLD if releases else Style.TOGGLE
    if mode == "toggle":
        return Style.TOGGLE
    return Style.OPEN


class TalkGate:
    """One gate; the app keeps one for its calls."""

    def __init__(self, style: Style = Style.OPEN, max_hold_s: float = MAX_HOLD_S) -> None:
        self.max_hold_s = max_hold_s
        self.style = style
        self.state = REST[style]
        self._held_since: float | None = None

    @property
    def talking(self) -> bool:
        return self.state in LIVE

    @property
    def deadline(self) -> float | None:
        """When a hold ends by itself (rule 6), or None when nothing is held."""
        if self.state is not GateState.HELD or self._held_since is None:
            return None
        return self._held_since + self.max_hold_s

    def set_style(self, style: Style) -> None:
        """Rule 5 on a change of style (nothing happens when the style stays)."""
        if style is not self.style:
            self.style = style
            self.reset()

    def reset(self) -> None:
        """Rule 5: the style's rest state."""
        self.state = REST[self.style]
        self._held_since = None

    def handle(self, event: GateEvent, now: float) -> GateState:
        """Apply ``event``; returns the (possibly unchanged) state."""
        after = TRANSITIONS.get((self.style, self.state, event))
        if after is not None:
            if after is GateState.HELD and self.state is not GateState.HELD:
                self._held_since = now
            self.state = after
        return self.state

    def poll(self, now: float) -> GateState:
        """The maximum hold, once its deadline has passed."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return self.handle(GateEvent.MAX_HOLD, now)
        return self.state
