"""What a relay node prepares before it serves: the data directory, the modes of its SQLite
files, the TLS context, and the one-line reasons its start-up errors give."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Final

from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.errors import DataDirError
from messenger_tui.relay.sqlite_store import DB_FILE

#: Files of the relay's SQLite database, created or restricted to 0600 before it opens.
_DB_FILES: Final = (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal")


def reason(exc: BaseException) -> str:
    """``exc`` as a short lower-case reason for a one-line start-up error."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def prepare_data_dir(path: os.PathLike[str]) -> None:
    """Create the data directory (0700) or check it is a writable directory.

    Raises :class:`DataDirError` with a one-line reason."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise DataDirError(f"the data directory {path} is a file; pass a directory to --data")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create the data directory {path}: {reason(exc)}") from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise DataDirError(f"the data directory {path} is not writable by this user")


def restrict_db_files(data_dir: os.PathLike[str]) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite gives its -wal and -shm
    the database's mode) and restrict files an older relay left readable."""
    base = os.fspath(data_dir)
    fd = os.open(os.path.join(base, DB_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for name in _DB_FILES:
        try:
            os.chmod(os.path.join(base, name), 0o600)
        except FileNotFoundError:
            pass


def build_ssl_context(config: RelayConfig) -> ssl.SSLContext | None:
    """The server TLS context for ``config`` (TLS 1.2+), or None without a certificate."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context
