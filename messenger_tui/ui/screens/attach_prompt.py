"""The path prompt of "Attach file" (Ctrl+O, or the command palette): type or paste a path;
Tab or → takes the completion of the file or folder name being typed; Enter sends."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static

from messenger_tui.ui.bindings import focus_bindings

#: Names listed per folder when completing (a huge folder is not read whole).
MAX_LISTED = 2000


class PathSuggester(Suggester):
    """Completes the last path component from the folder's entries (a folder gets a "/")."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        text = value.strip("'\"")
        expanded = os.path.expanduser(text)
        folder, _, stem = expanded.rpartition("/")
        base = Path(folder or ".") if folder or not expanded.startswith("/") else Path("/")
        try:
            with os.scandir(base) as entries:
                names = []
                for n, entry in enumerate(entries):
                    if n >= MAX_LISTED:
                        break
                    if entry.name.startswith(stem) and entry.name != stem:
                        names.append(entry.name + ("/" if entry.is_dir() else ""))
        except OSError:
            return None
        if not names or (not stem and len(names) > 1):
            return None
        names.sort()
        return value + names[0][len(stem) :]


def clean_path(text: str) -> str:
    """A pasted path: surrounding quotes and spaces dropped, ``~`` expanded."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return os.path.expanduser(text)


class AttachPrompt(ModalScreen[str | None], inherit_bindings=False):
    """Dismisses with the path to send, or None."""

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "cancel", "Cancel", id="attach.cancel",
                tooltip="Close the prompt without sending"),
    ]  # fmt: skip

    def __init__(self, contact_name: str) -> None:
        super().__init__(classes="dialog-screen")
        self.contact_name = contact_name

    def compose(self) -> ComposeResult:
        with Vertical(id="attach-file", classes="dialog"):
            yield Static(f"Send a file to {self.contact_name}", classes="dialog-title",
                         markup=False)  # fmt: skip
            yield Label("Path (Tab completes; pasting a path works)")
            yield Input(id="attach-path", compact=True, suggester=PathSuggester())
            yield Static("", id="attach-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send", id="send", variant="primary", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def error(self, text: str) -> None:
        self.query_one("#attach-error", Static).update(text)

    def _submit(self) -> None:
        path = clean_path(self.query_one(Input).value)
        if not path:
            self.error("Type the path of a file.")
            return
        if not os.path.isfile(path):
            self.error(f"Not a file: {path}")
            return
        self.dismiss(path)
