"""Group send grants in the relay stores (SQLite and Redis) and their registration.

A grant is (recipient, sender, verifier): the recipient accepts short ``SendMulti`` frames
from ``sender`` that present a send credential whose verifier is ``verifier``
(core/groups/send_credential.py). A recipient replaces all of its grants at once
(``SetGroupGrants``), at most :data:`~messenger_tui.core.groups.send_credential.MAX_GRANTS`;
the short send looks the grantees up by (sender, verifier).

SQLite: one table, keyed for the send's lookup, with an index by recipient for the
replacement. Redis (keys tagged by identity, so each key lives in its owner's slot)::

    mt:{R}:g          set: sender || verifier, R's grants
    mt:{S}:gv:<V>     set: the recipients granting (S, V)

A replacement adds the new entries to the grantee sets first, then stores R's set, then
removes the entries that went (without a transaction across slots: a concurrent short send
sees the old grant or the new one, never neither for an entry that stays).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final

from messenger_tui.core.groups.send_credential import GRANT_LEN, GRANT_VERIFIER_LEN, MAX_GRANTS
from messenger_tui.relay.redis_keys import PREFIX, tag

GRANTS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS group_grants (
    sender BLOB NOT NULL,
    verifier BLOB NOT NULL,           -- SHA-256 of a send credential (never the credential)
    recipient BLOB NOT NULL,
    PRIMARY KEY (sender, verifier, recipient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_grants_by_recipient ON group_grants (recipient);
"""

Grant = tuple[bytes, bytes]


def parse_grants(packed: bytes) -> list[Grant] | str:
    """The (sender, verifier) pairs of a ``SetGroupGrants.grants``, or why it is refused."""
    if len(packed) % GRANT_LEN:
        return f"grants are {GRANT_LEN} bytes each (identity, verifier); got {len(packed)} bytes"
    count = len(packed) // GRANT_LEN
    if count > MAX_GRANTS:
        return f"at most {MAX_GRANTS} group grants per identity, got {count}"
    grants = [
        (packed[i : i + 32], packed[i + 32 : i + GRANT_LEN])
        for i in range(0, len(packed), GRANT_LEN)
    ]
    return sorted(set(grants))


# ------------------------------------------------------------------------------- SQLite


def sqlite_set(db: sqlite3.Connection, identity: bytes, grants: Sequence[Grant]) -> None:
    """Replace ``identity``'s grants in one transaction (the store's writing connection)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM group_grants WHERE recipient = ?", (identity,))
        db.executemany(
            "INSERT OR IGNORE INTO group_grants (sender, verifier, recipient) VALUES (?, ?, ?)",
            [(sender, verifier, identity) for sender, verifier in grants],
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def sqlite_grantees(db: sqlite3.Connection, sender: bytes, verifier: bytes) -> list[bytes]:
    rows = db.execute(
        "SELECT recipient FROM group_grants WHERE sender = ? AND verifier = ?", (sender, verifier)
    ).fetchall()
    return [bytes(r[0]) for r in rows]


# ------------------------------------------------------------------------------- Redis

Call = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


def _own_key(identity: bytes) -> str:
    return PREFIX + tag(identity) + ":g"


def _grantees_key(sender: bytes, verifier: bytes) -> str:
    return PREFIX + tag(sender) + ":gv:" + verifier.hex()


async def redis_set(call: Call, identity: bytes, grants: Sequence[Grant]) -> None:
    """Replace ``identity``'s grants (see the module doc for the order)."""
    own = _own_key(identity)
    old: set[bytes] = {bytes(m) for m in await call(lambda c: c.smembers(own))}
    new = {sender + verifier for sender, verifier in grants}
    if new - old:
        await call(
            partial(_each, "sadd", [_grantees_key(e[:32], e[32:]) for e in new - old], identity)
        )

    async def replace(c: Any) -> Any:
        pipe = c.pipeline(transaction=True)
        pipe.delete(own)
        if new:
            pipe.sadd(own, *new)
        return await pipe.execute()

    await call(replace)
    if old - new:
        await call(
            partial(_each, "srem", [_grantees_key(e[:32], e[32:]) for e in old - new], identity)
        )


async def _each(command: str, keys: list[str], member: bytes, client: Any) -> Any:
    """``command key member`` for every key, in one pipeline (keys in many slots: no
    transaction)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        getattr(pipe, command)(key, member)
    return await pipe.execute()


async def redis_grantees(call: Call, sender: bytes, verifier: bytes) -> list[bytes]:
    if len(verifier) != GRANT_VERIFIER_LEN:
        return []
    key = _grantees_key(sender, verifier)
    return [bytes(m) for m in await call(lambda c: c.smembers(key))]
