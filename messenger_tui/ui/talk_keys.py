"""The talk key: what the terminal reports (:mod:`.kitty_keys`) turned into the mic gate's
events (:mod:`.talk_gate`), and the gate's state into the call's capture (``set_talking``).

The app owns one :class:`TalkKeys` and hands it the driver's messages: the talk key's
:class:`~.kitty_keys.KeyPress` and :class:`~.kitty_keys.KeyRelease` (hold-to-talk), the
talk binding's action (toggle: every terminal sends the key's press), ``AppBlur`` and the
answers to the support query (:class:`~.kitty_keys.KeyboardFlags`,
:class:`~.kitty_keys.DeviceAttributes`). Whether releases come is known once the terminal
answered; until then, and where they never come (no kitty protocol, tmux, a driver other than
ours: the headless one of tests, Windows), hold-to-talk falls back to a toggle and
:meth:`TalkKeys.notes` says why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Final

from textual.app import App
from textual.events import AppBlur
from textual.timer import Timer

from messenger_tui.ui.kitty_keys import (
    KITTY_REPORT_EVENT_TYPES,
    DeviceAttributes,
    KeyboardFlags,
    KeyPress,
    KeyRelease,
    KittyLinuxDriver,
)
from messenger_tui.ui.talk_gate import MAX_HOLD_S, GateEvent, Style, TalkGate, style_for

#: The default talk key (free in the app's keymap; ``call.talk`` rebinds it).
TALK_KEY: Final = "f4"
#: How long to wait for the terminal's answer to the support query before giving up.
DETECT_TIMEOUT_S: Final = 2.0


def key_label(key: str) -> str:
    """``f4`` -> ``F4``, ``ctrl+space`` -> ``Ctrl+Space``."""
    return "+".join(
        part.upper() if len(part) == 1 or part[1:].isdecimal() else part.capitalize()
        for part in key.split("+")
    )


class TalkKeys:
    """The mic gate's inputs and output. ``set_talking`` opens or closes the live call's
    capture; ``changed`` is called when what :meth:`notes` says may have changed."""

    def __init__(
        self,
        app: App[Any],
        set_talking: Callable[[bool], None],
        *,
        changed: Callable[[], None] = lambda: None,
        key: str = TALK_KEY,
        clock: Callable[[], float] = time.monotonic,
        max_hold_s: float = MAX_HOLD_S,
        environ: dict[str, str] | None = None,
    ) -> None:
        self._app = app
        self._set_talking = set_talking
        self._changed = changed
        self.key = key
        self._clock = clock
        self.gate = TalkGate(max_hold_s=max_hold_s)
        self.mode = "open"
        #: The terminal reports key releases: None until known.
        self.releases: bool | None = None
        #: Why releases never come, in words (when ``releases`` is False).
        self.no_releases_why = ""
        self._flags_seen = False
        self._environ = os.environ if environ is None else environ
        self._call_id: bytes | None = None
        self._last_repeat = False
        self._hold_timer: Timer | None = None
        self._detect_timer: Timer | None = None

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        """Once the app runs: wait for the driver's answer, or know there will be none."""
        if "TMUX" in self._environ:
            self._no_releases("tmux drops key releases")
        elif not isinstance(self._app._driver, KittyLinuxDriver):
            self._no_releases("this terminal reports no key releases")
        else:
            self._detect_timer = self._app.set_timer(DETECT_TIMEOUT_S, self._detect_timed_out)

    def set_mode(self, mode: str) -> None:
        """The talk mode setting (open, hold, toggle) changed."""
        self.mode = mode
        self._restyle()

    @property
    def style(self) -> Style:
        return self.gate.style

    @property
    def fallback(self) -> bool:
        """Hold-to-talk was asked for but the key toggles (releases never come, or not yet
        known)."""
        return self.mode == "hold" and self.gate.style is Style.TOGGLE

    # ------------------------------------------------------------------ the terminal's answers

    def flags(self, flags: int) -> None:
        """The terminal answered the flags query."""
        self._flags_seen = True
        if "TMUX" in self._environ:
            return
        if flags & KITTY_REPORT_EVENT_TYPES:
            self._stop_detect()
            self.releases = True
            self.no_releases_why = ""
            self._restyle()
        else:
            self._no_releases("this terminal does not report key releases")

    def attributes(self) -> None:
        """The terminal answered the device attributes query, after the flags one."""
        if not self._flags_seen:
            self._no_releases("this terminal has no kitty keyboard protocol (no key releases)")

    def _detect_timed_out(self) -> None:
        self._detect_timer = None
        if self.releases is None:
            self._no_releases("the terminal did not answer the key release query")

    def _no_releases(self, why: str) -> None:
        self._stop_detect()
        self.releases = False
        self.no_releases_why = why
        self._restyle()

    def _stop_detect(self) -> None:
        if self._detect_timer is not None:
            self._detect_timer.stop()
            self._detect_timer = None

    # ------------------------------------------------------------------ keys and focus

    def press(self, key: str, repeat: bool) -> None:
        """A key went down (the driver's :class:`~.kitty_keys.KeyPress`)."""
        if key != self.key:
            return
        self._last_repeat = repeat
        if self.gate.style is Style.HOLD and not repeat:
            self._event(GateEvent.TALK_DOWN)

    def release(self, key: str) -> None:
        """A key was released (the driver's :class:`~.kitty_keys.KeyRelease`)."""
        if key == self.key:
            self._event(GateEvent.TALK_UP)

    def action(self) -> None:
        """The talk binding fired (a press on any terminal; a repeat on a kitty one)."""
        repeat, self._last_repeat = self._last_repeat, False
        if self.gate.style is Style.TOGGLE and not repeat:
            self._event(GateEvent.TALK_DOWN)

    def blur(self) -> None:
        """The terminal lost the focus."""
        self._event(GateEvent.BLUR)

    # ------------------------------------------------------------------ the call

    def call_changed(self, call_id: bytes, live: bool, talking: bool) -> None:
        """The call's view changed: a new live call or the end of one resets the gate."""
        current = call_id if live else None
        if current != self._call_id:
            self._call_id = current
            self.gate.reset()
            self._arm_hold_timer()
        if live and talking != self.gate.talking:
            self._set_talking(self.gate.talking)

    def notes(self, talking: bool) -> tuple[str, str]:
        """What the call pane says about the gate: a short state for the summary line and a
        longer line for the fallback ("" when nothing needs saying)."""
        label = key_label(self.key)
        style = self.gate.style
        if style is Style.OPEN:
            return "", ""
        if style is Style.HOLD:
            state = f"talking (release {label} to stop)" if talking else f"hold {label} to talk"
            return state, ""
        state = f"talking ({label} to stop)" if talking else f"mic closed: {label} to talk"
        if self.mode != "hold":
            return state, ""
        if self.releases is None:
            return state, f"hold-to-talk: asking the terminal for key releases; {label} toggles"
        return state, f"hold-to-talk unavailable: {self.no_releases_why}; {label} toggles"

    # ------------------------------------------------------------------ internals

    def _restyle(self) -> None:
        was = self.gate.talking
        self.gate.set_style(style_for(self.mode, self.releases))
        self._arm_hold_timer()
        self._after(was)

    def _event(self, event: GateEvent) -> None:
        was = self.gate.talking
        self.gate.handle(event, self._clock())
        self._arm_hold_timer()
        self._after(was)

    def _after(self, was: bool) -> None:
        if self._call_id is not None and self.gate.talking != was:
            self._set_talking(self.gate.talking)
        self._changed()

    def _arm_hold_timer(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        deadline = self.gate.deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._hold_timer = self._app.set_timer(delay, self._hold_expired)

    def _hold_expired(self) -> None:
        self._hold_timer = None
        was = self.gate.talking
        self.gate.poll(self._clock())
        self._arm_hold_timer()
        self._after(was)


def talk_keys_of(app: App[Any]) -> TalkKeys | None:
    """The app's :class:`TalkKeys` (``MessengerApp.talk``), if it has one."""
    talk = getattr(app, "talk", None)
    return talk if isinstance(talk, TalkKeys) else None


class TalkKeyHandlers:
    """The app's handlers for what :class:`TalkKeys` needs (mix into an ``App`` that sets
    ``self.talk``): the driver's messages reach the app directly, in the order typed."""

    talk: TalkKeys

    def on_key_press(self, event: KeyPress) -> None:
        self.talk.press(event.key, event.repeat)

    def on_key_release(self, event: KeyRelease) -> None:
        self.talk.release(event.key)

    def on_keyboard_flags(self, event: KeyboardFlags) -> None:
        self.talk.flags(event.flags)

    def on_device_attributes(self, _event: DeviceAttributes) -> None:
        self.talk.attributes()

    def on_app_blur(self, _event: AppBlur) -> None:
        self.talk.blur()
