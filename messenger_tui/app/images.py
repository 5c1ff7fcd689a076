"""Images sent and shown (Pillow): the copy that is sent, its thumbnail, and the half-block
preview the conversation view draws.

* :func:`prepare_image` re-encodes an image before it is sealed: the pixels only, so EXIF
  (GPS location, camera serial, time), XMP, IPTC, comments and ICC profiles never leave the
  device. The orientation EXIF asked for is applied to the pixels first, so the picture still
  stands the right way up. It refuses a decompression bomb (more than :data:`MAX_PIXELS`
  pixels, checked from the header before any pixel is decoded) with :class:`BadInput`.
* The thumbnail (at most :data:`THUMB_SIDE` pixels a side, JPEG, at most
  :data:`~messenger_tui.core.attachments.pointer.MAX_THUMBNAIL_BYTES`) travels inside the
  end-to-end message, so the recipient sees a preview before the file is downloaded.
* :func:`halfblock_cells` downscales an image to a few terminal lines: each cell is ``▀``
  with the upper pixel as foreground and the lower as background (two pixels per cell).

Decoding untrusted images (the received thumbnail and file) goes through the same pixel limit.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from messenger_tui.app.errors import BadInput
from messenger_tui.core.attachments.pointer import MAX_THUMBNAIL_BYTES

#: Largest image accepted, sent or shown (pixels): 64 megapixels, above any phone camera.
MAX_PIXELS: Final = 64_000_000
# Pillow's own guard at the same figure (a warning above it, made an error here, and an
# error above twice it), for every image this process decodes.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: Longest side of the thumbnail carried in the message (pixels).
THUMB_SIDE: Final = 96
#: Formats sent in their own format after re-encoding; any other image becomes a PNG.
_KEEP_FORMAT: Final = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
#: Terminal lines and columns of an inline preview at most.
PREVIEW_ROWS: Final = 8
PREVIEW_COLS: Final = 32

RGB = tuple[int, int, int]
#: One preview line: (upper pixel, lower pixel) per cell.
CellRow = tuple[tuple[RGB, RGB], ...]


def is_image_mime(mime: str) -> bool:
    return mime.startswith("image/") and mime != "image/svg+xml"


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The re-encoded copy to send, its name and MIME type, and its thumbnail."""

    path: Path
    name: str
    mime_type: str
    thumbnail: bytes


def _open_checked(source: Path | bytes) -> Image.Image:
    """Open an image, refusing one over :data:`MAX_PIXELS` before decoding its pixels.
    :class:`BadInput` for a bomb or an unreadable image."""
    what = "the image" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            width, height = image.size
            if width * height > MAX_PIXELS:
                image.close()
                raise _bomb(what, width, height)
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(
            f"{what} is refused: it decodes to more pixels than the limit of "
            f"{MAX_PIXELS:,} (a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"{what} is not an image that can be read: {exc}") from None


def _bomb(what: str, width: int, height: int) -> BadInput:
    return BadInput(
        f"{what} is refused: {width}x{height} is {width * height:,} pixels, over the limit of "
        f"{MAX_PIXELS:,} (a decompression bomb?)"
    )


def _load(image: Image.Image) -> Image.Image:
    """Decode the pixels (within the limit), upright as its EXIF orientation says."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb("the image", *image.size) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise BadInput(f"the image cannot be decoded: {exc}") from None
    return upright if upright is not None else image


def make_thumbnail(image: Image.Image) -> bytes:
    """A JPEG of at most :data:`THUMB_SIDE` a side and :data:`MAX_THUMBNAIL_BYTES`."""
    thumb = image.convert("RGB")
    thumb.info = {}  # Pillow would write the source's comment (and more) into the JPEG
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    for quality in (75, 55, 35, 20):
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=quality, optimize=True)
        if buf.tell() <= MAX_THUMBNAIL_BYTES:
            return buf.getvalue()
        thumb.thumbnail((thumb.width // 2 or 1, thumb.height // 2 or 1))
    raise BadInput("the image's thumbnail does not fit its size limit")  # pragma: no cover


def _clean_copy(image: Image.Image, fmt: str, out: Path) -> None:
    """Save the pixels only: no EXIF, XMP, ICC profile, comments or text chunks."""
    pixels = image.copy()
    pixels.info = {}
    if fmt == "JPEG":
        pixels.convert("RGB").save(out, "JPEG", quality=92)
    elif fmt == "GIF":
        pixels.save(out, "GIF")
    elif fmt == "WEBP":
        pixels.save(out, "WEBP", quality=90)
    else:
        pixels.save(out, "PNG")


def prepare_image(source: Path, name: str, folder: Path) -> PreparedImage:
    """Re-encode ``source`` into ``folder`` without its metadata and make its thumbnail (see
    the module doc). The copy's name is derived from the source's path, size and change time,
    so sending the same unchanged file again reuses the copy (and resumes its upload).
    :class:`BadInput` for a decompression bomb or an unreadable image."""
    st = source.stat()
    image = _open_checked(source)
    with image:
        fmt = image.format or "PNG"
        upright = _load(image)
        suffix = _KEEP_FORMAT.get(fmt, ".png")
        keep = "PNG" if suffix == ".png" else fmt
        stem = name.rsplit(".", 1)[0] if "." in name else name
        clean_name = (stem or "image") + suffix
        tag = hashlib.sha256(f"{source}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = folder / f"image-{tag}{suffix}"
        if not out.exists():
            part = out.with_suffix(".part")
            try:
                os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                _clean_copy(upright, keep, part)
            except (OSError, ValueError) as exc:
                part.unlink(missing_ok=True)
                raise BadInput(f"{source} cannot be re-encoded: {exc}") from None
            os.replace(part, out)
        thumbnail = make_thumbnail(upright)
    mime = {"JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}.get(keep, "image/png")
    return PreparedImage(path=out, name=clean_name, mime_type=mime, thumbnail=thumbnail)


def halfblock_cells(
    source: Path | bytes, max_cols: int = PREVIEW_COLS, max_rows: int = PREVIEW_ROWS
) -> list[CellRow]:
    """The image downscaled to fit ``max_cols`` x ``max_rows`` terminal cells, two pixels
    per cell (upper, lower), keeping its proportions (a cell is about twice as tall as wide,
    so one pixel per column and two per line keep a square square). :class:`BadInput` for an
    unreadable image or a bomb."""
    image = _open_checked(source)
    with image:
        rgb = _load(image).convert("RGB")
    width, height = rgb.size
    scale = min(max_cols / width, (max_rows * 2) / height, 1.0)
    cols = max(1, round(width * scale))
    rows = max(1, round(height * scale / 2))
    small = rgb.resize((cols, rows * 2), Image.Resampling.BOX)
    px = small.load()
    assert px is not None
    out: list[CellRow] = []
    for y in range(rows):
        line = []
        for x in range(cols):
            top = px[x, 2 * y]
            bottom = px[x, 2 * y + 1]
            assert isinstance(top, tuple) and isinstance(bottom, tuple)
            line.append(((top[0], top[1], top[2]), (bottom[0], bottom[1], bottom[2])))
        out.append(tuple(line))
    return out


def preview_png(source: Path | bytes, max_width_px: int, max_height_px: int) -> bytes:
    """The image downscaled to fit ``max_width_px`` x ``max_height_px`` pixels (never
    enlarged), as a PNG: what a terminal graphics protocol (kitty, sixel) is sent, so the
    terminal never decodes the received file itself. :class:`BadInput` for an unreadable
    image or a bomb (the same pixel limit as everything shown)."""
    image = _open_checked(source)
    with image:
        rgb = _load(image).convert("RGB")
    width, height = rgb.size
    scale = min(max_width_px / width, max_height_px / height, 1.0)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    out = io.BytesIO()
    rgb.resize(size, Image.Resampling.LANCZOS).save(out, "PNG")
    return out.getvalue()
