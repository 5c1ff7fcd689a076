"""What a front end (the Textual UI) may rely on, as interfaces free of I/O imports.

The UI must not import the transport, storage or sqlite3, not even indirectly (the
import-linter contract is transitive), so it cannot import :mod:`messenger_tui.app.service`.
It types against these protocols instead, and the CLI, which may import everything, hands it
the real :class:`~messenger_tui.app.service.MessengerService` and
:class:`~messenger_tui.app.launcher.Launcher`, which satisfy them structurally.

This module imports only the plain models, events and errors.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from messenger_tui.app import events as ev
from messenger_tui.app.models import Contact, Message


@dataclass(frozen=True)
class ConversationSummary:
    """What the conversation list shows for one contact."""

    contact: Contact
    last_message: Message | None
    unread: int

    @property
    def activity_key(self) -> tuple[int, int]:
        """Sort key, most recent activity first when sorted in reverse: the local row id of
        the last message (the order messages were stored here), then the contact's id."""
        last = self.last_message.id if self.last_message is not None else 0
        return (last, -self.contact.id)

    @property
    def last_activity_ms(self) -> int | None:
        """When the last message was sent (own) or received (theirs), if any."""
        m = self.last_message
        if m is None:
            return None
        return m.received_at_ms if (not m.outgoing and m.received_at_ms) else m.sent_at_ms


class SafetyNumberInfo(Protocol):
    @property
    def contact(self) -> Contact: ...
    @property
    def digits(self) -> str: ...  # 60 digits
    @property
    def formatted(self) -> str: ...  # groups of five


class ProfileInfo(Protocol):
    @property
    def relay_url(self) -> str: ...
    def close(self) -> None: ...


class MessengerFacade(Protocol):
    """The part of MessengerService the UI uses."""

    @property
    def address(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    @property
    def connection_state(self) -> str: ...
    @property
    def profile(self) -> ProfileInfo: ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def subscribe(self) -> asyncio.Queue[ev.Event]: ...
    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None: ...

    def contacts(self) -> list[Contact]: ...
    def contact(self, name: str) -> Contact: ...
    def contact_by_id(self, contact_id: int) -> Contact | None: ...
    def add_contact(self, address: str, name: str) -> Contact: ...
    def safety_number(self, name: str) -> SafetyNumberInfo: ...
    def accept_key(self, name: str) -> Contact: ...
    async def watch_presence(self) -> None: ...

    def conversations(self) -> list[ConversationSummary]: ...
    def conversation(self, contact_id: int) -> ConversationSummary | None: ...
    def history(
        self, name: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[Message]: ...
    def outbox_count(self) -> int: ...
    async def send_text(self, name: str, text: str) -> Message: ...
    async def mark_read(self, name: str) -> int: ...
    async def send_typing(self, name: str, active: bool) -> None: ...


class ProfileGate(Protocol):
    """Creates or unlocks the profile before the main screen (see app.launcher.Launcher)."""

    @property
    def home(self) -> Path: ...
    @property
    def has_embedded_relay(self) -> bool: ...
    @property
    def needs_onboarding(self) -> bool: ...
    @property
    def needs_passphrase(self) -> bool: ...
    @property
    def default_relay_url(self) -> str: ...

    async def create(
        self, name: str, passphrase: str | None, relay_url: str | None
    ) -> MessengerFacade: ...
    async def open(self, passphrase: str | None = None) -> MessengerFacade: ...
    async def prepare(self, service: MessengerFacade) -> str | None: ...
    async def release(self, service: MessengerFacade) -> None: ...
