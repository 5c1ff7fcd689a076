"""Sessions for one batch of work: loaded once per peer, written once at the end.

Decrypting a burst of envelopes (or sealing a burst of outbox rows) touches the same few
sessions again and again; deserializing and saving each time dominated the client's cost.
Create a :class:`SessionBook` inside a database transaction, read with :meth:`candidates` /
:meth:`active`, record each new state with :meth:`put` *after* the writes that depend on it
succeeded, and call :meth:`flush` before the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger_tui.core.crypto import session as cs
from messenger_tui.storage.sessions import Sessions


@dataclass
class _Entry:
    base_key: bytes
    session: cs.Session
    active: bool


class SessionBook:
    def __init__(self, repo: Sessions, now_ms: int) -> None:
        self._repo = repo
        self._now_ms = now_ms
        self._peers: dict[bytes, list[_Entry]] = {}
        self._dirty: set[tuple[bytes, bytes]] = set()

    def _entries(self, peer: bytes) -> list[_Entry]:
        entries = self._peers.get(peer)
        if entries is None:
            entries = [
                _Entry(base_key, cs.deserialize_session(state), active)
                for base_key, state, active in self._repo.for_peer(peer)
            ]
            self._peers[peer] = entries
        return entries

    def candidates(self, peer: bytes) -> list[tuple[bytes, cs.Session]]:
        """The peer's sessions, the active one first."""
        return [(e.base_key, e.session) for e in self._entries(peer)]

    def active(self, peer: bytes) -> cs.Session | None:
        entries = self._entries(peer)
        return entries[0].session if entries and entries[0].active else None

    def put(self, peer: bytes, session: cs.Session, *, make_active: bool = True) -> None:
        """Record a session's new state (and make it the one used for sending)."""
        entries = self._entries(peer)
        existing = next((e for e in entries if e.base_key == session.base_key), None)
        if existing is None:
            existing = _Entry(session.base_key, session, False)
            entries.insert(0, existing)
        existing.session = session
        if make_active:
            for e in entries:
                e.active = e is existing
            entries.remove(existing)
            entries.insert(0, existing)
        self._dirty.add((peer, session.base_key))

    def flush(self) -> None:
        """Write every changed session (call inside the batch's transaction)."""
        for peer, base_key in sorted(self._dirty, key=lambda k: self._order(k)):
            entry = next(e for e in self._peers[peer] if e.base_key == base_key)
            self._repo.save(
                peer,
                base_key,
                cs.serialize_session(entry.session),
                self._now_ms,
                make_active=entry.active,
            )
        self._dirty.clear()

    def _order(self, key: tuple[bytes, bytes]) -> int:
        # Save inactive sessions before the active one so the active flag ends up right.
        peer, base_key = key
        entry = next(e for e in self._peers[peer] if e.base_key == base_key)
        return 1 if entry.active else 0
