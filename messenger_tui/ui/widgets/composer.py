"""The composer: a multi-line text area where Enter sends and Ctrl+J inserts a newline; Ctrl+L
empties it and Ctrl+Z undoes the last edit (a paste is one edit).

Typing notifications are throttled here: ``Typing(active=True)`` at most every
:data:`TYPING_REFRESH_S` while the user types, ``Typing(active=False)`` after
:data:`TYPING_IDLE_S` without a key, when the text is cleared, or when it is sent.
"""

from __future__ import annotations

import time

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import TextArea

#: Re-announce "typing" at most this often while the user keeps typing.
TYPING_REFRESH_S = 3.0
#: Announce "stopped typing" after this long without a change.
TYPING_IDLE_S = 5.0
_OWN_ACTIONS = frozenset({"submit", "newline"})


class Composer(TextArea):
    """Posts :class:`Composer.Submitted` on Enter and :class:`Composer.TypingState` when the
    throttled typing state should be told to the contact."""

    BINDINGS = [
        Binding("enter", "submit", "Send", id="composer.send", tooltip="Send the message"),
        Binding("ctrl+j,alt+enter,shift+enter", "newline", "Newline",
                key_display="^j", id="composer.newline",
                tooltip="Insert a line break (Ctrl+J works in every terminal; Alt+Enter and "
                        "Shift+Enter where the terminal reports them)"),
        Binding("ctrl+l", "clear_text", "Clear", show=False, id="composer.clear",
                tooltip="Empty the composer, e.g. after a paste that went wrong (Ctrl+Z "
                        "brings the text back)"),
        Binding("ctrl+z", "undo", "Undo", show=False, id="composer.undo",
                tooltip="Undo the last edit: a whole paste, a clear, or what was typed last"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 8;
        border: tall $border-blurred;
        padding: 0 1;
        &:focus { border: tall $border; }
    }
    """

    class Submitted(Message):
        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class TypingState(Message):
        def __init__(self, active: bool) -> None:
            super().__init__()
            self.active = active

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
        self._typing_sent_at: float | None = None  # monotonic time of the last active=True
        self._idle_timer: Timer | None = None

    async def _on_key(self, event: events.Key) -> None:
        # The send and newline keys are handled here, in the order keys arrive (a priority
        # binding would run before the characters typed just before it reach the text), and
        # as bound (so a keymap override of composer.send / composer.newline applies).
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.node is self and active.binding.action in _OWN_ACTIONS:
            event.stop()
            event.prevent_default()
            await self.run_action(active.binding.action)
            return
        await super()._on_key(event)

    @property
    def typing_active(self) -> bool:
        """Whether the contact was told we are typing (and not yet that we stopped)."""
        return self._typing_sent_at is not None

    def action_submit(self) -> None:
        """Take the text out now (keys typed right after Enter start the next message) and
        hand it to the screen; it puts the text back with :meth:`restore` if it cannot send."""
        text = self.text
        if not text.strip():
            return
        with self.prevent(TextArea.Changed):
            self.clear()
        self.stop_typing()
        self.post_message(self.Submitted(self, text))

    def restore(self, text: str) -> None:
        """Put back a message that was not sent (before anything typed since)."""
        self.load_draft(text + self.text)

    def action_undo(self) -> None:
        """Undo the last edit. The cursor moves to the start first: Textual 8.2's undo measures
        the text again while the cursor is still where the undone edit left it, which raises
        (ValueError, the app ends) after a multi-line paste that showed the scrollbar."""
        self.move_cursor((0, 0))
        self.undo()

    def action_clear_text(self) -> None:
        """Empty the composer as one edit that Ctrl+Z undoes."""
        if self.text:
            self.history.checkpoint()
            self.clear()

    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)

    def load_draft(self, text: str) -> None:
        """Show a saved draft (switching conversations) without announcing typing."""
        with self.prevent(TextArea.Changed):
            self.text = text
        self.move_cursor(self.document.end)

    # ------------------------------------------------------------------ typing throttle

    def stop_typing(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.stop()
            self._idle_timer = None
        if self._typing_sent_at is not None:
            self._typing_sent_at = None
            self.post_message(self.TypingState(False))

    def reset_typing(self) -> None:
        """Forget the typing state without telling anyone (the conversation changed)."""
        if self._idle_timer is not None:
            self._idle_timer.stop()
            self._idle_timer = None
        self._typing_sent_at = None

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area is not self:
            return
        if not self.text.strip():
            self.stop_typing()
            return
        now = time.monotonic()
        if self._typing_sent_at is None or now - self._typing_sent_at >= TYPING_REFRESH_S:
            self._typing_sent_at = now
            self.post_message(self.TypingState(True))
        if self._idle_timer is not None:
            self._idle_timer.stop()
        self._idle_timer = self.set_timer(TYPING_IDLE_S, self.stop_typing)
