"""Received file names: one safe path component, and never an existing name."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger_tui.core.attachments.names import (
    DEFAULT_NAME,
    MAX_NAME_BYTES,
    pick_free_name,
    sanitize_filename,
)

DROPPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}
names = st.text(
    st.characters(codec="utf-8") | st.sampled_from("/\\.\x00\n\t \u202e\u200b"), max_size=300
)


def assert_safe(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not any(unicodedata.category(c) in DROPPED for c in name)
    assert not name.startswith((".", " ")) and not name.endswith((".", " "))
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert unicodedata.is_normalized("NFC", name)


@given(names)
def test_sanitised_names_are_safe_and_stable(name: str) -> None:
    safe = sanitize_filename(name)
    assert_safe(safe)
    assert sanitize_filename(safe) == safe


@given(names, st.sets(names, max_size=8))
def test_picked_names_are_safe_and_free(name: str, existing: set[str]) -> None:
    taken = {sanitize_filename(n) for n in existing}
    picked = pick_free_name(name, taken)
    assert_safe(picked)
    assert picked.casefold() not in {t.casefold() for t in taken}


def test_examples() -> None:
    assert sanitize_filename("../../etc/passwd") == "_.._etc_passwd"
    assert sanitize_filename("..") == DEFAULT_NAME
    assert sanitize_filename("") == DEFAULT_NAME
    assert sanitize_filename(" \x00\x1b[31m ") == "[31m"
    assert sanitize_filename("invoice\u202egpj.exe") == "invoicegpj.exe"  # no RTL override
    assert sanitize_filename("a\tb\u00a0c.txt") == "a b c.txt"
    assert sanitize_filename(".bashrc") == "bashrc"
    assert sanitize_filename("C:\\Users\\x.doc") == "C:_Users_x.doc"
    assert sanitize_filename("cafe\u0301.txt") == "caf\u00e9.txt"  # NFC


def test_long_names_keep_their_extension() -> None:
    long = "x" * 400 + ".jpeg"
    safe = sanitize_filename(long)
    assert safe.endswith(".jpeg") and len(safe.encode()) == MAX_NAME_BYTES
    wide = "\u00e9" * 200 + ".txt"  # two bytes each: never cut inside a character
    safe = sanitize_filename(wide)
    assert safe.endswith(".txt") and len(safe.encode()) <= MAX_NAME_BYTES
    safe_long = sanitize_filename(long)
    picked = pick_free_name(long, {safe_long})
    assert picked.endswith(" (1).jpeg") and len(picked.encode()) <= MAX_NAME_BYTES


def test_suffixes() -> None:
    assert pick_free_name("report.pdf", set()) == "report.pdf"
    assert pick_free_name("report.pdf", {"report.pdf"}) == "report (1).pdf"
    taken = {"REPORT.PDF", "report (1).pdf", "Report (2).pdf"}
    assert pick_free_name("report.pdf", taken) == "report (3).pdf"
    assert pick_free_name("README", {"README"}) == "README (1)"
    assert pick_free_name("a/b", {"a_b"}) == "a_b (1)"
    many = {"x.bin"} | {f"x ({n}).bin" for n in range(1, 500)}
    assert pick_free_name("x.bin", many) == "x (500).bin"


def test_too_small_a_limit() -> None:
    with pytest.raises(ValueError):
        sanitize_filename("x", max_bytes=3)
