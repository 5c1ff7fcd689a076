"""Typed storage errors; each message names the file and the way out."""

from __future__ import annotations


class StorageError(Exception):
    """Base of client storage errors."""


class CorruptDatabase(StorageError):
    """The database file is damaged or not a database. Nothing was written to it."""


class WrongDatabaseKey(StorageError):
    """The encrypted database does not open with the key given (or is damaged: SQLCipher
    cannot tell the two apart). Nothing was written to it."""


class DatabaseLocked(StorageError):
    """Another program holds a lock on the database longer than the busy timeout."""


class ProfileInUse(StorageError):
    """Another messenger-tui process has this profile open."""


class SchemaTooNew(StorageError):
    """The database was written by a newer messenger-tui."""
