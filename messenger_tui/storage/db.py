"""The client database: one SQLCipher file per profile, WAL mode, versioned schema.

The file is SQLCipher 4 (``sqlcipher3``): every page, the WAL's pages included, is encrypted
with AES-256 and authenticated with HMAC-SHA512 under a raw 32-byte key (the profile's database
key, derived from the passphrase: see :mod:`messenger_tui.core.crypto.keystore`), handed over
as ``PRAGMA key = "x'…'"`` so SQLCipher runs no key derivation of its own. ``secure_delete``
zeroes freed pages and temporary tables stay in memory. The file and its WAL and shm files are
created mode 0600. Re-encryption (the previous release's plain file, a passphrase change) is in
:mod:`messenger_tui.storage.cipher`.

Open with :meth:`Database.open`; write inside ``with db.transaction():`` so that related rows
(a decrypted message, the advanced ratchet state, the dedupe record, the receipt to send) are
committed together or not at all. Errors come out typed (:mod:`messenger_tui.storage.errors`).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlite3

from messenger_tui.storage.errors import (
    CorruptDatabase,
    DatabaseLocked,
    SchemaTooNew,
    WrongDatabaseKey,
)

#: The driver's errors (SQLCipher's build of the sqlite3 module: not the stdlib's classes).
DbError = sqlite3.Error
OperationalError = sqlite3.OperationalError
Cursor = sqlite3.Cursor
#: A database key's length in bytes (a raw AES-256 key).
KEY_LEN = 32
#: The first 16 bytes of every unencrypted SQLite file; an SQLCipher file starts with its salt.
PLAIN_HEADER = b"SQLite format 3\x00"


def _schema_steps() -> list[tuple[int, str]]:
    """Numbered schema files, in order: (version, sql)."""
    steps = []
    for entry in resources.files("messenger_tui.storage.schema").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            steps.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(steps)


SCHEMA_VERSION = max(version for version, _ in _schema_steps())


def is_plaintext(path: Path) -> bool:
    """Whether ``path`` is an unencrypted SQLite file (the previous release's database)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(PLAIN_HEADER)) == PLAIN_HEADER
    except FileNotFoundError:
        return False


def key_pragma(key: bytes) -> str:
    """``PRAGMA key`` for a raw key (SQLCipher derives nothing from it)."""
    if len(key) != KEY_LEN:
        raise ValueError(f"a database key has {KEY_LEN} bytes")
    return f"PRAGMA key = \"x'{key.hex()}'\""


def connect(path: Path, key: bytes | None) -> sqlite3.Connection:
    """A connection to ``path`` keyed with ``key`` (None: unencrypted), in autocommit mode.

    A missing file is created empty with mode 0600 first, so the WAL and shm files SQLite
    creates beside it get the same mode. Nothing is read yet: a wrong key shows at the first
    read."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # SQLCipher logs decryption failures to stderr (over a TUI's screen): errors reach
        # the caller as exceptions instead.
        conn.execute("PRAGMA cipher_log_level = NONE")
        if key is not None:
            conn.execute(key_pragma(key))
    except BaseException:
        conn.close()
        raise
    return conn


def translate_error(path: Path, exc: sqlite3.Error) -> Exception:
    """Map an sqlite3 error to a typed storage error with the way out in its message."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return DatabaseLocked(
            f"the database {path} is locked by another program; close it (an sqlite3 shell, "
            "a backup tool) and retry"
        )
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return CorruptDatabase(
            f"the database {path} is damaged ({exc}); it was not modified. Your identity key "
            "is kept separately in identity.json. Move the damaged file aside and run "
            "`messenger-tui doctor` for recovery steps"
        )
    error: Exception = exc
    return error


class Database:
    """A connection to a profile's database. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._depth = 0
        self._savepoints = 0
        self._key: bytes | None = None

    @classmethod
    def open(cls, path: Path, key: bytes | None = None) -> Database:
        """Open (creating if needed) and upgrade the schema. Raises typed storage errors:
        :class:`WrongDatabaseKey` when ``key`` does not decrypt the file (nothing is written).

        ``key`` None opens an unencrypted file: the previous release's format, which the
        profile only reads to re-encrypt it (:mod:`messenger_tui.storage.cipher`), and the
        storage layer's own tests. A profile always passes its key."""
        if key is not None and is_plaintext(path):
            raise WrongDatabaseKey(
                f"the database {path} is not encrypted yet (a previous release's file): "
                "re-encrypt it first (opening the profile does that); it was not modified"
            )
        db = cls(path, cls._connect(path, key))
        db._key = key
        return db

    @staticmethod
    def _connect(path: Path, key: bytes | None) -> sqlite3.Connection:
        """Connect, check the key and the schema version, configure, upgrade."""
        try:
            conn = connect(path, key)
        except sqlite3.Error as exc:
            raise translate_error(path, exc) from exc
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            # Reading the schema version is the first read: a damaged file (or, encrypted, a
            # wrong key) fails here, before any write could touch it.
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                if key is not None and "not a database" in str(exc).lower():
                    # SQLCipher's answer when page 1 does not authenticate under the key
                    raise WrongDatabaseKey(
                        f"the database {path} does not open with this key: the passphrase "
                        "it is encrypted under is another one, or the file is damaged. It was "
                        "not modified"
                    ) from None
                raise
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"the database {path} has schema version {version}, newer than this "
                    f"messenger-tui understands ({SCHEMA_VERSION}); upgrade messenger-tui"
                )
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives process crashes (SIGKILL); only an OS crash or power
            # loss can lose the last transactions.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Freed pages (deleted messages, old ratchet states) are overwritten with zeros,
            # and temporary tables and indices (sorts, FTS merges) never reach a file.
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            _upgrade(conn, version)
        except sqlite3.Error as exc:
            conn.close()
            raise translate_error(path, exc) from exc
        except (SchemaTooNew, WrongDatabaseKey):
            conn.close()
            raise
        _tighten(path)
        return conn

    def has_key(self, key: bytes) -> bool:
        """Whether the open database is encrypted under ``key``."""
        return self._key is not None and hmac.compare_digest(self._key, key)

    def rekey(self, new_key: bytes, *, on_step: Callable[[str], None] | None = None) -> None:
        """Re-encrypt the database under ``new_key`` (from a plain one too), atomically:
        :func:`messenger_tui.storage.cipher.reencrypt`. The connection is closed meanwhile and
        reopened under the key the file has afterwards, also when this raises."""
        from messenger_tui.storage.cipher import reencrypt

        if self._depth:
            raise RuntimeError("rekey inside a transaction")
        old_key = self._key
        self._conn.close()
        try:
            if on_step is None:
                reencrypt(self.path, old_key, new_key)
            else:
                reencrypt(self.path, old_key, new_key, on_step=on_step)
        except BaseException:
            self._reopen(old_key, new_key)
            raise
        self._reopen(new_key, old_key)

    def _reopen(self, first: bytes | None, second: bytes | None) -> None:
        try:
            self._conn, self._key = self._connect(self.path, first), first
        except WrongDatabaseKey:
            self._conn, self._key = self._connect(self.path, second), second

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one IMMEDIATE transaction (nested uses join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate_error(self.path, exc) from exc
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise translate_error(self.path, exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this block's writes if it raises."""
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO {name}")
            self.execute(f"RELEASE {name}")
            raise
        else:
            self.execute(f"RELEASE {name}")
        finally:
            self._savepoints -= 1

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement; typed errors out."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise translate_error(self.path, exc) from exc

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise translate_error(self.path, exc) from exc

    def quick_check(self) -> str:
        """SQLite's integrity quick check: "ok" or the first problem found."""
        return str(self.execute("PRAGMA quick_check").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Apply the schema steps after ``version``, each in one transaction."""
    for step, sql in _schema_steps():
        if step > version:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _tighten(path: Path) -> None:
    """Mode 0600 for the database and its WAL and shm files (the previous release created
    messenger.db 0644)."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        try:
            os.chmod(path.with_name(name), 0o600)
        except FileNotFoundError:
            pass


def _split_sql(script: str) -> list[str]:
    """Split a schema file into statements (triggers contain semicolons inside BEGIN/END)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        candidate = "\n".join(current)
        if stripped.endswith(";") and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            current = []
    if current and "".join(current).strip():
        statements.append("\n".join(current))
    return statements
