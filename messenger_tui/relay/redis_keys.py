"""Key names and record packing of the Redis relay store.

Every key of one identity carries the hash tag ``{<identity hex>}``, so one recipient's
mailbox, usage counters, verifier and prekeys live in one Redis Cluster slot and each Lua
script touches one slot (prefix ``mt:``)::

    mt:{R}:seq    counter: the last seq given in R's mailbox (kept, so seqs never repeat)
    mt:{R}:q      zset: seq -> seq, R's envelopes in order
    mt:{R}:e      hash: seq -> record (see redis_scripts)
    mt:{R}:k      hash: msg_id || sender -> seq (idempotency)
    mt:{R}:m      hash: msg_id -> "seq,seq" (acks are by msg_id)
    mt:{R}:u      hash: cc, cb, rc, rb, s<sender> -> what the quotas count
    mt:{R}:v      string: R's delivery verifier
    mt:{R}:seen   string: R authenticated once (the new-identity limit)
    mt:{R}:spk    string: the signed prekey (>q id, >H len(spk), spk, sig)
    mt:{R}:opk    zset: opk_id -> (>q id || key)
    mt:purge:{T}  zset: recipient -> expiry of its oldest envelope, one per cluster slot
                  (T is a tag that hashes to that slot, so the write script updates it)
    mt:b:{U}      hash: "body" -> a multi-recipient body, "r<recipient>" per reference;
                  expires with its references (PEXPIREAT)
    mt:relay_key  string: the relay's Ed25519 seed, shared by every node (SET NX)

Blob quotas (relay/redis_blob_quota.py): a ledger per blob owner O, in O's slot, and one for
the relay-wide byte cap under the tag ``{blobs}`` (one slot; every upload start touches it)::

    mt:{O}:bq     hash: b (bytes), n (blobs), u (unfinished uploads) charged to O
    mt:{O}:bs     hash: blob key -> "<size>,<u|c>", one record per blob charged
    mt:{O}:bd     zset: blob key -> deadline (ms) at which a forgotten record releases itself
    mt:{blobs}:bq, :bs, :bd   the same over every blob (only b is limited)

A blob key is 32 hex digits of the SHA-256 of the blob id (the id itself, the download
capability, never reaches Redis).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cache
from typing import Final

PREFIX: Final = "mt:"
RELAY_KEY: Final = PREFIX + "relay_key"
_TAIL: Final = struct.Struct(">IqqHHH")
_SPK: Final = struct.Struct(">qH")
_OPK: Final = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class MailboxKeys:
    """The keys a mailbox script gets, in the order redis_scripts expects."""

    seq: str
    q: str
    e: str
    k: str
    m: str
    u: str
    v: str
    purge: str

    def all(self) -> list[str]:
        return [self.seq, self.q, self.e, self.k, self.m, self.u, self.v, self.purge]


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key`` (redis-py's CRC16). redis-py is imported here, not
    at the top: the SQLite relay imports this module (group_grants' key names) and never
    needs redis-py, which costs ~0.15 s of CPU to import."""
    from redis.crc import key_slot as redis_key_slot

    return redis_key_slot(key)


def tag(identity: bytes) -> str:
    return "{" + identity.hex() + "}"


def mailbox_keys(recipient: bytes) -> MailboxKeys:
    t = PREFIX + tag(recipient)
    return MailboxKeys(
        seq=t + ":seq",
        q=t + ":q",
        e=t + ":e",
        k=t + ":k",
        m=t + ":m",
        u=t + ":u",
        v=t + ":v",
        purge=purge_index(key_slot(t.encode())),
    )


def verifier_key(identity: bytes) -> str:
    return PREFIX + tag(identity) + ":v"


def seen_key(identity: bytes) -> str:
    return PREFIX + tag(identity) + ":seen"


def prekey_keys(identity: bytes) -> list[str]:
    t = PREFIX + tag(identity)
    return [t + ":spk", t + ":opk"]


def blob_ledger_keys(owner: bytes | None) -> list[str]:
    """The keys of ``owner``'s blob ledger (counters, records, deadlines) in the order the
    blob quota scripts expect; None: the relay-wide ledger."""
    t = PREFIX + ("{blobs}" if owner is None else tag(owner))
    return [t + ":bq", t + ":bs", t + ":bd"]


def blob_record_key(blob_id: bytes) -> str:
    """A blob's field in the ledgers: a hash of its id (never the id itself)."""
    return hashlib.sha256(blob_id).hexdigest()[:32]


def body_key(upload_id: bytes) -> str:
    return PREFIX + "b:{" + upload_id.hex() + "}"


@cache
def _slot_tags() -> tuple[str, ...]:
    """For every cluster slot, a short tag whose key hashes to it (computed once, ~0.1 s)."""
    from redis.crc import REDIS_CLUSTER_HASH_SLOTS

    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing = REDIS_CLUSTER_HASH_SLOTS
    n = 0
    while missing:
        candidate = format(n, "x")
        slot = key_slot(candidate.encode())
        if tags[slot] is None:
            tags[slot] = candidate
            missing -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


def purge_index(slot: int) -> str:
    """The purge index of the cluster slot ``slot`` (a key in that slot)."""
    return PREFIX + "purge:{" + _slot_tags()[slot] + "}"


def pack_tail(
    *,
    size: int,
    stored_at_ms: int,
    expires_at_ms: int,
    sender: bytes,
    msg_id: bytes,
    body_ref: str,
    payload: bytes,
) -> bytes:
    ref = body_ref.encode()
    head = _TAIL.pack(size, stored_at_ms, expires_at_ms, len(sender), len(msg_id), len(ref))
    return head + sender + msg_id + ref + payload


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record, unpacked."""

    request: bool
    size: int
    stored_at_ms: int
    expires_at_ms: int
    sender: bytes
    msg_id: bytes
    body_ref: str  # "" for a 1:1 envelope
    payload: bytes


def unpack_record(rec: bytes) -> Record:
    size, stored, expires, ls, lm, lb = _TAIL.unpack_from(rec, 1)
    pos = 1 + _TAIL.size
    sender = rec[pos : pos + ls]
    msg_id = rec[pos + ls : pos + ls + lm]
    ref = rec[pos + ls + lm : pos + ls + lm + lb].decode()
    return Record(
        rec[:1] == b"1", size, stored, expires, sender, msg_id, ref, rec[pos + ls + lm + lb :]
    )


def pack_signed(spk_id: int, spk: bytes, sig: bytes) -> bytes:
    return _SPK.pack(spk_id, len(spk)) + spk + sig


def unpack_signed(raw: bytes) -> tuple[int, bytes, bytes]:
    spk_id, n = _SPK.unpack_from(raw)
    return spk_id, raw[_SPK.size : _SPK.size + n], raw[_SPK.size + n :]


def pack_one_time(opk_id: int, key: bytes) -> bytes:
    return _OPK.pack(opk_id) + key


def unpack_one_time(member: bytes) -> tuple[int, bytes]:
    (opk_id,) = _OPK.unpack_from(member)
    return opk_id, member[_OPK.size :]
