"""The transfers table (schema 008): a transfer survives reopening the database, is found
again by its source file, and goes with its message or contact."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_tui.storage.store import Store


def test_a_transfer_round_trips_and_cascades(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db", None)
    with store.db.transaction():
        contact = store.contacts.insert("bob", b"\x01" * 32, 1)
        message = store.messages.insert(
            contact.id, b"m" * 16, outgoing=True, body="[file] a", sent_at_ms=1, state="queued"
        )
        assert message is not None
        row = store.transfers.insert(
            contact_id=contact.id,
            direction="up",
            status="encrypting",
            name="a.bin",
            mime_type="application/octet-stream",
            size=10,
            now_ms=5,
            message_row=message.id,
            path="/x/a.bin",
            state=b"secret-state",
            blob_size=600,
            source_mtime_ns=7,
        )
    assert "secret" not in repr(row)
    store.transfers.update(row.id, 6, status="uploading", blob_id=b"\x02" * 32, done_bytes=300)
    store.close()
    store = Store.open(tmp_path / "db", None)
    again = store.transfers.get(row.id)
    assert again is not None
    assert (again.status, again.blob_id, again.done_bytes, again.state) == (
        "uploading",
        b"\x02" * 32,
        300,
        b"secret-state",
    )
    assert store.transfers.for_message(message.id) == again
    found = store.transfers.find_upload(contact.id, "/x/a.bin", 10, 7, ("uploading",))
    assert found == again
    assert store.transfers.find_upload(contact.id, "/x/a.bin", 10, 8, ("uploading",)) is None
    with pytest.raises(ValueError, match="not transfer columns"):
        store.transfers.update(row.id, 7, name="evil")
    with store.db.transaction():
        store.db.execute("DELETE FROM messages WHERE id = ?", (message.id,))
    assert store.transfers.get(row.id) is None
    store.close()
