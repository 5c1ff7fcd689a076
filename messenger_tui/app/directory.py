"""Contact lookups by identity, cached: every envelope in and out asks "who is this?"."""

from __future__ import annotations

from messenger_tui.storage.contacts import ContactRow, Contacts


class ContactDirectory:
    """Read-through cache over the contacts table. Call :meth:`invalidate` after any write."""

    def __init__(self, contacts: Contacts) -> None:
        self._contacts = contacts
        self._by_identity: dict[bytes, ContactRow] | None = None

    def by_identity(self, identity: bytes) -> ContactRow | None:
        if self._by_identity is None:
            self._by_identity = {row.identity: row for row in self._contacts.all()}
        return self._by_identity.get(identity)

    def invalidate(self) -> None:
        self._by_identity = None
