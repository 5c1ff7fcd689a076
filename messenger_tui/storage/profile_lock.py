"""One process per profile: an exclusive advisory lock on ``profile.lock``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from messenger_tui.storage.errors import ProfileInUse


class ProfileLock:
    """Hold with ``with ProfileLock(home):``; raises :class:`ProfileInUse` if taken.

    The kernel releases the lock when the process dies, so a crash never leaves it stale.
    """

    def __init__(self, home: Path) -> None:
        self.path = home / "profile.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ProfileInUse(
                f"the profile {self.path.parent} is in use by process {holder}; close that "
                "messenger-tui (or use another --home) and retry"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProfileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
