"""The window of a conversation the view holds: which messages are loaded, whether older or
newer ones exist beyond them, and the paging that moves the window.

Pure state (no Textual): the view asks it to open, page, append and update, then draws what
it holds. Rules:

- Opened at the newest page, the window follows new messages; once more than
  :data:`MAX_LOADED` are loaded while following, the oldest half is dropped (it loads again
  as pages when the user scrolls up).
- Opened around a message (a search result), it does not reach the newest: new messages are
  not appended (they load when the user scrolls down), and paging either way drops the far
  end beyond :data:`MAX_LOADED`.
- Every method that forgets messages returns their row ids, so the view can drop what it
  drew for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from messenger_tui.app.models import Message
from messenger_tui.core.message_states import MessageState

#: Messages per page loaded from the store.
PAGE_SIZE = 100
#: While following the newest messages, keep at most this many loaded (older ones are
#: dropped and load again as pages when the user scrolls up): memory stays bounded.
MAX_LOADED = 2000
#: ``before_id`` that loads the newest page.
NEWEST = 2**62

Loader = Callable[[int, int], list[Message]]  # (before_id, limit) -> page, oldest first
NewerLoader = Callable[[int, int], list[Message]]  # (after_id, limit) -> page, oldest first


class HistoryWindow:
    """The loaded messages of one conversation, oldest first, with their paging state."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._pos: dict[int, int] = {}
        self.loader: Loader | None = None
        self.newer_loader: NewerLoader | None = None
        self.has_more = False
        self.has_newer = False  # the window ends before the newest message (search result)
        self.loading = False

    def __contains__(self, row_id: int) -> bool:
        return row_id in self._pos

    def get(self, row_id: int) -> Message | None:
        pos = self._pos.get(row_id)
        return self.messages[pos] if pos is not None else None

    def _set(self, messages: list[Message]) -> None:
        self.messages = messages
        self._pos = {m.id: i for i, m in enumerate(messages)}

    # ------------------------------------------------------------------ opening

    def open_newest(
        self, page: list[Message], loader: Loader | None, newer_loader: NewerLoader | None,
        *, page_size: int,
    ) -> None:  # fmt: skip
        """The newest page of a conversation."""
        self.loader, self.newer_loader = loader, newer_loader
        self._set(list(page))
        self.has_more = loader is not None and len(page) >= page_size
        self.has_newer = False

    def open_around(
        self, page: list[Message], loader: Loader | None, newer_loader: NewerLoader | None
    ) -> None:
        """The page around a message: whether more exists either way is asked of the loaders."""
        self.loader, self.newer_loader = loader, newer_loader
        self._set(list(page))
        first, last = (page[0].id, page[-1].id) if page else (NEWEST, 0)
        self.has_more = bool(page) and loader is not None and bool(loader(first, 1))
        self.has_newer = bool(page) and newer_loader is not None and bool(newer_loader(last, 1))

    def clear(self) -> None:
        self.loader = self.newer_loader = None
        self._set([])
        self.has_more = self.has_newer = False

    def back_to_newest(self) -> bool:
        """Load the newest page when the window does not reach it; False if it does."""
        if not self.has_newer or self.loader is None:
            return False
        page = self.loader(NEWEST, PAGE_SIZE)
        self._set(list(page))
        self.has_newer = False
        self.has_more = len(page) >= PAGE_SIZE
        return True

    def reload(self, page: list[Message], *, page_size: int) -> None:
        """Replace the content with a fresh newest page."""
        self._set(list(page))
        self.has_more = self.loader is not None and len(page) >= page_size

    # ------------------------------------------------------------------ changes

    def fresh(self, messages: list[Message]) -> list[Message]:
        """Of ``messages``, the ones not loaded yet, by row id."""
        return sorted((m for m in messages if m.id not in self._pos), key=lambda m: m.id)

    def merge(self, fresh: list[Message]) -> None:
        """Add messages anywhere (out of order, rare): sorted by row id."""
        self._set(sorted([*self.messages, *fresh], key=lambda m: m.id))

    def extend(self, fresh: list[Message]) -> None:
        """Add messages newer than every loaded one, at the end."""
        for m in fresh:
            self._pos[m.id] = len(self.messages)
            self.messages.append(m)

    def trim_followed(self) -> list[int] | None:
        """While following: beyond :data:`MAX_LOADED`, keep the newest half. Returns the
        dropped row ids, or None when nothing had to go."""
        if len(self.messages) <= MAX_LOADED:
            return None
        dropped = self.messages[: len(self.messages) - MAX_LOADED // 2]
        self._set(self.messages[len(dropped) :])
        self.has_more = self.loader is not None
        return [m.id for m in dropped]

    def set_state(self, row_id: int, state: MessageState) -> bool:
        """An own message moved to a new delivery state; False if not loaded or unchanged."""
        pos = self._pos.get(row_id)
        if pos is None or self.messages[pos].state == state:
            return False
        self.messages[pos] = dataclasses.replace(self.messages[pos], state=state)
        return True

    # ------------------------------------------------------------------ paging

    def older(self) -> tuple[list[Message], list[int]] | None:
        """Load the page before the oldest loaded message. Returns the page and the row ids
        dropped at the newest end, or None when nothing was loaded."""
        if not self.has_more or self.loader is None or self.loading or not self.messages:
            return None
        self.loading = True
        try:
            page = [m for m in self.loader(self.messages[0].id, PAGE_SIZE) if m.id not in self]
        finally:
            self.loading = False
        self.has_more = len(page) >= PAGE_SIZE
        if not page:
            return None
        messages = page + self.messages
        dropped: list[Message] = []
        if len(messages) > MAX_LOADED and self.newer_loader is not None:
            dropped, messages = messages[MAX_LOADED:], messages[:MAX_LOADED]
            self.has_newer = True
        self._set(messages)
        return page, [m.id for m in dropped]

    def newer(self) -> tuple[list[Message], list[int]] | None:
        """Load the page after the newest loaded message (the window does not reach the
        newest). Returns the page and the row ids dropped at the oldest end, or None."""
        if not self.has_newer or self.newer_loader is None or self.loading or not self.messages:
            return None
        self.loading = True
        try:
            page = [
                m for m in self.newer_loader(self.messages[-1].id, PAGE_SIZE) if m.id not in self
            ]
        finally:
            self.loading = False
        self.has_newer = len(page) >= PAGE_SIZE
        if not page:
            return None
        messages = self.messages + page
        dropped: list[Message] = []
        if len(messages) > MAX_LOADED and self.loader is not None:
            cut = len(messages) - MAX_LOADED
            dropped, messages = messages[:cut], messages[cut:]
            self.has_more = True
        self._set(messages)
        return page, [m.id for m in dropped]
