"""Read models the facade hands out: plain, immutable, free of storage types."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_tui.core.address import encode_address


@dataclass(frozen=True)
class Contact:
    id: int
    name: str
    identity: bytes
    verified: bool
    key_changed: bool
    blocked: bool
    auto_added: bool

    @property
    def address(self) -> str:
        return encode_address(self.identity)


@dataclass(frozen=True)
class Message:
    id: int  # local row id, display order
    message_id: bytes
    contact_id: int
    outgoing: bool
    kind: str  # text | notice
    text: str
    sent_at_ms: int
    received_at_ms: int | None
    state: str
