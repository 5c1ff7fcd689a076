"""An exclusive lock on the relay data directory, so two relays never share one database.

Take it with :meth:`DataDirLock.acquire` before opening the store and release it after closing
it. The operating system drops the lock when the process dies, so a killed relay can be
restarted at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from messenger_tui.relay.errors import DataDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE: Final = "relay.lock"


class DataDirLocked(DataDirError):
    """Another relay process is using this data directory."""


class DataDirLock:
    """``flock`` on ``data_dir/relay.lock`` (a no-op where ``fcntl`` is unavailable)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirLocked`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DataDirLocked(
                    f"another relay is running on {self.path.parent} (stop it first)"
                ) from None
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
