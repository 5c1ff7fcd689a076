"""The passphrase and the profile's two encrypted files: the identity key file and the database.

One passphrase unlocks both: the key file gives the identity and the database key
(:func:`messenger_tui.core.crypto.keystore.unlock`), the database opens under that key. A wrong
passphrase is found by the key file, before the database is touched.

Changing (or setting, or removing) the passphrase changes both files, which no single rename
can do. The change is a small two-phase commit:

1. :func:`prepare_change` (argon2id: run it in a thread) checks the current passphrase and
   writes the key file sealed under the new one as ``identity.json.next``;
2. :func:`commit_change` re-encrypts the database under the new key (atomic:
   :func:`messenger_tui.storage.cipher.reencrypt`), then renames ``identity.json.next`` over
   ``identity.json``.

After a crash at any point, :func:`open_store` finds the state again: of ``identity.json`` and
``identity.json.next``, the one the passphrase unlocks and whose key opens the database is the
profile's; the other is removed. Typing the old passphrase works until the database was
re-encrypted, the new one from then on, and the other one gets a message saying so. Files are
only changed once the typed passphrase opened the database (a wrong one changes nothing).

A key file without a passphrase "unlocks" with anything. ``identity.json`` without one is the
profile's state until a change commits, so it is always a candidate; a pending
``identity.json.next`` without one (a removal) is only taken when the passphrase typed unlocks
``identity.json``, so that a passphrase that unlocks nothing never completes a half-done
change.

The previous release's database (plain SQLite) is re-encrypted here on first open, under the
key of ``identity.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from messenger_tui.app.errors import PassphraseProblem, StorageProblem
from messenger_tui.core.crypto import keystore
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import CryptoError, WrongPassphrase
from messenger_tui.storage import cipher
from messenger_tui.storage.db import is_plaintext
from messenger_tui.storage.errors import StorageError, WrongDatabaseKey
from messenger_tui.storage.store import Store

#: Suffix of the key file a passphrase change has written but not committed yet.
PENDING_SUFFIX = ".next"


def pending_key_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + PENDING_SUFFIX)


def write_key_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) through a synced temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    cipher.fsync_dir(path.parent)


@dataclass(frozen=True)
class _Candidate:
    path: Path
    encrypted: bool
    data: bytes


def _candidates(key_file: Path) -> list[_Candidate]:
    """``identity.json`` and, if a change is pending, ``identity.json.next`` (a pending file
    that cannot be parsed was never renamed into place whole: it is ignored)."""
    out: list[_Candidate] = []
    for path in (key_file, pending_key_file(key_file)):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageProblem(f"cannot read the identity key {path}: {exc.strerror}") from None
        try:
            encrypted = keystore.is_encrypted(data)
        except CryptoError as exc:
            if path != key_file:
                continue
            raise StorageProblem(
                f"cannot read the identity key {path}: {exc}. It was not modified; restore it "
                "from a backup"
            ) from None
        out.append(_Candidate(path, encrypted, data))
    return out


def needs_passphrase(key_file: Path) -> bool:
    """Whether opening the profile needs a passphrase (a pending change counts)."""
    return any(c.encrypted for c in _candidates(key_file))


def _unlocked(
    key_file: Path, passphrase: str | None
) -> list[tuple[_Candidate, IdentityKeyPair, bytes]]:
    candidates = _candidates(key_file)
    unlocked: list[tuple[_Candidate, IdentityKeyPair, bytes]] = []
    for c in candidates:
        try:
            identity, key = keystore.unlock(c.data, passphrase)
        except WrongPassphrase:
            continue
        except CryptoError as exc:
            if c.path != key_file:
                continue
            raise StorageProblem(
                f"cannot read the identity key {c.path}: {exc}. It was not modified; restore "
                "it from a backup"
            ) from None
        unlocked.append((c, identity, key))
    proven = any(c.encrypted for c, _, _ in unlocked)
    usable = [u for u in unlocked if u[0].encrypted or u[0].path == key_file or proven]
    if usable:
        return usable
    if passphrase is None:
        raise PassphraseProblem(
            "this profile's key is protected by a passphrase; pass --passphrase-file FILE "
            "(or set MESSENGER_TUI_PASSPHRASE_FILE)"
        )
    raise PassphraseProblem("wrong passphrase: the passphrase does not unlock this identity key")


def open_store(
    key_file: Path, database: Path, passphrase: str | None
) -> tuple[IdentityKeyPair, Store]:
    """Unlock the key file, open the database under its key (re-encrypting the previous
    release's plain file first) and finish or undo an interrupted passphrase change.

    :class:`PassphraseProblem` for a wrong or missing passphrase (no file is touched),
    :class:`StorageProblem` when the database is damaged or does not belong to the key."""
    pending = pending_key_file(key_file)
    for candidate, identity, key in _unlocked(key_file, passphrase):
        try:
            if is_plaintext(database):
                if candidate.path != key_file:
                    continue  # a change is never pending on the previous release's file
                cipher.reencrypt(database, None, key)
            store = Store.open(database, key)
        except WrongDatabaseKey:
            continue
        except StorageError as exc:
            raise StorageProblem(str(exc)) from None
        except OSError as exc:
            raise StorageProblem(
                f"cannot re-encrypt the database {database}: {exc}. The unencrypted file was "
                "kept; free some space (or fix the permissions) and retry"
            ) from None
        try:
            if candidate.path == pending:
                os.replace(pending, key_file)  # the database is under the new key already
                cipher.fsync_dir(key_file.parent)
            elif pending.exists():
                pending.unlink()  # the change did not reach the database: undone
                cipher.fsync_dir(key_file.parent)
            for tmp in (key_file, pending):  # write_key_file's, from an interrupted write
                tmp.with_name(tmp.name + ".tmp").unlink(missing_ok=True)
            cipher.tidy(database)
        except OSError as exc:
            store.close()
            raise StorageProblem(f"cannot finish opening the profile: {exc}") from None
        return identity, store
    if pending.exists():
        raise PassphraseProblem(
            "a passphrase change was interrupted; this passphrase opens the key but not the "
            "database: use the other one (the new passphrase if you typed the old one, or the "
            "old one). Nothing was modified"
        )
    raise StorageProblem(
        f"the database {database} does not open with this profile's key (the passphrase is "
        "right for identity.json): it is damaged or belongs to another profile. It was not "
        "modified; move it aside and run `messenger-tui doctor`"
    )


def prepare_change(
    key_file: Path,
    identity: IdentityKeyPair,
    current: str | None,
    new: str | None,
    *,
    kdf_limits: tuple[int, int] | None = None,
) -> bytes:
    """Check ``current`` and write the key file sealed under ``new`` (None or "": none) as
    ``identity.json.next``; returns the new database key. Blocking (argon2id): run it in a
    thread. :class:`PassphraseProblem` when ``current`` is missing or wrong (nothing written)."""
    try:
        data = key_file.read_bytes()
        encrypted = keystore.is_encrypted(data)
    except (OSError, CryptoError) as exc:
        raise StorageProblem(f"cannot read the identity key {key_file}: {exc}") from None
    if encrypted:
        if not current:
            raise PassphraseProblem("enter the current passphrase")
        try:
            opened = keystore.open_identity(data, current)
        except WrongPassphrase:
            raise PassphraseProblem("the current passphrase is wrong") from None
        except CryptoError as exc:
            raise StorageProblem(f"cannot read the identity key {key_file}: {exc}") from None
        if opened.public != identity.public:
            raise StorageProblem(f"the identity key {key_file} is not this profile's key")
    ops, mem = kdf_limits or (keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT)
    sealed = keystore.seal_identity(identity.seed, new or None, opslimit=ops, memlimit=mem)
    _, new_key = keystore.unlock(sealed, new or None)
    write_key_file(pending_key_file(key_file), sealed)
    return new_key


def commit_change(key_file: Path, store: Store, new_key: bytes) -> None:
    """Re-encrypt the open database under ``new_key`` and put the pending key file in place.
    Takes the database for as long as the re-encryption lasts (no other use meanwhile).
    On an error before the database was re-encrypted the change is undone."""
    pending = pending_key_file(key_file)
    try:
        store.db.rekey(new_key)
    except (StorageError, OSError) as exc:
        if not store.db.has_key(new_key):
            pending.unlink(missing_ok=True)
            raise StorageProblem(
                f"could not re-encrypt the database: {exc}; the passphrase is unchanged"
            ) from None
        # re-encrypted: only removing the old file failed (the next open retries): commit
    os.replace(pending, key_file)
    cipher.fsync_dir(key_file.parent)
