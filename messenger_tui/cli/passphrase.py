"""Where a command gets the identity key's passphrase: a file, the environment, or a prompt;
and opening a profile with it, the profile's lock taken first (a second process says "in use"
before it asks for a passphrase)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from messenger_tui.app.errors import PassphraseProblem
from messenger_tui.app.profile import (
    Profile,
    claim_profile,
    is_key_encrypted,
    open_profile,
    profile_exists,
)
from messenger_tui.storage.profile_lock import ProfileLock


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


def claim_then_passphrase(
    args: argparse.Namespace, home: Path
) -> tuple[ProfileLock | None, str | None]:
    """The profile's lock (None when there is no profile yet), then its passphrase."""
    lock = claim_profile(home) if profile_exists(home) else None
    try:
        return lock, passphrase_for(args, home)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def open_for_command(args: argparse.Namespace, home: Path) -> Profile:
    """Open the profile for a command: lock, passphrase, then the key file and database."""
    lock, passphrase = claim_then_passphrase(args, home)
    try:
        return open_profile(home, passphrase, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
