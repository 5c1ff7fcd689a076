"""Conversation summaries for the UI's conversation list: last message, unread count.

One conversation per contact. Each summary costs a few indexed lookups (no scan of a long
conversation): the last message is the highest row id of the contact, and the unread messages
are the incoming texts, files and voice messages still in state ``received`` after the newest
one the user has seen (reading a conversation marks every unread message seen at once, so
nothing older than a seen message is ever unread).
"""

from __future__ import annotations

from messenger_tui.app.facade import ConversationSummary
from messenger_tui.app.models import Message
from messenger_tui.app.rows import contact_model, message_model
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.store import Store

__all__ = ["ConversationSummary", "summaries", "summary_for", "unread_count"]

#: :data:`~messenger_tui.app.models.UNREAD_KINDS` in SQL (schema 009's partial index).
UNREAD_KINDS_SQL = "('text', 'attachment', 'voice')"


def _last_message(store: Store, contact_id: int) -> Message | None:
    last = store.messages.history(contact_id, limit=1)
    return message_model(last[0]) if last else None


def unread_count(store: Store, contact_id: int) -> int:
    row = store.db.execute(
        "SELECT id FROM messages WHERE contact_id = ? AND outgoing = 0 "
        f"AND kind IN {UNREAD_KINDS_SQL} AND state = 'seen' ORDER BY id DESC LIMIT 1",
        (contact_id,),
    ).fetchone()
    after = int(row[0]) if row else 0
    return int(
        store.db.execute(
            "SELECT count(*) FROM messages WHERE contact_id = ? AND id > ? AND outgoing = 0 "
            f"AND kind IN {UNREAD_KINDS_SQL} AND state = 'received'",
            (contact_id, after),
        ).fetchone()[0]
    )


def summary_for(store: Store, row: ContactRow) -> ConversationSummary:
    return ConversationSummary(
        contact=contact_model(row),
        last_message=_last_message(store, row.id),
        unread=unread_count(store, row.id),
    )


def summaries(store: Store) -> list[ConversationSummary]:
    """Every conversation, most recent activity first."""
    out = [summary_for(store, row) for row in store.contacts.all()]
    out.sort(key=lambda s: s.activity_key, reverse=True)
    return out
