"""File names from other people: made safe to save, and never overwriting a file.

A received name is the sender's text. :func:`sanitize_filename` turns it into one path
component that is safe to join to the downloads folder; :func:`pick_free_name` adds a
``" (1)"``-style suffix so an existing file is never overwritten. Both are pure: the caller
lists the folder, and still creates the file exclusively (``open(..., "x")`` or a hard link
from the temporary file), because another program may create the same name in between.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from typing import Final

#: Longest name in UTF-8 bytes (Linux's NAME_MAX).
MAX_NAME_BYTES: Final = 255
#: What an empty (or entirely unsafe) name becomes.
DEFAULT_NAME: Final = "attachment"
#: Longest extension kept whole when a name is cut to fit.
_MAX_EXTENSION_CHARS: Final = 16
_SEPARATORS: Final = frozenset("/\\")
#: Unicode categories dropped: controls (C0, C1, DEL), format characters (bidirectional
#: overrides such as U+202E that make "gpj.exe" look like "exe.jpg", zero-width characters),
#: surrogates, and the line and paragraph separators.
_DROPPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _split_extension(name: str) -> tuple[str, str]:
    """("report", ".pdf") for "report.pdf"; no extension for "README", a long tail or one
    of other than letters and digits."""
    dot = name.rfind(".")
    if dot <= 0 or len(name) - dot > _MAX_EXTENSION_CHARS or not name[dot + 1 :].isalnum():
        return name, ""
    return name[:dot], name[dot:]


def _cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _fit(stem: str, tail: str, max_bytes: int) -> str:
    """``stem + tail`` within ``max_bytes``, cutting the stem (then the tail if it must)."""
    room = max_bytes - len(tail.encode("utf-8"))
    if room <= 0:
        return _cut_utf8(stem + tail, max_bytes)
    cut = _cut_utf8(stem, room)
    return (cut.rstrip(" .") if cut != stem else cut) + tail


def sanitize_filename(name: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One safe path component from a received name.

    NFC-normalised; ``/`` and ``\\`` become ``_``; any whitespace (tabs and line breaks
    too) becomes a space; other control and format characters are dropped; leading and
    trailing dots and spaces go (no ``.``, ``..`` or hidden file); at most ``max_bytes`` of
    UTF-8, keeping the extension; :data:`DEFAULT_NAME` if nothing is left. Idempotent."""
    if max_bytes < len(DEFAULT_NAME):
        raise ValueError(f"max_bytes must be at least {len(DEFAULT_NAME)}")
    out = []
    for char in unicodedata.normalize("NFC", name):
        if char in _SEPARATORS:
            out.append("_")
        elif char.isspace():  # tabs and line breaks too, before controls are dropped
            out.append(" ")
        elif unicodedata.category(char) in _DROPPED_CATEGORIES:
            continue
        else:
            out.append(char)
    cleaned = "".join(out).strip(" .")
    if not cleaned:
        return DEFAULT_NAME
    stem, extension = _split_extension(cleaned)
    fitted = _fit(stem, extension, max_bytes).strip(" .")
    # NFC of a cut name can differ from the cut of an NFC name; one more pass settles it
    fitted = unicodedata.normalize("NFC", fitted)
    return fitted or DEFAULT_NAME


def _key(name: str) -> str:
    # case-insensitive and normalisation-insensitive, so that no file system (macOS's
    # included) can map the picked name onto an existing one
    return unicodedata.normalize("NFC", name).casefold()


def pick_free_name(name: str, existing: Collection[str], *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """The sanitised ``name``, or ``"stem (n).ext"`` with the smallest ``n >= 1`` that is
    not in ``existing`` (compared ignoring case and Unicode normalisation); within
    ``max_bytes``."""
    safe = sanitize_filename(name, max_bytes=max_bytes)
    taken = {_key(other) for other in existing}
    if _key(safe) not in taken:
        return safe
    stem, extension = _split_extension(safe)
    # at most len(taken) names are taken, so one of the first len(taken) + 1 suffixes is free
    for n in range(1, len(taken) + 2):
        candidate = _fit(stem, f" ({n}){extension}", max_bytes)
        if _key(candidate) not in taken:
            return candidate
    raise AssertionError("unreachable: more free suffixes than taken names")  # pragma: no cover
