"""Peeking into a profile's encrypted database from a test (another process writes it)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from messenger_tui.core.crypto import keystore
from messenger_tui.storage.db import key_pragma


def database_key(home: Path, passphrase: str | None = None) -> bytes:
    """The key the profile in ``home`` keeps its database under."""
    return keystore.unlock((home / "identity.json").read_bytes(), passphrase)[1]


def read_only(
    home: Path, passphrase: str | None = None, timeout: float = 0.1
) -> sqlcipher.Connection:
    """A read-only connection to the profile's database (the same SQLite library as the
    client's, so locks are seen)."""
    conn = sqlcipher.connect(f"file:{home / 'messenger.db'}?mode=ro", uri=True, timeout=timeout)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(key_pragma(database_key(home, passphrase)))
    return conn


#: Two profiles made by the previous release (plain SQLite), see tests/fixtures/README.md.
PREVIOUS_RELEASE = Path(__file__).parent.parent / "fixtures" / "profile-v0.1.0.tar.gz"
#: alice's passphrase in that fixture (bob has none).
PREVIOUS_PASSPHRASE = "correct horse battery staple"


def previous_release_profiles(dest: Path) -> tuple[Path, Path]:
    """Unpack the fixture into ``dest``: (alice's home, bob's home)."""
    import tarfile

    with tarfile.open(PREVIOUS_RELEASE) as tar:
        for member in tar.getmembers():
            target = dest / member.name
            assert ".." not in Path(member.name).parts and not member.name.startswith("/")
            if member.isdir():
                target.mkdir(mode=member.mode, exist_ok=True)
                os.chmod(target, member.mode)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
                os.chmod(target, member.mode)
    return dest / "alice", dest / "bob"


def snapshot(home: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in ``home``: its bytes, mode and mtime (to show nothing was touched). Not
    ``profile.lock``: every start takes the lock (and writes its pid) before anything else."""
    out = {}
    for path in sorted(home.iterdir()):
        if path.is_file() and path.name != "profile.lock":
            st = path.stat()
            out[path.name] = (path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return out
