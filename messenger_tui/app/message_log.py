"""Reading the stored conversations: pages of history, full-text search, unread messages."""

from __future__ import annotations

import heapq

from messenger_tui.app.facade import SearchHit
from messenger_tui.app.models import Contact, Message
from messenger_tui.app.rows import contact_model, message_model
from messenger_tui.storage.store import Store


class MessageLog:
    """Read models over the profile's messages (nothing here writes)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def page(
        self, contact_id: int, *, limit: int = 50, before_id: int | None = None
    ) -> list[Message]:
        rows = self._store.messages.history(contact_id, limit=limit, before_id=before_id)
        return [message_model(r) for r in rows]

    def page_after(self, contact_id: int, after_id: int, *, limit: int = 50) -> list[Message]:
        """The page after ``after_id`` (a local row id), oldest first."""
        rows = self._store.messages.history_after(contact_id, after_id, limit=limit)
        return [message_model(r) for r in rows]

    def page_around(self, contact_id: int, message_id: int, *, limit: int = 50) -> list[Message]:
        """About ``limit`` messages with the row ``message_id`` in the middle, oldest first
        (where a search result opens); empty if it is not in this conversation."""
        rows = self._store.messages.history_around(contact_id, message_id, limit=limit)
        return [message_model(r) for r in rows]

    def search(self, text: str, *, contact_id: int | None, limit: int = 100) -> list[SearchHit]:
        """Full-text search for what the user typed, in one conversation or in all, newest
        first. Any text is safe (FTS5 syntax characters are taken literally)."""
        from messenger_tui.storage.messages import MATCH_END, MATCH_START

        hits: list[SearchHit] = []
        contacts: dict[int, Contact | None] = {}
        for row, snippet in self._store.messages.search_text(
            text, contact_id=contact_id, limit=limit
        ):
            if row.contact_id not in contacts:
                contact_row = self._store.contacts.by_id(row.contact_id)
                contacts[row.contact_id] = (
                    contact_model(contact_row) if contact_row is not None else None
                )
            contact = contacts[row.contact_id]
            if contact is None:
                continue
            plain, spans = split_marks(snippet, MATCH_START, MATCH_END)
            hits.append(SearchHit(contact, message_model(row), plain, spans))
        return hits

    def unread(self) -> list[tuple[Contact, Message]]:
        """Incoming messages not yet shown to the user: each conversation in its display
        order (the sender's), conversations merged by arrival."""
        per_contact: list[list[tuple[Contact, Message]]] = []
        for row in self._store.contacts.all():
            contact = contact_model(row)
            rows = self._store.messages.unread_incoming(row.id)
            per_contact.append([(contact, message_model(m)) for m in rows])
        return list(heapq.merge(*per_contact, key=lambda cm: cm[1].id))

    def message(self, row_id: int) -> Message | None:
        """One message by its local row id (None if it is gone)."""
        row = self._store.messages.by_id(row_id)
        return message_model(row) if row is not None else None


def split_marks(marked: str, start: str, end: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The text without the match marks, and the spans the marks enclosed."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    opened: int | None = None
    for ch in marked:
        if ch == start:
            opened = pos
        elif ch == end:
            if opened is not None and pos > opened:
                spans.append((opened, pos))
            opened = None
        else:
            out.append(ch)
            pos += 1
    return "".join(out), tuple(spans)
