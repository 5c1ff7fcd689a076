"""Key releases through the kitty keyboard protocol, for hold-to-talk.

Textual 8 asks the terminal for the kitty protocol's flags 1, 8 and 16 (disambiguate, all keys
as escape codes, associated text) but never for flag 2 (report event types), and its parser
raises on the event-type field: ``CSI 32;1:3u`` (space released) ends in ``int("1:3")``, the
parser's generator dies and the next key raises ``RuntimeError``. This module extends Textual
in our UI layer (https://sw.kovidgoyal.net/kitty/keyboard-protocol/):

- :class:`KittyKeyParser`, an ``XTermParser`` that reads ``CSI code;mods:event u`` (and the
  ``~`` and letter forms of functional keys): a press (``:1`` or no event type) and a repeat
  (``:2``) become Textual's usual :class:`textual.events.Key`; a release (``:3``) becomes a
  :class:`KeyRelease` message and never a key. The answer to a query, ``CSI ? flags u``,
  becomes a :class:`KeyboardFlags` message. No kitty sequence makes it raise: one it cannot
  read is dropped whole, never re-issued as stray keys.
- :class:`KittyLinuxDriver`, Textual's Linux driver reading with that parser, and able to
  push flag 2 onto the terminal's flag stack (``CSI > flags u``, with Textual's own flags, so
  typed text keeps working), pop it again (``CSI < u``) and ask which flags are on
  (``CSI ? u``). Stopping the app pops what it pushed first, so Textual's own pop still
  restores the terminal.

Wiring: :class:`~messenger_tui.ui.app.MessengerApp` runs on :class:`KittyLinuxDriver` on
Linux and macOS. When the app starts (and again after a suspend) the driver pushes
:data:`HOLD_TO_TALK_FLAGS` and asks which flags are on (``CSI ? u``) followed by the primary
device attributes (``CSI c``), which every terminal answers: a :class:`KeyboardFlags` answer
with :data:`KITTY_REPORT_EVENT_TYPES` set means releases will come; a
:class:`DeviceAttributes` answer with no flags before it means the terminal has no kitty
protocol (tmux answers so too). :mod:`messenger_tui.ui.talk_keys` pairs the talk key's
:class:`KeyPress` with its :class:`KeyRelease` (both straight from the driver, in the order
typed; never ``Key`` with a release: Textual routes a ``Key`` through the screen first).
"""

from __future__ import annotations

import os
import re
import selectors
from codecs import getincrementaldecoder
from collections.abc import Iterable
from typing import Final

from textual import constants, events
from textual._loop import loop_last
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver
from textual.keys import Keys
from textual.message import Message

KITTY_DISAMBIGUATE_ESCAPE_CODES: Final = 0b00001
KITTY_REPORT_EVENT_TYPES: Final = 0b00010
KITTY_REPORT_ALTERNATE_KEYS: Final = 0b00100
KITTY_REPORT_ALL_KEYS: Final = 0b01000
KITTY_REPORT_ASSOCIATED_TEXT: Final = 0b10000
#: The flags Textual 8's driver pushes when it starts.
TEXTUAL_FLAGS: Final = (
    KITTY_DISAMBIGUATE_ESCAPE_CODES | KITTY_REPORT_ALL_KEYS | KITTY_REPORT_ASSOCIATED_TEXT
)
#: What hold-to-talk pushes: Textual's flags plus event types. Flag 8 matters: without it,
#: plain text keys (the space bar) arrive as text and their releases are never reported.
HOLD_TO_TALK_FLAGS: Final = TEXTUAL_FLAGS | KITTY_REPORT_EVENT_TYPES

EVENT_PRESS: Final = 1
EVENT_REPEAT: Final = 2
EVENT_RELEASE: Final = 3

PUSH_FLAGS: Final = "\x1b[>{flags}u"
POP_FLAGS: Final = "\x1b[<u"
QUERY_FLAGS: Final = "\x1b[?u"
#: Primary device attributes: every VT100-like terminal answers ``CSI ? ... c``.
QUERY_DEVICE_ATTRIBUTES: Final = "\x1b[c"

# CSI [code[:alternates]] [; mods[:event]] [; text[:text...]] final
_KITTY_KEY: Final = re.compile(
    r"\x1b\[(?P<code>[\d:]*)(?:;(?P<mods>\d*)(?::(?P<event>\d*))?(?:;(?P<text>[\d:]*))?)?"
    r"(?P<final>[u~ABCDEFHPQRS])"
)
_FLAGS_REPLY: Final = re.compile(r"\x1b\[\?(?P<flags>\d*)u")
_ATTRIBUTES_REPLY: Final = re.compile(r"\x1b\[\?[\d;]*c")


class KeyRelease(Message):
    """A key was released (the kitty protocol with :data:`KITTY_REPORT_EVENT_TYPES`).

    ``key`` is the name Textual gives the same key's press (``"space"``, ``"shift+a"``), or
    ``""`` when the sequence names no key Textual knows. A press carries the text it types
    and a release does not, so shift+a is pressed as ``"A"`` and released as ``"shift+a"``:
    match a release to its press by ``code``, the kitty key code (32 for the space bar)."""

    def __init__(self, key: str, code: int) -> None:
        super().__init__()
        self.key = key
        self.code = code


class KeyPress(Message):
    """A key was pressed (``repeat``: auto-repeated), sent beside Textual's ``Key`` for every
    key the terminal sends in the kitty form. Textual routes a ``Key`` through the screen and
    the focused widget before the app sees it, while the driver's messages reach the app
    directly: a hold-to-talk handler must pair :class:`KeyPress` with :class:`KeyRelease`
    (both straight from the driver, in the order typed), never ``Key`` with a release."""

    def __init__(self, key: str, code: int, repeat: bool) -> None:
        super().__init__()
        self.key = key
        self.code = code
        self.repeat = repeat


class KeyboardFlags(Message):
    """The terminal's answer to :data:`QUERY_FLAGS`: the kitty flags in force."""

    def __init__(self, flags: int) -> None:
        super().__init__()
        self.flags = flags

    @property
    def reports_releases(self) -> bool:
        return bool(self.flags & KITTY_REPORT_EVENT_TYPES)


class DeviceAttributes(Message):
    """The terminal answered :data:`QUERY_DEVICE_ATTRIBUTES`. Sent after the flags query, so
    a terminal with the kitty protocol has answered that one first."""


def _ignored(sequence: str) -> events.Key:
    """A key Textual's parser drops (it filters :data:`Keys.Ignore`), consuming ``sequence``."""
    return events.Key(Keys.Ignore, sequence)


class KittyKeyParser(XTermParser):
    """Textual's parser plus kitty event types and flag replies (see the module doc)."""

    def _emit(self, message: Message) -> None:
        # the parse loop appends its tokens to this deque; ours go in the same order
        self._tokens.append(message)

    def _press_keys(self, sequence: str) -> list[events.Key]:
        try:
            return list(super()._sequence_to_key_events(sequence))
        except Exception:  # e.g. chr() of a code past U+10FFFF: drop the sequence
            return []

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if sequence.startswith("\x1b[") and len(sequence) > 2:
            if (reply := _FLAGS_REPLY.fullmatch(sequence)) is not None:
                flags = reply["flags"]
                self._emit(KeyboardFlags(int(flags) if flags else 0))
                yield _ignored(sequence)
                return
            if _ATTRIBUTES_REPLY.fullmatch(sequence) is not None:
                self._emit(DeviceAttributes())
                yield _ignored(sequence)
                return
            if (match := _KITTY_KEY.fullmatch(sequence)) is not None:
                yield from self._kitty_key(sequence, match)
                return
        yield from super()._sequence_to_key_events(sequence, alt)

    def _kitty_key(self, sequence: str, match: re.Match[str]) -> Iterable[events.Key]:
        code, mods, event, text = match["code"], match["mods"], match["event"], match["text"]
        base = code.split(":", 1)[0]
        number = int(base) if base else 1
        if event is None and ":" not in code:
            # no event type and no alternate keys: Textual's own form
            keys = self._press_keys(sequence)
            if keys:
                self._emit(KeyPress(keys[0].key, number, repeat=False))
            yield from keys if keys else [_ignored(sequence)]
            return
        # the press this sequence stands for: first key code, no event type
        press = f"\x1b[{base}"
        if mods is not None:
            press += f";{mods}"
            if text:
                press += f";{text}"
        press += match["final"]
        keys = self._press_keys(press)
        if event and event.isdecimal() and int(event) == EVENT_RELEASE:
            self._emit(KeyRelease(keys[0].key if keys else "", number))
            yield _ignored(sequence)
            return
        # press, repeat, or an event type this protocol version does not define: a key
        if keys:
            self._emit(KeyPress(keys[0].key, number, repeat=event == str(EVENT_REPEAT)))
        yield from keys if keys else [_ignored(sequence)]


class KittyLinuxDriver(LinuxDriver):
    """Textual's Linux driver with :class:`KittyKeyParser` and the flag stack calls."""

    _pushed = 0

    def push_key_releases(self, flags: int = HOLD_TO_TALK_FLAGS) -> None:
        """Ask the terminal to report key releases (pushes ``flags`` on its stack)."""
        self.write(PUSH_FLAGS.format(flags=flags))
        self.flush()
        self._pushed += 1

    def pop_key_releases(self) -> None:
        """Undo :meth:`push_key_releases` (no-op when nothing is pushed)."""
        if self._pushed:
            self._pushed -= 1
            self.write(POP_FLAGS)
            self.flush()

    def query_keyboard_flags(self) -> None:
        """Ask which flags are on, then the device attributes: a supporting terminal answers
        with :class:`KeyboardFlags` then :class:`DeviceAttributes`, one without the protocol
        with :class:`DeviceAttributes` alone."""
        self.write(QUERY_FLAGS + QUERY_DEVICE_ATTRIBUTES)
        self.flush()

    def start_application_mode(self) -> None:
        """Textual's start, then key releases on (after Textual's own push, so ours is on
        top) and the support query. Also runs on resuming after a suspend."""
        super().start_application_mode()  # type: ignore[no-untyped-call]
        if self._writer_thread is None or constants.DISABLE_KITTY_KEY:
            return  # Textual gave up (no terminal), or the user turned the protocol off
        self.push_key_releases()
        self.query_keyboard_flags()

    def stop_application_mode(self) -> None:
        """Pops what we pushed first, so Textual's own pop restores the terminal. Also runs
        on suspend (Ctrl+Z) and on exit."""
        while self._pushed:
            self.pop_key_releases()
        super().stop_application_mode()

    def run_input_thread(self) -> None:
        """Textual 8.2's ``LinuxDriver.run_input_thread`` with our parser."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = KittyKeyParser(self._debug)
        feed, tick = parser.feed, parser.tick
        decode = getincrementaldecoder("utf-8")().decode

        def process(ready: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for last, (_key, mask) in loop_last(ready):
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(fileno, 4096), final=final and last)
                    if not data:
                        break
                    for message in feed(data):
                        self.process_message(message)
            for message in tick():
                self.process_message(message)

        try:
            while not self.exit_event.is_set():
                process(selector.select(0.1))
            selector.unregister(self.fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _message in feed(""):
                    pass
            except (EOFError, ParseError):
                pass
