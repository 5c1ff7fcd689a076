"""Peer text printed by the CLI cannot drive the user's terminal."""

from __future__ import annotations

from messenger_tui.cli.main import terminal_safe


def test_control_sequences_become_visible() -> None:
    evil = "hi \x1b[2J\x1b]52;c;ZXZpbA==\x07\x9b1m \u202e"
    safe = terminal_safe(evil)
    assert not any(ch in safe for ch in "\x1b\x07\x9b\u202e")
    assert safe.startswith("hi \\x1b[2J\\x1b]52;c;")


def test_ordinary_text_is_unchanged() -> None:
    text = "héllo wörld 😀 — tabs\tand\nnewlines"
    assert terminal_safe(text) == text
