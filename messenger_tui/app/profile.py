"""Profiles: a directory holding one user's identity key, database and lock.

The directory is mode 0700 and every file in it 0600. The database is SQLCipher, under a key
that comes with the identity key file (:mod:`messenger_tui.app.profile_keys`): with a
passphrase, the passphrase protects both; without one, the database key is derived from the
plain identity key beside it, and only the files' permissions protect them.

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

from messenger_tui.app import profile_keys
from messenger_tui.app.errors import (
    BadInput,
    NotInitialized,
    ProfileBusy,
    ProfileExists,
    StorageProblem,
)
from messenger_tui.core.crypto import keystore
from messenger_tui.core.crypto.identity import IdentityKeyPair
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


def claim_profile(home: Path) -> ProfileLock:
    """Take the profile's process lock (:class:`ProfileBusy` if another process has it).

    Front ends take it before asking for the passphrase, so that a second instance says the
    profile is in use instead of asking first; hand it to :func:`open_profile`."""
    lock = ProfileLock(home)
    try:
        lock.acquire()
    except ProfileInUse as exc:
        raise ProfileBusy(str(exc)) from None
    return lock


def _private_dir(home: Path) -> None:
    """Mode 0700 for the profile directory (the previous release left an existing one as it
    was)."""
    try:
        if home.stat().st_mode & 0o077:
            os.chmod(home, 0o700)
    except OSError:
        pass  # not ours to change (e.g. another owner): the files are 0600 anyway


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
    _private_dir(home)
    lock = claim_profile(home)
    if paths.identity.exists():
        lock.release()
        raise ProfileExists(f"a profile already exists in {home}; use it, or pick another --home")
    if paths.database.exists():
        lock.release()
        raise ProfileExists(
            f"{paths.database} is there without an identity key: move it aside (or pick "
            "another --home) and retry"
        )
    identity = IdentityKeyPair.generate()
    ops, mem = kdf_limits or (keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT)
    sealed = keystore.seal_identity(identity.seed, passphrase, opslimit=ops, memlimit=mem)
    _, db_key = keystore.unlock(sealed, passphrase)
    try:
        # Write-then-rename so a crash never leaves a half-written key file.
        profile_keys.write_key_file(paths.identity, sealed)
        store = Store.open(paths.database, db_key)
    except (StorageError, OSError) as exc:
        lock.release()
        raise StorageProblem(f"cannot create the profile in {home}: {exc}") from None
    with store.db.transaction():
        store.settings.set("name", name)
        store.settings.set("relay_url", relay_url)
        store.settings.set("created_at_ms", str(int(time.time() * 1000)))
    return Profile(paths, identity, store, lock)


def profile_exists(home: Path) -> bool:
    return ProfilePaths(home).identity.exists()


def open_profile(home: Path, passphrase: str | None, *, lock: ProfileLock | None = None) -> Profile:
    """Open an existing profile; typed errors name the problem and the way out.

    ``lock``: the profile's lock, already taken with :func:`claim_profile` (the caller keeps
    it when opening fails, e.g. to ask for the passphrase again; the profile owns it once
    open). The previous release's plain database is re-encrypted here, once."""
    paths = ProfilePaths(home)
    if not paths.identity.exists():
        raise NotInitialized(
            f"no profile in {home}; create one with `messenger-tui init --name NAME`"
            + (" (with the same --home)" if os.environ.get("MESSENGER_TUI_HOME") is None else "")
        )
    own_lock = lock is None
    if lock is None:
        lock = claim_profile(home)
    try:
        identity, store = profile_keys.open_store(paths.identity, paths.database, passphrase)
    except BaseException:
        if own_lock:
            lock.release()
        raise
    _private_dir(home)
    return Profile(paths, identity, store, lock)


def is_key_encrypted(home: Path) -> bool:
    """Whether opening the profile needs its passphrase."""
    return profile_keys.needs_passphrase(ProfilePaths(home).identity)
