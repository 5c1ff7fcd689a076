"""The relay's own Ed25519 identity, kept as a 0600 seed file in the data directory.

Call :func:`load_or_create_relay_key` once at start-up; it creates the key on first start and
returns the same key on every later start, so clients can pin ``Challenge.relay_key``.
The seed never leaves this module except as the returned :class:`nacl.signing.SigningKey`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import nacl.signing

SEED_FILE = "relay_key.seed"
_SEED_LEN = 32

log = logging.getLogger(__name__)


class RelayKeyError(Exception):
    """The seed file exists but cannot be used (wrong size, unreadable)."""


def load_or_create_relay_key(data_dir: Path) -> nacl.signing.SigningKey:
    """Return the relay signing key stored in ``data_dir``, creating it (0600) if missing.

    Raises :class:`RelayKeyError` when the file is corrupt; the operator must restore it or
    delete it (clients that pinned the old relay key will then refuse the new one).
    """
    path = data_dir / SEED_FILE
    try:
        seed = _read_seed(path)
    except FileNotFoundError:
        seed = os.urandom(_SEED_LEN)
        _write_new_seed(path, seed)
        log.info("generated a new relay key in %s", path)
    return nacl.signing.SigningKey(seed)


def _read_seed(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("relay key file %s was readable by others; restricting it to 0600", path)
        path.chmod(0o600)
    seed = path.read_bytes()
    if len(seed) != _SEED_LEN:
        raise RelayKeyError(
            f"{path} holds {len(seed)} bytes, a relay key seed is {_SEED_LEN}: "
            "restore it from a backup or delete it to generate a new relay key"
        )
    return seed


def _write_new_seed(path: Path, seed: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover from a crash might have looser permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, seed)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
