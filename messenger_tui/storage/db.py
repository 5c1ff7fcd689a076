"""The client database: one SQLite file per profile, WAL mode, versioned schema.

Open with :meth:`Database.open`; write inside ``with db.transaction():`` so that related rows
(a decrypted message, the advanced ratchet state, the dedupe record, the receipt to send) are
committed together or not at all. Errors come out typed (:mod:`messenger_tui.storage.errors`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from messenger_tui.storage.errors import CorruptDatabase, DatabaseLocked, SchemaTooNew


def _schema_steps() -> list[tuple[int, str]]:
    """Numbered schema files, in order: (version, sql)."""
    steps = []
    for entry in resources.files("messenger_tui.storage.schema").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            steps.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(steps)


SCHEMA_VERSION = max(version for version, _ in _schema_steps())


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
    return exc


class Database:
    """A connection to a profile's database. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._depth = 0
        self._savepoints = 0

    @classmethod
    def open(cls, path: Path) -> Database:
        """Open (creating if needed) and upgrade the schema. Raises typed storage errors."""
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise translate_error(path, exc) from exc
        db = cls(path, conn)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            # Reading the schema version is the first read: a damaged file fails here, before
            # any write could touch it.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
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
            db._upgrade(version)
        except sqlite3.Error as exc:
            conn.close()
            raise translate_error(path, exc) from exc
        except SchemaTooNew:
            conn.close()
            raise
        return db

    def _upgrade(self, version: int) -> None:
        for step, sql in _schema_steps():
            if step > version:
                with self.transaction():
                    for statement in _split_sql(sql):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {step}")

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
