"""The profile store: the database plus one repository per concern."""

from __future__ import annotations

from pathlib import Path

from messenger_tui.storage.contacts import Contacts
from messenger_tui.storage.db import Database
from messenger_tui.storage.expiry import Expiry
from messenger_tui.storage.groups import Groups
from messenger_tui.storage.messages import Messages
from messenger_tui.storage.outbox import Outbox
from messenger_tui.storage.prekeys import Prekeys
from messenger_tui.storage.received import ReceivedEnvelopes
from messenger_tui.storage.sessions import Sessions
from messenger_tui.storage.settings import SettingsTable
from messenger_tui.storage.transfers import Transfers


class Store:
    """Open with :meth:`open`; group related writes in ``with store.db.transaction():``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.settings = SettingsTable(db)
        self.contacts = Contacts(db)
        self.messages = Messages(db)
        self.sessions = Sessions(db)
        self.prekeys = Prekeys(db)
        self.outbox = Outbox(db)
        self.received = ReceivedEnvelopes(db)
        self.groups = Groups(db)
        self.transfers = Transfers(db)
        self.expiry = Expiry(db)

    @classmethod
    def open(cls, path: Path, key: bytes | None = None) -> Store:
        """Open the database at ``path`` under ``key`` (see :meth:`Database.open`)."""
        return cls(Database.open(path, key))

    def close(self) -> None:
        self.db.close()
