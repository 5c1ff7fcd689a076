"""Files, images and voice messages in group chats.

``service.group_files`` is this part of the facade. A group's file is one transfer
(:mod:`.transfers`, the same table, driver and states as a contact's, with ``group_row``
set instead of ``contact_id``):

* Sending: the message row is stored in the group's conversation at once (its own place in
  the sender's order, ``seq``); the file is sealed and uploaded **once** (one blob on the
  relay, whatever the member count); then its pointer (key, digest, sizes, name, type, voice
  duration and waveform, thumbnail) is sealed **once** with our sender key as an
  ``attachment`` payload and queued in the group outbox (:meth:`GroupChats.queue_sealed`),
  which uploads it once to every other member (``SendMulti``). Only members at that moment
  get the pointer, so a member removed before it went never learns the blob's key.
* Receiving (:func:`incoming_attachment`, called by :mod:`.group_inbound`): the message row and
  a ``new`` download are stored in the same savepoint as the decrypted group message; the
  transfer manager then downloads it (within the auto-download limit, from a member who is a
  contact) or offers it. Every member fetches the same blob by its id and checks every chunk
  and the digest against its own copy of the pointer.
* Delivered and read receipts, unread counts and notifications are those of group texts: a
  file is a group message of kind ``attachment`` (``voice`` for a voice message).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_book import GroupBook
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.images import is_image_mime
from messenger_tui.app.models import TransferView
from messenger_tui.app.receiver import attachment_text
from messenger_tui.app.transfers import TransferManager, check_source, guess_mime
from messenger_tui.core import payload as pl
from messenger_tui.core.attachments import (
    AttachmentEncryptor,
    AttachmentPointer,
    encode_pointer,
    sanitize_filename,
)
from messenger_tui.core.attachments.pointer import MAX_NAME_CHARS
from messenger_tui.core.attachments.transfer_states import ACTIVE
from messenger_tui.storage.groups import GroupMessageRow, GroupRow
from messenger_tui.storage.store import Store
from messenger_tui.storage.transfers import TransferRow


def attachment_kind(pointer: AttachmentPointer) -> str:
    """The message kind of a file: ``voice`` for a voice message, else ``attachment``."""
    return "voice" if pointer.is_voice else "attachment"


def incoming_attachment(
    store: Store,
    row: GroupRow,
    sender: bytes,
    payload: pl.Attachment,
    now_ms: int,
) -> GroupMessageRow | None:
    """Store a member's file (its message and a ``new`` download) in the group's
    conversation; None if this message id from this member is stored already. The sender's
    delivery secret (``access``) means nothing in a group and is ignored. Call inside the
    receiver's savepoint."""
    pointer = payload.pointer
    stored = store.groups.insert_message(
        row.id,
        sender,
        payload.id,
        outgoing=False,
        body=attachment_text(pointer.name, pointer.duration_ms),
        sent_at_ms=payload.sent_at_ms,
        received_at_ms=now_ms,
        state="received",
        kind=attachment_kind(pointer),
        seq=payload.seq or None,
    )
    if stored is None:
        return None
    store.transfers.insert(
        contact_id=None,
        group_row=row.id,
        direction="down",
        status="new",
        name=pointer.name,
        mime_type=pointer.mime_type,
        size=pointer.size,
        now_ms=now_ms,
        message_row=stored.id,
        state=encode_pointer(pointer),
        blob_id=pointer.blob_id,
        blob_size=pointer.layout.blob_size,
        duration_ms=pointer.duration_ms,
    )
    return stored


class GroupFiles:
    """Send files and voice messages to a group (see the module doc); the transfer manager's
    :class:`~messenger_tui.app.transfers.GroupTransferPort`."""

    def __init__(
        self,
        store: Store,
        book: GroupBook,
        chats: GroupChats,
        transfers: TransferManager,
        *,
        own_name: Callable[[], str],
        now_ms: Callable[[], int],
        emit: Callable[[ev.Event], None],
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._book = book
        self._chats = chats
        self._transfers = transfers
        self._own_name = own_name
        self._now_ms = now_ms
        self._emit = emit
        self._wake = wake
        transfers.groups = self

    # ------------------------------------------------------------ commands

    async def send_file(self, name: str, path: str | Path) -> TransferView:
        """Send a file to the group ``name``: uploaded once, announced once to every member.
        An image is re-encoded without its metadata and gets a thumbnail, as in 1:1.
        :class:`BadInput` for an unknown group, one we left, or an unreadable file."""
        self._current(name)
        source = Path(path).expanduser().absolute()
        if not is_image_mime(guess_mime(source.name)):
            return self._send(name, source)
        image = await self._transfers.image_copy(source)
        return self._send(
            name, image.path, shown=image.name, mime=image.mime_type, thumbnail=image.thumbnail
        )

    async def send_voice(
        self, name: str, path: str | Path, duration_ms: int, waveform: tuple[int, ...]
    ) -> TransferView:
        """Send an Ogg Opus file (media/voice_note.py) to the group as a voice message."""
        return self._send(name, Path(path), mime="audio/ogg", voice=(duration_ms, waveform))

    def _current(self, name: str) -> GroupRow:
        row = self._book.named(name)
        if not row.is_member:
            raise BadInput(f"you are no longer a member of {row.name}")
        return row

    def _send(
        self,
        name: str,
        path: Path,
        *,
        shown: str | None = None,
        mime: str | None = None,
        voice: tuple[int, tuple[int, ...]] | None = None,
        thumbnail: bytes | None = None,
    ) -> TransferView:
        row = self._current(name)
        path, st = check_source(path)
        store = self._store
        unfinished = (*sorted(ACTIVE), "failed")
        existing = store.transfers.find_upload(
            row.id, str(path), st.st_size, st.st_mtime_ns, unfinished, group=True
        )
        if existing is not None:  # the same file again: resume its upload
            if existing.status == "failed":
                return self._transfers.retry(existing.id)
            return self._transfers.start(existing.id)
        label = sanitize_filename(shown or path.name, max_bytes=MAX_NAME_CHARS)
        mime_type = mime or guess_mime(label)
        duration = voice[0] if voice else None
        enc = AttachmentEncryptor.start(st.st_size)
        now = self._now_ms()
        with store.db.transaction():
            message = store.groups.insert_message(
                row.id,
                self._book.me,
                os.urandom(16),
                outgoing=True,
                body=attachment_text(label, duration),
                sent_at_ms=now,
                state="queued",
                kind="voice" if voice else "attachment",
                seq=store.groups.next_send_seq(row.id),
            )
            assert message is not None
            transfer = store.transfers.insert(
                contact_id=None,
                group_row=row.id,
                direction="up",
                status="encrypting",
                name=label,
                mime_type=mime_type,
                size=st.st_size,
                now_ms=now,
                message_row=message.id,
                path=str(path),
                state=enc.snapshot(),
                blob_size=enc.layout.blob_size,
                source_mtime_ns=st.st_mtime_ns,
                duration_ms=duration,
                waveform=bytes(voice[1]) if voice else None,
                thumbnail=thumbnail,
            )
        self._message_changed(row.id, message.id)
        return self._transfers.start(transfer.id)

    # ------------------------------------------------------------ the transfer manager's port

    def send_pointer(self, transfer: TransferRow, pointer: AttachmentPointer) -> bool:
        """Seal the pointer once under our sender key and queue it to the members now (inside
        the manager's transaction). False when we left the group or the message is gone."""
        assert transfer.group_row is not None and transfer.message_row is not None
        groups = self._store.groups
        row = groups.by_id(transfer.group_row)
        message = groups.message(transfer.message_row)
        if row is None or message is None or not row.is_member:
            if message is not None:  # it will not go: say so where it shows
                self._store.messages.set_state(message.id, "error")
                self._message_changed(transfer.group_row, message.id)
            return False
        payload = pl.Attachment(
            id=message.message_id,
            pointer=pointer,
            sent_at_ms=message.sent_at_ms,
            sender_name=self._own_name(),
            seq=groups.message_seq(message.id),
        )
        if self._chats.queue_sealed(row, payload, message.id) == 0:
            self._store.messages.advance_outgoing_row(message.id, "sent")
        self._wake()
        return True

    def sender_is_stranger(self, transfer: TransferRow) -> bool:
        """A download from a member who is not a contact (or is blocked) waits to be asked
        for, as a stranger's file does in 1:1."""
        message = self._store.groups.message(transfer.message_row or 0)
        if message is None:
            return True
        contact = self._store.contacts.by_identity(message.sender)
        return contact is None or contact.auto_added or contact.blocked

    def upload_cancelled(self, transfer: TransferRow) -> None:
        if transfer.message_row is None or transfer.group_row is None:
            return
        self._store.messages.set_state(transfer.message_row, "error")
        self._message_changed(transfer.group_row, transfer.message_row)

    def _message_changed(self, group_row: int, message_row: int) -> None:
        row = self._store.groups.by_id(group_row)
        message = self._store.groups.message(message_row)
        if row is not None and message is not None:
            self._emit(
                ev.GroupMessageStateChanged(
                    self._book.model(row), self._book.message_model(message)
                )
            )
