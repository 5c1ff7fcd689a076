"""The help screen (F1, ?): every key of the app, generated from the bindings themselves with
the keymap in effect applied (defaults, or overrides from ``make_app(keymap=...)`` and the
config file), never a hand-written list. Grouped by where the keys work; each row shows the
key(s), what it does and the binding id a keymap override names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static

#: Sections first in the list (by class name); other classes with bindings follow.
FIRST = [
    "MessengerApp",
    "MainScreen",
    "ConversationList",
    "ConversationView",
    "Composer",
    "SearchScreen",
]
#: Titles of known sections; others are derived from the class name.
TITLES = {
    "MessengerApp": "Everywhere",
    "MainScreen": "Main screen",
    "ConversationList": "Conversation list",
    "ConversationView": "Conversation view",
    "Composer": "Composer",
    "SearchScreen": "Search",
    "SafetyNumberScreen": "Safety number",
    "OwnAddressScreen": "Your address",
    "AddContactScreen": "Add contact",
    "RenameContactScreen": "Rename contact",
    "ConfirmScreen": "Confirmation dialogs",
    "OnboardingScreen": "First run",
    "UnlockScreen": "Unlock",
    "HelpScreen": "This help",
}
_NAMED_KEYS = {
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "escape": "Esc",
    "question_mark": "?",
    "enter": "Enter",
    "tab": "Tab",
    "space": "Space",
    "backspace": "Backspace",
    "delete": "Delete",
    "home": "Home",
    "end": "End",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
}


def key_label(key: str) -> str:
    """``ctrl+shift+f`` -> ``Ctrl+Shift+F``, ``pageup`` -> ``PageUp``, ``f1`` -> ``F1``."""
    parts = key.strip().split("+")
    out = []
    for part in parts:
        if part in _NAMED_KEYS:
            out.append(_NAMED_KEYS[part])
        elif len(part) == 1:
            out.append(part.upper() if len(parts) > 1 else part)
        else:
            out.append(part[:1].upper() + part[1:])
    return "+".join(out)


def _title(cls: type) -> str:
    name = cls.__name__
    if name in TITLES:
        return TITLES[name]
    words = re.findall(r"[A-Z][a-z0-9]*", name.removesuffix("Screen")) or [name]
    return " ".join([words[0], *(w.lower() for w in words[1:])])


@cache
def ui_classes() -> tuple[type[DOMNode], ...]:
    """Every class of ``messenger_tui.ui`` that declares bindings, the known ones first."""
    import messenger_tui.ui as ui

    found: dict[str, type[DOMNode]] = {}
    for info in pkgutil.walk_packages(ui.__path__, "messenger_tui.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, DOMNode)
                and cls.__module__ == module.__name__
                and cls.__dict__.get("BINDINGS")
            ):
                found[cls.__name__] = cls
    first = [found.pop(n) for n in FIRST if n in found]
    return (*first, *sorted(found.values(), key=_title))


def effective_bindings(cls: type[DOMNode], keymap: dict[str, str]) -> list[tuple[str, Binding]]:
    """``(keys, binding)`` of a class with ``keymap`` applied, the keys of one binding joined
    (``Ctrl+J, Alt+Enter``), in declaration order."""
    merged: BindingsMap | None = cls._merged_bindings
    if merged is None:
        return []

    def ident(binding: Binding) -> str:
        return binding.id or f"{binding.action}/{binding.description}"

    order: dict[str, int] = {}
    for entries in merged.key_to_bindings.values():
        for binding in entries:
            order.setdefault(ident(binding), len(order))
    bindings = merged.copy()
    if keymap:
        bindings.apply_keymap(keymap)
    grouped: dict[str, tuple[list[str], Binding]] = {}
    for key, entries in bindings.key_to_bindings.items():
        for binding in entries:
            if binding.system and not binding.id:
                continue
            keys, _ = grouped.setdefault(ident(binding), ([], binding))
            label = key_label(key)
            if label not in keys:
                keys.append(label)
    ordered = sorted(grouped.items(), key=lambda item: order.get(item[0], len(order)))
    return [(", ".join(keys), binding) for _, (keys, binding) in ordered]


def help_sections(
    keymap: dict[str, str], classes: Iterable[type[DOMNode]] | None = None
) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``[(section title, [(keys, what it does, binding id), ...]), ...]``."""
    out: list[tuple[str, list[tuple[str, str, str]]]] = []
    for cls in classes if classes is not None else ui_classes():
        rows = []
        for keys, binding in effective_bindings(cls, keymap):
            what = binding.tooltip or binding.description or binding.action
            rows.append((keys, what, binding.id or ""))
        if rows:
            out.append((_title(cls), rows))
    return out


def app_keymap(app: App[Any]) -> dict[str, str]:
    """The keymap in effect (binding id -> keys)."""
    return dict(app._keymap)


class HelpScreen(ModalScreen[None], inherit_bindings=False):
    BINDINGS = [
        Binding("escape,f1,question_mark", "close", "Close", id="help.close",
                tooltip="Close the help"),
    ]  # fmt: skip

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog compact-dialog"):
            yield Static("Keys  (Esc or F1 closes; ↑ ↓ PageUp PageDown scroll)",
                         classes="dialog-title")  # fmt: skip
            with VerticalScroll(id="help-keys"):
                yield Static(self._table(), id="help-table")

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def on_mount(self) -> None:
        self.query_one("#help-keys", VerticalScroll).focus()

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column("keys", style="bold", max_width=16)
        table.add_column("what", ratio=1)
        table.add_column("id", style="dim", no_wrap=True)
        for title, rows in help_sections(app_keymap(self.app)):
            table.add_row(Text(title, style="bold underline"), "", "")
            for keys, what, ident in rows:
                table.add_row(keys, what, ident)
            table.add_row("", "", "")
        return table

    @property
    def text(self) -> str:
        """The help as plain text (tests)."""
        lines = []
        for title, rows in help_sections(app_keymap(self.app)):
            lines.append(title)
            lines.extend(f"  {keys}  {what}  {ident}" for keys, what, ident in rows)
        return "\n".join(lines)

    def action_close(self) -> None:
        self.dismiss(None)
