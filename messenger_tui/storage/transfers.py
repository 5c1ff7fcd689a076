"""Attachment transfers: one row per file sent or received (schema 008, thumbnail 009, a
group's transfers 010: ``contact_id`` or ``group_row``, exactly one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.storage.db import Database

_COLUMNS = (
    "id, message_row, contact_id, direction, status, name, mime_type, size, path, spool, "
    "blob_id, blob_size, done_bytes, state, source_mtime_ns, sha256, duration_ms, waveform, "
    "error, created_at_ms, updated_at_ms, thumbnail, group_row"
)
#: Columns :meth:`Transfers.update` may set.
_UPDATABLE = frozenset(
    {
        "status", "path", "spool", "blob_id", "blob_size", "done_bytes", "state",
        "source_mtime_ns", "sha256", "error", "message_row",
    }
)  # fmt: skip


@dataclass(frozen=True)
class TransferRow:
    id: int
    message_row: int | None
    #: The contact of a 1:1 transfer; None for a group's (``group_row`` set).
    contact_id: int | None
    direction: str
    status: str
    name: str
    mime_type: str
    size: int
    path: str | None
    spool: str | None
    blob_id: bytes | None
    blob_size: int
    done_bytes: int
    #: The encryptor snapshot (up) or the encoded pointer (down): holds the file key.
    state: bytes | None
    source_mtime_ns: int | None
    sha256: str | None
    duration_ms: int | None
    waveform: bytes | None
    error: str | None
    created_at_ms: int
    updated_at_ms: int
    #: A sent image's thumbnail (schema 009); a received one's is in its pointer.
    thumbnail: bytes | None = None
    #: The group of a group transfer (schema 010); None for a 1:1 one.
    group_row: int | None = None

    def __repr__(self) -> str:  # never print the key in ``state``
        return f"TransferRow(id={self.id}, {self.direction}, {self.status}, size={self.size})"


def _row(r: tuple[Any, ...]) -> TransferRow:
    return TransferRow(
        id=int(r[0]),
        message_row=None if r[1] is None else int(r[1]),
        contact_id=None if r[2] is None else int(r[2]),
        direction=str(r[3]),
        status=str(r[4]),
        name=str(r[5]),
        mime_type=str(r[6]),
        size=int(r[7]),
        path=r[8],
        spool=r[9],
        blob_id=None if r[10] is None else bytes(r[10]),
        blob_size=int(r[11]),
        done_bytes=int(r[12]),
        state=None if r[13] is None else bytes(r[13]),
        source_mtime_ns=None if r[14] is None else int(r[14]),
        sha256=r[15],
        duration_ms=None if r[16] is None else int(r[16]),
        waveform=None if r[17] is None else bytes(r[17]),
        error=r[18],
        created_at_ms=int(r[19]),
        updated_at_ms=int(r[20]),
        thumbnail=None if r[21] is None else bytes(r[21]),
        group_row=None if r[22] is None else int(r[22]),
    )


class Transfers:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(
        self,
        *,
        contact_id: int | None,
        direction: str,
        status: str,
        name: str,
        mime_type: str,
        size: int,
        now_ms: int,
        message_row: int | None = None,
        path: str | None = None,
        state: bytes | None = None,
        blob_id: bytes | None = None,
        blob_size: int = 0,
        source_mtime_ns: int | None = None,
        duration_ms: int | None = None,
        waveform: bytes | None = None,
        thumbnail: bytes | None = None,
        group_row: int | None = None,
    ) -> TransferRow:
        """Insert a transfer (call inside a transaction): a contact's or a group's."""
        cur = self._db.execute(
            "INSERT INTO transfers (message_row, contact_id, direction, status, name, "
            "mime_type, size, path, state, blob_id, blob_size, source_mtime_ns, duration_ms, "
            "waveform, created_at_ms, updated_at_ms, thumbnail, group_row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_row, contact_id, direction, status, name, mime_type, size, path,
                state, blob_id, blob_size, source_mtime_ns, duration_ms, waveform, now_ms,
                now_ms, thumbnail, group_row,
            ),
        )  # fmt: skip
        row = self.get(int(cur.lastrowid or 0))
        assert row is not None
        return row

    def get(self, transfer_id: int) -> TransferRow | None:
        r = self._db.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE id = ?", (transfer_id,)
        ).fetchone()
        return None if r is None else _row(r)

    def for_message(self, message_row: int) -> TransferRow | None:
        r = self._db.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE message_row = ?", (message_row,)
        ).fetchone()
        return None if r is None else _row(r)

    def with_status(self, statuses: tuple[str, ...]) -> list[TransferRow]:
        marks = ", ".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE status IN ({marks}) ORDER BY id", statuses
        ).fetchall()
        return [_row(r) for r in rows]

    def all(self) -> list[TransferRow]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM transfers ORDER BY id").fetchall()
        return [_row(r) for r in rows]

    def find_upload(
        self,
        contact_id: int,
        path: str,
        size: int,
        mtime_ns: int,
        statuses: tuple[str, ...],
        *,
        group: bool = False,
    ) -> TransferRow | None:
        """An upload of this very file (same path, size and modification time) to this
        contact (``group``: to the group of row ``contact_id``) in one of ``statuses``: what
        sending the same file again resumes."""
        marks = ", ".join("?" * len(statuses))
        owner = "group_row" if group else "contact_id"
        r = self._db.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE direction = 'up' AND {owner} = ? "
            f"AND path = ? AND size = ? AND source_mtime_ns = ? AND status IN ({marks}) "
            "ORDER BY id DESC LIMIT 1",
            (contact_id, path, size, mtime_ns, *statuses),
        ).fetchone()
        return None if r is None else _row(r)

    def update(self, transfer_id: int, now_ms: int, **fields: object) -> None:
        """Set columns of one transfer (names from a fixed list)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not transfer columns: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE transfers SET {sets}, updated_at_ms = ? WHERE id = ?",
            (*fields.values(), now_ms, transfer_id),
        )
