"""Profiles: a directory holding one user's identity key, database and lock.

``--home DIR`` (or ``MESSENGER_TUI_HOME``) picks the directory, so several users can live on one
machine. Create with :func:`create_profile`, open with :func:`open_profile`; close the returned
:class:`Profile` when done (it releases the process lock).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from messenger_tui.app.errors import (
    BadInput,
    NotInitialized,
    PassphraseProblem,
    ProfileBusy,
    ProfileExists,
    StorageProblem,
)
from messenger_tui.core.crypto import keystore
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import CryptoError, WrongPassphrase
from messenger_tui.storage.errors import ProfileInUse, StorageError
from messenger_tui.storage.profile_lock import ProfileLock
from messenger_tui.storage.store import Store

APP_NAME = "messenger-tui"
#: The embedded relay `make run` starts; profiles created without --relay point here.
DEFAULT_RELAY_PORT = 47800
DEFAULT_RELAY_URL = f"ws://127.0.0.1:{DEFAULT_RELAY_PORT}"
MAX_NAME_LEN = 64


def default_home() -> Path:
    """``$MESSENGER_TUI_HOME`` or the user's data directory."""
    env = os.environ.get("MESSENGER_TUI_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP_NAME))


def default_relay_data() -> Path:
    """Where the embedded relay keeps its mailboxes (the user's data directory)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "embedded-relay"


@dataclass(frozen=True)
class ProfilePaths:
    home: Path

    @property
    def identity(self) -> Path:
        return self.home / "identity.json"

    @property
    def database(self) -> Path:
        return self.home / "messenger.db"


class Profile:
    """An open profile: identity, store and the lock that keeps other processes out."""

    def __init__(
        self, paths: ProfilePaths, identity: IdentityKeyPair, store: Store, lock: ProfileLock
    ):
        self.paths = paths
        self.identity = identity
        self.store = store
        self._lock = lock

    @property
    def name(self) -> str:
        return self.store.settings.get("name") or "me"

    @property
    def relay_url(self) -> str:
        return self.store.settings.get("relay_url") or DEFAULT_RELAY_URL

    def close(self) -> None:
        self.store.close()
        self._lock.release()


def validate_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise BadInput("a name cannot be empty")
    if len(cleaned) > MAX_NAME_LEN:
        raise BadInput(f"a name has at most {MAX_NAME_LEN} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise BadInput("a name cannot contain control characters")
    return cleaned


def _lock(home: Path) -> ProfileLock:
    lock = ProfileLock(home)
    try:
        lock.acquire()
    except ProfileInUse as exc:
        raise ProfileBusy(str(exc)) from None
    return lock


def _open_store(paths: ProfilePaths, lock: ProfileLock) -> Store:
    try:
        return Store.open(paths.database)
    except StorageError as exc:
        lock.release()
        raise StorageProblem(str(exc)) from None


def create_profile(
    home: Path,
    name: str,
    relay_url: str,
    passphrase: str | None,
    *,
    kdf_limits: tuple[int, int] | None = None,
) -> Profile:
    """Create the identity, database and first prekeys. Refuses to overwrite an identity."""
    paths = ProfilePaths(home)
    name = validate_name(name)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = _lock(home)
    if paths.identity.exists():
        lock.release()
        raise ProfileExists(f"a profile already exists in {home}; use it, or pick another --home")
    identity = IdentityKeyPair.generate()
    ops, mem = kdf_limits or (keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT)
    sealed = keystore.seal_identity(identity.seed, passphrase, opslimit=ops, memlimit=mem)
    # Write-then-rename so a crash never leaves a half-written key file.
    tmp = paths.identity.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(sealed)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, paths.identity)
    store = _open_store(paths, lock)
    with store.db.transaction():
        store.settings.set("name", name)
        store.settings.set("relay_url", relay_url)
        store.settings.set("created_at_ms", str(int(time.time() * 1000)))
    return Profile(paths, identity, store, lock)


def profile_exists(home: Path) -> bool:
    return ProfilePaths(home).identity.exists()


def open_profile(home: Path, passphrase: str | None) -> Profile:
    """Open an existing profile; typed errors name the problem and the way out."""
    paths = ProfilePaths(home)
    if not paths.identity.exists():
        raise NotInitialized(
            f"no profile in {home}; create one with `messenger-tui init --name NAME`"
            + (" (with the same --home)" if os.environ.get("MESSENGER_TUI_HOME") is None else "")
        )
    lock = _lock(home)
    try:
        data = paths.identity.read_bytes()
        identity = keystore.open_identity(data, passphrase)
    except WrongPassphrase as exc:
        lock.release()
        if passphrase is None:
            raise PassphraseProblem(
                "this profile's key is protected by a passphrase; pass --passphrase-file FILE "
                "(or set MESSENGER_TUI_PASSPHRASE_FILE)"
            ) from None
        raise PassphraseProblem(f"wrong passphrase: {exc}") from None
    except (CryptoError, OSError) as exc:
        lock.release()
        raise StorageProblem(
            f"cannot read the identity key {paths.identity}: {exc}. It was not modified; "
            "restore it from a backup"
        ) from None
    store = _open_store(paths, lock)
    return Profile(paths, identity, store, lock)


def is_key_encrypted(home: Path) -> bool:
    return keystore.is_encrypted(ProfilePaths(home).identity.read_bytes())
