"""What a keymap override may name: the binding ids of the app, and key strings Textual
understands. The CLI checks the config file's ``[keymap]`` with these before the app starts,
so that a typo becomes a readable notice instead of a key that silently does nothing."""

from __future__ import annotations

from functools import cache

from textual.binding import Binding
from textual.keys import Keys, key_to_character

MODIFIERS = frozenset({"ctrl", "alt", "shift", "super", "meta", "hyper"})
_NAMED_KEYS = frozenset(
    k.value for k in Keys if "+" not in k.value and not k.value.startswith("<")
) | {"minus", "plus", "comma", "full_stop", "slash", "backslash", "underscore", "at"}


@cache
def binding_ids() -> frozenset[str]:
    """Every binding id of the app's screens and widgets (all of ``messenger_tui.ui``)."""
    from messenger_tui.ui.screens.help import ui_classes

    return frozenset(
        binding.id
        for cls in ui_classes()
        for binding in cls.__dict__.get("BINDINGS", [])
        if isinstance(binding, Binding) and binding.id
    )


def key_problem(key: str) -> str | None:
    """What is wrong with one key string (``"ctrl+s"``, ``"f5"``, ``"alt+enter"``), or None."""
    key = key.strip()
    if not key:
        return "an empty key"
    if not key.isprintable() or " " in key:
        return f"{key!r} is not a key name"
    *modifiers, base = key.split("+") if key != "+" else ["+"]
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if unknown:
        return f"{key!r}: unknown modifier {unknown[0]!r} (use {', '.join(sorted(MODIFIERS))})"
    if len(base) == 1 or base in _NAMED_KEYS or key_to_character(base) is not None:
        return None
    return f"{key!r}: unknown key {base!r} (examples: a, f5, enter, pageup, ctrl+s)"
