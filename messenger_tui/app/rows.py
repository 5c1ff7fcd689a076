"""Storage rows to the read models the facade hands out (kept apart from ``models`` so that
the UI, which imports the models, never loads the storage layer)."""

from __future__ import annotations

from messenger_tui.app.models import Contact, ContactId, Message
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.messages import MessageRow


def contact_model(row: ContactRow) -> Contact:
    return Contact(
        id=ContactId(row.id),
        name=row.name,
        identity=row.identity,
        verified=row.verified,
        key_changed=row.key_changed,
        blocked=row.blocked,
        auto_added=row.auto_added,
        muted=row.muted,
    )


def message_model(row: MessageRow) -> Message:
    return Message(
        id=row.id,
        message_id=row.message_id,
        contact_id=ContactId(row.contact_id),
        outgoing=row.outgoing,
        kind=row.kind,
        text=row.body,
        sent_at_ms=row.sent_at_ms,
        received_at_ms=row.received_at_ms,
        state=row.state,
        pos=row.pos,
    )
