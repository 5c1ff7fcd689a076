"""Images before sending and for the inline preview (app/images.py): metadata gone from the
copy, decompression bombs refused with a clear error, the thumbnail bounded, and the
half-block cells exactly the pixels' colours."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from messenger_tui.app.errors import BadInput
from messenger_tui.app.images import (
    MAX_PIXELS,
    THUMB_SIDE,
    halfblock_cells,
    make_thumbnail,
    prepare_image,
)
from messenger_tui.core.attachments.pointer import MAX_THUMBNAIL_BYTES

GPS_IFD = 0x8825
MARKER = "MARKER-CAMERA-5e1f"


def photo_with_exif(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """A JPEG with a camera name, a GPS position and an orientation tag (rotate 90°)."""
    image = Image.new("RGB", size, (200, 30, 30))
    for x in range(size[0] // 2):  # left half blue: the orientation is visible
        for y in range(0, size[1], 8):
            image.putpixel((x, y), (0, 0, 255))
    exif = Image.Exif()
    exif[0x010F] = MARKER  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 1.0)})
    image.save(path, "JPEG", exif=exif.tobytes(), comment=MARKER.encode())
    return path


def bomb_png(path: Path) -> Path:
    """A PNG of 10,000 x 10,000 one-bit pixels: a few kB on disk, 100 megapixels decoded."""
    Image.new("1", (10_000, 10_000)).save(path, "PNG")
    return path


def test_the_copy_has_no_metadata_and_stands_upright(tmp_path: Path) -> None:
    src = photo_with_exif(tmp_path / "holiday.jpeg")
    assert MARKER.encode() in src.read_bytes()
    with Image.open(src) as original:
        assert original.getexif().get_ifd(GPS_IFD)
    prepared = prepare_image(src, src.name, tmp_path / "copies")
    data = prepared.path.read_bytes()
    assert prepared.path.stat().st_mode & 0o777 == 0o600
    assert MARKER.encode() not in data and b"Exif" not in data
    with Image.open(prepared.path) as copy:
        assert dict(copy.getexif()) == {}
        assert "exif" not in copy.info and "comment" not in copy.info
        assert copy.size == (480, 640)  # the orientation went into the pixels
    assert prepared.name == "holiday.jpg" and prepared.mime_type == "image/jpeg"
    assert 0 < len(prepared.thumbnail) <= MAX_THUMBNAIL_BYTES
    assert MARKER.encode() not in prepared.thumbnail  # nor its JPEG comment
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumb:
        assert max(thumb.size) <= THUMB_SIDE and dict(thumb.getexif()) == {}
    # the same unchanged file gives the same copy (a resend resumes its upload)
    assert prepare_image(src, src.name, tmp_path / "copies").path == prepared.path


def test_a_decompression_bomb_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    src = bomb_png(tmp_path / "innocent.png")
    assert src.stat().st_size < 100_000
    with pytest.raises(BadInput) as caught:
        prepare_image(src, src.name, tmp_path / "copies")
    message = str(caught.value)
    assert "innocent.png is refused" in message and "decompression bomb" in message
    assert f"more pixels than the limit of {MAX_PIXELS:,}" in message
    assert not (tmp_path / "copies").exists() or not list((tmp_path / "copies").iterdir())
    with pytest.raises(BadInput, match="decompression bomb"):
        halfblock_cells(src.read_bytes())


def test_not_an_image_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "fake.png"
    src.write_bytes(b"\x89PNG not really")
    with pytest.raises(BadInput, match="not an image that can be read"):
        prepare_image(src, src.name, tmp_path / "copies")


def test_half_blocks_carry_the_upper_and_lower_pixel() -> None:
    image = Image.new("RGB", (2, 4))
    colours = {
        (0, 0): (255, 0, 0), (1, 0): (0, 255, 0),
        (0, 1): (0, 0, 255), (1, 1): (255, 255, 255),
        (0, 2): (10, 20, 30), (1, 2): (40, 50, 60),
        (0, 3): (70, 80, 90), (1, 3): (0, 0, 0),
    }  # fmt: skip
    for xy, rgb in colours.items():
        image.putpixel(xy, rgb)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    cells = halfblock_cells(buf.getvalue(), max_cols=10, max_rows=10)
    assert cells == [
        (((255, 0, 0), (0, 0, 255)), ((0, 255, 0), (255, 255, 255))),
        (((10, 20, 30), (70, 80, 90)), ((40, 50, 60), (0, 0, 0))),
    ]


def test_half_blocks_downscale_to_the_box_keeping_proportions() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (400, 100), (9, 9, 9)).save(buf, "PNG")
    cells = halfblock_cells(buf.getvalue(), max_cols=32, max_rows=8)
    assert len(cells[0]) == 32 and len(cells) == 4  # 32 x 8 pixels: 4 lines of 2
    assert all(cell == ((9, 9, 9), (9, 9, 9)) for row in cells for cell in row)


def test_the_thumbnail_stays_within_its_byte_limit_for_noise() -> None:
    noise = Image.frombytes("RGB", (1024, 1024), bytes(range(256)) * (1024 * 1024 * 3 // 256))
    assert len(make_thumbnail(noise)) <= MAX_THUMBNAIL_BYTES
