"""Re-encrypting the profile database: the previous release's plain file, or a new key.

Both are one operation, :func:`reencrypt`: ``sqlcipher_export`` copies every table, index,
trigger and the FTS5 index into a new file under the new key, the new file is synced and renamed
over the old one. SQLCipher's in-place ``PRAGMA rekey`` is not used: in SQLCipher 4 it is not
supported in WAL mode, and a crash in the middle of it leaves pages under two keys for the
rollback journal to sort out. A rename is atomic: after a crash (SIGKILL or power loss) at any
point the database is the old file or the new one, whole.

The steps (``on_step`` is called after each, by name, for the crash tests):

1. ``checkpointed``: the old file's WAL is written back and removed (journal mode DELETE), so
   no WAL of the old file can be applied to the new one after the rename.
2. ``exported``: the new file ``messenger.db.rekey`` holds everything, schema version included.
3. ``synced``: it is on disk (fsync).
4. ``backed-up``: ``messenger.db.backup`` is a hard link to the old file: the backup kept until
   the new file is in place.
5. ``swapped``: the new file is renamed over ``messenger.db`` (and the directory synced).
6. ``done``: the backup is removed.

:func:`tidy` removes what an interrupted run left (the half-written ``.rekey`` file, the
backup); the profile calls it only once the database opened with the right key, so a wrong
passphrase never touches a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from messenger_tui.storage.db import DbError, connect, key_pragma, translate_error
from messenger_tui.storage.errors import CorruptDatabase, StorageError

#: Suffixes of the files a re-encryption writes beside ``messenger.db``.
NEW_SUFFIX = ".rekey"
BACKUP_SUFFIX = ".backup"


def new_path(path: Path) -> Path:
    return path.with_name(path.name + NEW_SUFFIX)


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def tidy(path: Path) -> None:
    """Remove what an interrupted :func:`reencrypt` left beside ``path``. Call it only after
    ``path`` opened with its key: until then the backup may be the only whole copy."""
    removed = False
    for leftover in (
        new_path(path),
        new_path(path).with_name(new_path(path).name + "-journal"),
        backup_path(path),
    ):
        removed |= _unlink(leftover)
    if removed:
        fsync_dir(path.parent)


def _no_step(_: str) -> None:
    return None


def reencrypt(
    path: Path,
    old_key: bytes | None,
    new_key: bytes,
    *,
    on_step: Callable[[str], None] = _no_step,
) -> None:
    """Rewrite the database at ``path`` (under ``old_key``; None: unencrypted) under
    ``new_key``. Nothing else may have it open. Raises typed storage errors; on an error before
    the rename the old file is left as it was (the half-written new file is removed)."""
    target = new_path(path)
    _unlink(target)
    _unlink(target.with_name(target.name + "-journal"))
    backup = backup_path(path)
    if backup.exists() and not os.path.samefile(backup, path):
        raise StorageError(
            f"{backup} is left from an interrupted re-encryption; open the profile once "
            "(it removes it when the database opens) and retry"
        )
    try:
        conn = connect(path, old_key)
    except DbError as exc:
        raise translate_error(path, exc) from exc
    try:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            if str(mode).lower() != "delete":
                raise CorruptDatabase(
                    f"cannot write back the write-ahead log of {path} (journal mode {mode}); "
                    "it was not modified"
                )
            on_step("checkpointed")
            # Created 0600 before SQLite opens it (the journal it writes gets the same mode).
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            key_pragma(new_key)  # checks the length
            conn.execute(f"ATTACH DATABASE ? AS rekeyed KEY \"x'{new_key.hex()}'\"", (str(target),))
            conn.execute("SELECT sqlcipher_export('rekeyed')")
            conn.execute(f"PRAGMA rekeyed.user_version = {version}")
            conn.execute("DETACH DATABASE rekeyed")
        except DbError as exc:
            raise translate_error(path, exc) from exc
    except BaseException:
        conn.close()
        _unlink(target)
        raise
    conn.close()
    try:
        on_step("exported")
        _fsync_file(target)
        on_step("synced")
        for leftover in (path.name + "-wal", path.name + "-shm"):
            # Empty after the checkpoint; removed so they are never matched to the new file.
            _unlink(path.with_name(leftover))
        if not backup.exists():
            os.link(path, backup)
        fsync_dir(path.parent)
        on_step("backed-up")
    except BaseException:
        _unlink(target)  # the old file is whole and still in place
        if backup.exists() and os.path.samefile(backup, path):
            _unlink(backup)  # a link to the old file: not needed
        raise
    os.replace(target, path)
    fsync_dir(path.parent)
    on_step("swapped")
    _unlink(backup)
    fsync_dir(path.parent)
    on_step("done")
