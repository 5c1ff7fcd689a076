"""The contact book on a real profile store, without a relay: every change goes through one
path (transaction, cache invalidated, row re-read, ContactChanged with the committed state)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.contact_book import ContactBook
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.errors import BadInput
from messenger_tui.app.profile import Profile, create_profile
from messenger_tui.core.address import encode_address
from messenger_tui.core.crypto.identity import IdentityKeyPair

NOW = 1_700_000_000_000


@dataclass
class Book:
    profile: Profile
    book: ContactBook
    directory: ContactDirectory
    access: AccessKeys
    events: list[ev.Event] = field(default_factory=list)
    wakes: list[None] = field(default_factory=list)
    rotations: list[None] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [kind for *_, kind in self._outbox()]

    def _outbox(self) -> list[tuple[bytes, str]]:
        return [(r.recipient, r.kind) for r in self.profile.store.outbox.pending()]


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    profile = create_profile(tmp_path / "me", "me", "ws://127.0.0.1:9", None)
    store = profile.store
    directory = ContactDirectory(store.contacts)
    access = AccessKeys(store)
    holder: list[Book] = []
    contact_book = ContactBook(
        store,
        profile.identity.public,
        directory,
        access,
        now_ms=lambda: NOW,
        emit=lambda e: holder[0].events.append(e),
        wake_sender=lambda: holder[0].wakes.append(None),
        access_rotated=lambda: holder[0].rotations.append(None),
    )
    holder.append(Book(profile, contact_book, directory, access))
    try:
        yield holder[0]
    finally:
        profile.close()


def new_address() -> tuple[bytes, str]:
    identity = IdentityKeyPair.generate().public
    return identity, encode_address(identity)


def test_change_commits_invalidates_rereads_and_emits(book: Book) -> None:
    identity, address = new_address()
    bob = book.book.add(address, "bob")
    assert book.directory.by_identity(identity) is not None  # the cache is filled
    store = book.profile.store
    book.events.clear()

    changed = book.book.change(bob.id, lambda: store.contacts.set_muted(bob.id, True))

    assert changed.muted and changed.id == bob.id
    assert book.events == [ev.ContactChanged(changed)]  # the committed state, once
    cached = book.directory.by_identity(identity)
    assert cached is not None and cached.muted  # the cache no longer serves the old row
    assert book.book.by_id(bob.id) == changed
    assert book.wakes == [None]  # only the add woke the sender


def test_a_failing_change_stores_nothing_and_emits_nothing(book: Book) -> None:
    _, address = new_address()
    bob = book.book.add(address, "bob")
    book.events.clear()
    store = book.profile.store

    def write() -> None:
        store.contacts.set_muted(bob.id, True)
        raise BadInput("refused half-way")

    with pytest.raises(BadInput, match="refused half-way"):
        book.book.change(bob.id, write)
    assert book.events == []
    reread = book.book.by_id(bob.id)
    assert reread is not None and not reread.muted  # rolled back


def test_a_change_to_a_deleted_contact_says_so(book: Book) -> None:
    _, address = new_address()
    bob = book.book.add(address, "bob")
    book.book.delete(bob)
    book.events.clear()
    with pytest.raises(BadInput, match="no longer exists"):
        book.book.change(bob.id, lambda: None)
    assert book.events == []


def test_add_grants_access_and_a_new_key_under_a_known_name_is_a_key_change(book: Book) -> None:
    first, address = new_address()
    bob = book.book.add(address, "bob")
    assert not bob.key_changed and book.kinds() == ["access"]
    assert book.events == [ev.ContactChanged(bob)]

    second, other_address = new_address()
    changed = book.book.add(other_address, "bob")
    assert changed.id == bob.id and changed.identity == second and changed.key_changed
    assert book.directory.by_identity(first) is None
    notices = book.profile.store.messages.history(bob.id)
    assert [m.kind for m in notices] == ["notice"] and "identity key changed" in notices[0].body
    assert book.events[-1] == ev.ContactChanged(changed)

    accepted = book.book.accept_key(changed)
    assert not accepted.key_changed and accepted.verified


def test_add_refuses_bad_input_without_storing(book: Book) -> None:
    _, address = new_address()
    with pytest.raises(BadInput, match="bad address"):
        book.book.add("not an address", "bob")
    with pytest.raises(BadInput, match="your own address"):
        book.book.add(encode_address(book.profile.identity.public), "me")
    book.book.add(address, "bob")
    _, carol = new_address()
    book.book.add(carol, "carol")
    with pytest.raises(BadInput, match="taken by another contact"):
        book.book.add(address, "carol")
    assert [c.name for c in book.book.all()] == ["bob", "carol"]


def test_rename_keeps_the_id_and_refuses_a_taken_name(book: Book) -> None:
    _, a = new_address()
    _, b = new_address()
    bob = book.book.add(a, "bob")
    book.book.add(b, "carol")
    renamed = book.book.rename(bob, "robert")
    assert renamed.id == bob.id and renamed.name == "robert"
    assert book.book.named("robert") == renamed
    with pytest.raises(BadInput, match="taken"):
        book.book.rename(renamed, "carol")
    assert book.book.rename(renamed, "Robert").name == "Robert"  # a change of case is fine


def test_blocking_rotates_our_secret_and_regrants_the_others(book: Book) -> None:
    _, a = new_address()
    carol_identity, b = new_address()
    bob = book.book.add(a, "bob")
    book.book.add(b, "carol")
    secret = book.access.own_secret()
    before = len(book.profile.store.outbox.pending())  # the adds' two grants
    assert before == 2

    blocked = book.book.set_blocked(bob, True)

    assert blocked.blocked and book.rotations == [None]
    assert book.access.own_secret() != secret
    new_rows = book.profile.store.outbox.pending()[before:]
    assert [(r.recipient, r.kind) for r in new_rows] == [(carol_identity, "access")]
    assert book.events[-1] == ev.ContactChanged(blocked)

    # Blocking again rotates nothing; unblocking grants the (current) secret to them again.
    book.book.set_blocked(blocked, True)
    assert book.rotations == [None]
    unblocked = book.book.set_blocked(book.book.named("bob"), False)
    assert not unblocked.blocked and book.rotations == [None]
    assert book.profile.store.outbox.pending()[-1].recipient == bob.identity


def test_delete_removes_the_contact_its_queue_and_its_cache_entry(book: Book) -> None:
    identity, address = new_address()
    bob = book.book.add(address, "bob")
    assert book.directory.by_identity(identity) is not None
    book.book.delete(bob)
    assert book.book.by_id(bob.id) is None and book.book.all() == []
    assert book.directory.by_identity(identity) is None
    assert book.profile.store.outbox.pending() == []
    with pytest.raises(BadInput, match="no contact named 'bob'"):
        book.book.named("bob")
