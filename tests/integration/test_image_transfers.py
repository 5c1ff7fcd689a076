"""Images between two real clients through a real relay process: what bob decrypts has no
EXIF (no camera name, no GPS position), the thumbnail travels in the end-to-end pointer and
gives a preview before and after the download, the received image counts as unread, and a
decompression bomb is refused before anything is stored or sent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput
from messenger_tui.core.attachments import decode_pointer
from messenger_tui.core.attachments.pointer import MAX_THUMBNAIL_BYTES
from tests.app.test_images import GPS_IFD, MARKER, bomb_png, photo_with_exif
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


async def test_an_image_arrives_without_exif_with_a_thumbnail_and_counts_as_unread(
    tmp_path: Path,
) -> None:
    src = photo_with_exif(tmp_path / "beach.jpg")
    with Image.open(src) as original:
        assert original.getexif().get_ifd(GPS_IFD)  # the source does carry a position
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            bob.set_download_dir(tmp_path / "downloads")
            bob_events = bob.subscribe()
            await bob.start()
            sent = await alice.send_file(alice.contact("bob").id, src)
            assert sent.mime_type == "image/jpeg" and sent.name == "beach.jpg"
            done = await alice.wait_transfer(sent.id, 60)
            assert done.status == "done", done.error
            assert await alice.wait_outbox_empty(20)
            # the re-encoded copy is gone once sent
            assert not list((tmp_path / "alice" / "transfers" / "images").iterdir())
            await wait_for(lambda: any(t.direction == "down" for t in bob.transfers()), 30)
            down = next(t for t in bob.transfers() if t.direction == "down")
            got = await bob.wait_transfer(down.id, 60)
            assert got.status == "done", got.error and got.path is not None
            data = Path(got.path or "").read_bytes()  # what bob decrypted
            assert MARKER.encode() not in data and b"Exif" not in data
            with Image.open(io.BytesIO(data)) as image:
                assert dict(image.getexif()) == {} and image.size == (480, 640)
            # the thumbnail came inside the end-to-end pointer
            row = bob.transfer_manager._store.transfers.get(down.id)
            assert row is not None and row.state is not None
            thumb = decode_pointer(row.state).thumbnail
            assert thumb is not None and 0 < len(thumb) <= MAX_THUMBNAIL_BYTES
            assert MARKER.encode() not in thumb
            # unread, and announced like a text (MessageReceived of kind attachment)
            summary = next(s for s in bob.conversations() if s.contact.name == "alice")
            assert summary.unread == 1
            assert [m.kind for _, m in bob.unread()] == ["attachment"]
            kinds = []
            while not bob_events.empty():
                event = bob_events.get_nowait()
                if isinstance(event, ev.MessageReceived):
                    kinds.append(event.message.kind)
            assert kinds == ["attachment"]
            # previews: bob's from the full image, alice's own from her thumbnail
            message_row = got.message_row or 0
            preview = await bob.image_preview(message_row, 16, 6)
            assert preview is not None and preview[1] is True
            assert len(preview[0]) == 6 and 1 <= len(preview[0][0]) <= 16
            own = await alice.image_preview(done.message_row or 0, 16, 6)
            assert own is not None and own[1] is False and own[0]


async def test_a_decompression_bomb_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    src = bomb_png(tmp_path / "cat.png")
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            with pytest.raises(BadInput, match=r"cat\.png is refused.*decompression bomb"):
                await alice.send_file(alice.contact("bob").id, src)
            assert alice.transfers() == []
            assert alice.history(alice.contact("bob").id) == []
