"""Where a command gets the identity key's passphrase: a file, the environment, or a prompt."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from messenger_tui.app.errors import PassphraseProblem
from messenger_tui.app.profile import is_key_encrypted, profile_exists


def read_passphrase_file(path: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise PassphraseProblem(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    passphrase = text.rstrip("\r\n")
    if not passphrase:
        raise PassphraseProblem(f"the passphrase file {path} is empty")
    return passphrase


def passphrase_for(args: argparse.Namespace, home: Path) -> str | None:
    path = getattr(args, "passphrase_file", None) or os.environ.get("MESSENGER_TUI_PASSPHRASE_FILE")
    if path:
        return read_passphrase_file(path)
    if profile_exists(home) and is_key_encrypted(home) and sys.stdin.isatty():
        return getpass.getpass("passphrase: ")
    return None
