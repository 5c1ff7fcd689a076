"""Relay logging: ``relay.log`` in the data directory and, for the CLI, stderr.

Only metadata is logged: short identity fingerprints, sizes, counts and error codes; never
envelope or signal bodies, never keys. :class:`RelayServer` attaches the file handler on
start and detaches it on stop; :func:`run_relay` adds a stderr handler when the process has
no logging configured yet.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import Final

LOGGER_NAME: Final = "messenger_tui.relay"
LOG_FILE: Final = "relay.log"
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_BYTES: Final = 10 * 1024 * 1024
_BACKUPS: Final = 5

relay_log = logging.getLogger(LOGGER_NAME)
#: websockets' own logger for the relay's server; quiet below WARNING by default (handshake
#: noise from scanners would otherwise fill the log).
websockets_log = logging.getLogger(LOGGER_NAME + ".websockets")


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file, the ones rotation creates included, is 0600."""

    def _open(self):  # type: ignore[no-untyped-def]  # the stdlib's signature is untyped
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return super()._open()


def _ensure_levels() -> None:
    if relay_log.level == logging.NOTSET:
        relay_log.setLevel(logging.INFO)
    if websockets_log.level == logging.NOTSET:
        websockets_log.setLevel(logging.WARNING)


def attach_file_log(data_dir: Path) -> logging.Handler:
    """Log the relay to ``data_dir/relay.log`` (0600, rotated at 10 MB); detach with
    :func:`detach_log` when the relay stops."""
    path = data_dir / LOG_FILE
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = _PrivateRotatingFileHandler(
        path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    _ensure_levels()
    relay_log.addHandler(handler)
    return handler


def attach_stderr_log(level: int | None = None) -> logging.Handler | None:
    """Log the relay to stderr unless the process already configured logging (then the
    root handlers receive the relay's records by propagation). Returns the handler to
    detach, or None."""
    if logging.getLogger().handlers:
        return None
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    _ensure_levels()
    if level is not None:
        relay_log.setLevel(level)
    relay_log.addHandler(handler)
    return handler


def detach_log(handler: logging.Handler | None) -> None:
    """Remove and close a handler added by this module."""
    if handler is not None:
        relay_log.removeHandler(handler)
        handler.close()
