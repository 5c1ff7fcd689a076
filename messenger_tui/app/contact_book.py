"""The contact book: adding, renaming, blocking, muting, verifying and deleting contacts.

Every change follows one pattern (:meth:`ContactBook.change`): the writes run in one
transaction, the identity cache (:class:`~messenger_tui.app.directory.ContactDirectory`) is
invalidated, the row is read back, and a :class:`~messenger_tui.app.events.ContactChanged`
carrying the stored state is emitted. Changes that grant or revoke delivery access
(:mod:`messenger_tui.app.access_keys`) queue the ``Access`` payloads in that same transaction
and wake the sender after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import Contact
from messenger_tui.app.profile import validate_name
from messenger_tui.app.receiver import insert_notice
from messenger_tui.app.rows import contact_model
from messenger_tui.core.address import decode_address, encode_address
from messenger_tui.core.crypto.safety import format_safety_number, safety_number, safety_qr_payload
from messenger_tui.core.errors import AddressError
from messenger_tui.storage.store import Store


@dataclass(frozen=True)
class SafetyNumber:
    contact: Contact
    digits: str  # 60 digits
    formatted: str  # groups of five
    qr_payload: bytes = b""  # what the safety QR code encodes (core.crypto.safety)


class ContactBook:
    """Contacts on top of the profile store. ``emit`` publishes events, ``wake_sender`` lets
    the outbox go on (a grant queued, a key accepted), ``access_rotated`` is called after
    blocking someone rotated our delivery secret (register the new verifier)."""

    def __init__(
        self,
        store: Store,
        own_identity: bytes,
        directory: ContactDirectory,
        access: AccessKeys,
        *,
        now_ms: Callable[[], int],
        emit: Callable[[ev.Event], None],
        wake_sender: Callable[[], None],
        access_rotated: Callable[[], None],
    ) -> None:
        self._store = store
        self._own = own_identity
        self._directory = directory
        self._access = access
        self._now_ms = now_ms
        self._emit = emit
        self._wake_sender = wake_sender
        self._access_rotated = access_rotated

    # ------------------------------------------------------------------ reading

    def all(self) -> list[Contact]:
        return [contact_model(r) for r in self._store.contacts.all()]

    def named(self, name: str) -> Contact:
        """The contact called ``name``; :class:`BadInput` naming the known ones otherwise."""
        row = self._store.contacts.by_name(name)
        if row is None:
            known = ", ".join(c.name for c in self._store.contacts.all()) or "none yet"
            raise BadInput(
                f"no contact named {name!r} (known: {known}); add one with "
                "`messenger-tui contacts add ADDRESS --name NAME`"
            )
        return contact_model(row)

    def by_id(self, contact_id: int) -> Contact | None:
        """The contact with this local id (ids survive renames), or None if deleted."""
        row = self._store.contacts.by_id(contact_id)
        return contact_model(row) if row is not None else None

    def by_identity(self, identity: bytes) -> Contact | None:
        row = self._directory.by_identity(identity)
        return contact_model(row) if row is not None else None

    def safety_number(self, contact: Contact) -> SafetyNumber:
        """The number both sides compare to verify each other's keys, and its QR payload."""
        ours = (self._own, encode_address(self._own).encode())
        theirs = (contact.identity, contact.address.encode())
        digits = safety_number(*ours, *theirs)
        qr = safety_qr_payload(*ours, *theirs)
        return SafetyNumber(contact, digits, format_safety_number(digits), qr)

    # ------------------------------------------------------------------ changing

    def change(
        self, contact_id: int, write: Callable[[], object], *, wake_sender: bool = False
    ) -> Contact:
        """Run ``write`` in a transaction, forget the cached rows, read the contact back and
        emit :class:`ContactChanged` with it (then wake the sender if asked). The one way a
        stored contact changes, so the UI always sees the state that was committed."""

        def write_and_name() -> int:
            write()
            return contact_id

        return self._commit(write_and_name, wake_sender=wake_sender)

    def _commit(self, write: Callable[[], int], *, wake_sender: bool) -> Contact:
        """:meth:`change` for a write that returns the id of the contact it changed."""
        with self._store.db.transaction():
            contact_id = write()
        self._directory.invalidate()
        row = self._store.contacts.by_id(contact_id)
        if row is None:
            raise BadInput("that contact no longer exists")
        contact = contact_model(row)
        self._emit(ev.ContactChanged(contact))
        if wake_sender:
            self._wake_sender()
        return contact

    def add(self, address: str, name: str) -> Contact:
        """Add (or update) a contact. A known name with a new address is a key change:
        sending to it stays blocked until :meth:`accept_key`."""
        try:
            identity = decode_address(address)
        except AddressError as exc:
            raise BadInput(f"bad address: {exc}") from None
        if identity == self._own:
            raise BadInput("that is your own address")
        name = validate_name(name)
        contacts = self._store.contacts

        def write() -> int:
            now = self._now_ms()
            by_key = contacts.by_identity(identity)
            by_name = contacts.by_name(name)
            if by_key is not None:
                if by_key.name != name:
                    if by_name is not None:
                        raise BadInput(f"the name {name!r} is taken by another contact")
                    contacts.rename(by_key.id, name)
                contacts.confirm(by_key.id)
                row = contacts.by_id(by_key.id)
            elif by_name is not None:
                contacts.change_identity(by_name.id, identity)
                self._store.sessions.delete_peer(by_name.identity)
                row = contacts.by_id(by_name.id)
                assert row is not None
                insert_notice(
                    self._store,
                    row.id,
                    f"{name}'s identity key changed. Sending is blocked until you review the "
                    "new safety number (`messenger-tui contacts verify "
                    f"{name} --accept`).",
                    now,
                )
            else:
                row = contacts.insert(name, identity, now)
            assert row is not None
            if not row.blocked:
                # Adding someone grants them delivery access (docs/protocol.md).
                self._access.share_with([row.identity], now)
            return row.id

        return self._commit(write, wake_sender=True)

    def rename(self, contact: Contact, new_name: str) -> Contact:
        new_name = validate_name(new_name)
        if (
            self._store.contacts.by_name(new_name) is not None
            and new_name.lower() != contact.name.lower()
        ):
            raise BadInput(f"the name {new_name!r} is taken")
        return self.change(contact.id, lambda: self._store.contacts.rename(contact.id, new_name))

    def set_blocked(self, contact: Contact, blocked: bool) -> Contact:
        rotated = blocked and not contact.blocked

        def write() -> None:
            self._store.contacts.set_blocked(contact.id, blocked)
            if rotated:
                # Their copy of our delivery secret stops working (docs/threat-model.md);
                # every other added contact is sent the new one.
                self._access.rotate()
                self._access.share_with_all(self._now_ms())
            elif not blocked and contact.blocked:
                self._access.share_with([contact.identity], self._now_ms())

        updated = self.change(contact.id, write, wake_sender=True)
        if rotated:
            self._access_rotated()
        return updated

    def set_muted(self, contact: Contact, muted: bool) -> Contact:
        """Mute (no toast, bell or desktop notification) or unmute a contact."""
        return self.change(contact.id, lambda: self._store.contacts.set_muted(contact.id, muted))

    def accept_key(self, contact: Contact) -> Contact:
        """Mark the contact verified; also accepts a changed key and unblocks sending."""
        return self.change(
            contact.id, lambda: self._store.contacts.accept_key(contact.id), wake_sender=True
        )

    def delete(self, contact: Contact) -> None:
        """Delete a contact with its conversation, sessions and queued messages."""
        with self._store.db.transaction():
            self._store.outbox.drop_recipient(contact.identity)
            self._store.sessions.delete_peer(contact.identity)
            self._store.contacts.delete(contact.id)
        self._directory.invalidate()
