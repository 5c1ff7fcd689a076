"""Every default key can be pressed: the bytes xterm and tmux send for it, fed through Textual's
own input parser, come out as the key the binding names.

Textual reads some sequences as other keys: ``ESC b`` (what a terminal sends for Alt+B) is
Ctrl+Left and ``ESC f`` is Ctrl+Right (iTerm's word movement), ``ESC Enter`` is Enter. A binding
on such a key never fires. The encodings below are those of xterm with Alt sending Escape (the
default of every common terminal) and of tmux with its default options (its prefix, Ctrl+B,
never reaches the app); tests/ui/test_terminal.py presses some of the keys in a real tmux."""

from __future__ import annotations

import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.binding import Binding

from messenger_tui.ui.screens.help import ui_classes

ESC = "\x1b"
_FN_TILDE = {5: 15, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 23, 12: 24}
_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D"}
_TILDE = {"pageup": 5, "pagedown": 6, "delete": 3, "insert": 2}
_PLAIN = {"enter": "\r", "tab": "\t", "escape": ESC, "backspace": "\x7f", "space": " "}
_CHARS = {"question_mark": "?", "slash": "/", "comma": ",", "full_stop": ".", "minus": "-"}
#: Keys only some terminals tell apart (the kitty keyboard protocol, xterm's modifyOtherKeys):
#: a binding may list them after a key every terminal sends (the one the help shows first).
WHERE_REPORTED = {"alt+enter", "shift+enter"}


def sequence(key: str, terminal: str) -> str | None:
    """What ``terminal`` ("xterm" or "tmux") sends for ``key`` (a Textual key string), or None
    when it cannot send it."""
    *mods, base = key.split("+")
    shift, alt, ctrl = "shift" in mods, "alt" in mods, "ctrl" in mods
    modifier = 1 + shift + 2 * alt + 4 * ctrl
    if set(mods) - {"shift", "alt", "ctrl"}:
        return None
    if len(base) == 1 and base.isalpha() and base.islower():
        if shift:
            return None  # Ctrl+Shift+letter is Ctrl+letter; Alt+Shift+b is another key
        if ctrl and base == "b" and terminal == "tmux":
            return None  # tmux's prefix
        char = chr(ord(base) - 96) if ctrl else base
        return (ESC if alt else "") + char
    if base in _CHARS and not mods:
        return _CHARS[base]
    if base in _PLAIN:
        if base == "tab" and mods == ["shift"]:
            return ESC + "[Z"
        if mods == ["alt"]:
            return ESC + _PLAIN[base]
        return None if mods else _PLAIN[base]
    if base.startswith("f") and base[1:].isdigit():
        n = int(base[1:])
        if n <= 4:
            letter = "PQRS"[n - 1]
            return f"{ESC}O{letter}" if modifier == 1 else f"{ESC}[1;{modifier}{letter}"
        code = _FN_TILDE[n]
        return f"{ESC}[{code}~" if modifier == 1 else f"{ESC}[{code};{modifier}~"
    if base in _CURSOR:
        letter = _CURSOR[base]
        return f"{ESC}[{letter}" if modifier == 1 else f"{ESC}[1;{modifier}{letter}"
    if base in ("home", "end"):
        if terminal == "tmux" and modifier == 1:
            return f"{ESC}[{1 if base == 'home' else 4}~"
        letter = "H" if base == "home" else "F"
        return f"{ESC}[{letter}" if modifier == 1 else f"{ESC}[1;{modifier}{letter}"
    if base in _TILDE:
        code = _TILDE[base]
        return f"{ESC}[{code}~" if modifier == 1 else f"{ESC}[{code};{modifier}~"
    raise AssertionError(f"no encoding known for {key!r}: add it to sequence()")


def parsed(data: str) -> list[str]:
    """The key names Textual's parser makes of ``data`` (what a binding is matched against)."""
    parser = XTermParser()
    messages = [*parser.feed(data), *parser.feed("")]
    return [m.key for m in messages if isinstance(m, events.Key)]


def arrives_as(key: str, terminal: str) -> list[str] | None:
    data = sequence(key, terminal)
    return None if data is None else parsed(data)


def default_bindings() -> list[tuple[str, Binding]]:
    return [
        (cls.__name__, b)
        for cls in ui_classes()
        for b in cls.__dict__.get("BINDINGS", [])
        if isinstance(b, Binding) and b.id
    ]


def test_the_encoder_reproduces_what_textual_misreads() -> None:
    """The defect this file guards against, and the encoder's own sanity."""
    assert arrives_as("alt+b", "xterm") == ["ctrl+left"]
    assert arrives_as("alt+f", "tmux") == ["ctrl+right"]
    assert arrives_as("alt+enter", "xterm") == ["enter"]
    assert arrives_as("ctrl+b", "tmux") is None
    assert arrives_as("alt+x", "xterm") == ["alt+x"]
    assert arrives_as("f5", "tmux") == ["f5"]


@pytest.mark.parametrize("terminal", ["xterm", "tmux"])
def test_every_default_binding_arrives_as_bound(terminal: str) -> None:
    bindings = default_bindings()
    assert len(bindings) > 40  # every screen's and widget's bindings were found
    wrong = []
    for owner, binding in bindings:
        keys = [k.strip() for k in binding.key.split(",")]
        for i, key in enumerate(keys):
            got = arrives_as(key, terminal)
            if got == [key]:
                continue
            if i > 0 and key in WHERE_REPORTED:
                continue  # an extra key; the first one works everywhere
            wrong.append(f"{owner} {binding.id}: {key} arrives as {got}")
    assert wrong == []
