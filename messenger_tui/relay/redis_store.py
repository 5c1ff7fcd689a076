"""Redis backend of the relay store: several relay nodes on one Redis (standalone or Cluster).

The semantics are those of :mod:`messenger_tui.relay.store` (the SQLite store is the
reference); what differs follows from Redis having no transaction across cluster slots:

* one recipient's inserts and acks of a batch run as ONE Lua script on the keys of that
  recipient (hash tag ``{recipient hex}``, see :mod:`messenger_tui.relay.redis_keys`): the
  idempotency check by (recipient, sender, msg_id), the class (contact or request, against
  the recipient's verifier), the quotas, the per-recipient seq and the usage counters are
  decided atomically there, as Signal-Server's ``MessagesCache`` insert script does;
* different recipients' scripts of one batch run concurrently (Redis groups their fsyncs
  with ``appendfsync always``); if Redis fails mid-batch some may have run: the batch is
  reported failed, the sender resends, and the resend is a DUPLICATE where it had landed;
* ``seq`` increases per recipient (never reused: the counter key stays), which is what
  delivery cursors need;
* a multi-recipient body is written once, before the references (``mt:b:{upload}``: the body
  and one field per reference, expiring at the references' TTL); a reference that was not
  stored, and each acked or purged one, is dropped afterwards, the body with the last one.
  A crash between the steps leaves a body until its TTL, never a reference without a body
  (a fetch skips a reference whose body is gone, as the SQLite store does).

Durability is Redis's: an envelope survives a Redis crash when the server runs AOF with
``appendfsync always`` (checked at start-up by :func:`check_persistence`).

Every Redis failure surfaces as :class:`~messenger_tui.relay.store.StoreUnavailable` (one
line; the connection pool reconnects on the next call once Redis is back): connecting and
running commands is :mod:`messenger_tui.relay.redis_client`'s.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from redis.asyncio.cluster import RedisCluster

from messenger_tui.core.delivery_access import delivery_verifier
from messenger_tui.relay import group_grants
from messenger_tui.relay import redis_keys as keys
from messenger_tui.relay import redis_scripts as scripts
from messenger_tui.relay.quotas import MailboxQuota
from messenger_tui.relay.redis_client import Client, Script, call, open_client
from messenger_tui.relay.redis_keys import Record, unpack_record
from messenger_tui.relay.store import (
    AckRequest,
    InsertOutcome,
    InsertResult,
    NewEnvelope,
    PrekeyStatus,
    SharedUpload,
    StoredEnvelope,
    StoredOneTimePrekey,
    StoredPrekeyBundle,
    StoredSignedPrekey,
    StoreUnavailable,
)

_OUTCOMES: Final = (
    InsertOutcome.STORED,
    InsertOutcome.DUPLICATE,
    InsertOutcome.MAILBOX_FULL,
    InsertOutcome.REQUESTS_FULL,
    InsertOutcome.SENDER_REQUESTS_FULL,
)
#: Expired envelopes one purge script call deletes (then it yields to the event loop).
_PURGE_CHUNK: Final = 1_000
#: Purge indexes (one per cluster slot) read per pipeline round trip.
_PURGE_SLOTS_PER_ROUND: Final = 1_024
_SEED_LEN: Final = 32

T = TypeVar("T")


_WRITE = Script(scripts.WRITE)
_FETCH = Script(scripts.FETCH)
_COUNT = Script(scripts.COUNT)
_PURGE = Script(scripts.PURGE)
_PUT_BODY = Script(scripts.PUT_BODY)
_RELEASE_BODY = Script(scripts.RELEASE_BODY)
_PUT_PREKEYS = Script(scripts.PUT_PREKEYS)
_TAKE_BUNDLE = Script(scripts.TAKE_BUNDLE)


@dataclass
class _RecipientBatch:
    """One recipient's share of a write: insert indexes into the batch, and acked ids."""

    inserts: list[int] = field(default_factory=list)
    acks: list[bytes] = field(default_factory=list)


class RedisStore:
    """:class:`~messenger_tui.relay.store.RelayStore` on Redis. See the module docstring.

    Open with :meth:`open` (it PINGs, so a wrong address fails there), close with
    :meth:`close`."""

    def __init__(self, client: Client, *, cluster: bool) -> None:
        self._client: Client | None = client
        self.cluster = cluster

    @classmethod
    async def open(cls, url: str, *, cluster: bool = False) -> RedisStore:
        """Connect to ``url`` (``redis://`` or ``rediss://``; ``cluster``: a seed node)."""
        client = open_client(url, cluster=cluster)
        store = cls(client, cluster=cluster)
        try:
            await store._call(lambda c: c.ping())
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connections. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the relay store is closed")
        return self._client

    async def _call(self, op: Callable[[Client], Awaitable[T]]) -> T:
        return await call(self.client, op)

    # ------------------------------------------------------------------------ mailboxes

    async def write(
        self,
        inserts: Sequence[NewEnvelope],
        acks: Sequence[AckRequest],
        *,
        now_ms: int,
        ttl_ms: int,
        mailbox_limit: int,
        quota: MailboxQuota | None = None,
    ) -> list[InsertResult]:
        """See :meth:`messenger_tui.relay.store.MailboxStore.write` (and the module doc)."""
        limits = replace(quota or MailboxQuota(), contact_count=mailbox_limit)
        expires = now_ms + ttl_ms
        batches: dict[bytes, _RecipientBatch] = defaultdict(_RecipientBatch)
        for index, env in enumerate(inserts):
            batches[env.recipient].inserts.append(index)
        for ack in acks:
            batches[ack.recipient].acks.extend(ack.msg_ids)
        bodies = await self._write_bodies(inserts, ttl_ms)
        tails = [
            keys.pack_tail(
                size=env.size,
                stored_at_ms=now_ms,
                expires_at_ms=expires,
                sender=env.sender,
                msg_id=env.msg_id,
                body_ref="" if env.upload is None else bodies[env.upload],
                payload=env.body if env.upload is None else (env.header or b""),
            )
            for env in inserts
        ]
        limit_args = [
            limits.contact_count,
            limits.contact_bytes,
            limits.request_count,
            limits.request_bytes,
            limits.request_per_sender,
        ]

        async def one(recipient: bytes, batch: _RecipientBatch) -> Any:
            args: list[Any] = [recipient, now_ms, *limit_args, len(batch.inserts)]
            for index in batch.inserts:
                env = inserts[index]
                access = (
                    scripts.GRANTED
                    if env.granted
                    else b""
                    if env.access is None
                    else delivery_verifier(env.access)
                )
                args += [env.sender, env.msg_id, access, env.size, tails[index]]
            args += [len(batch.acks), *batch.acks]
            return await self._call(lambda c: _WRITE(c, keys.mailbox_keys(recipient).all(), args))

        replies = await asyncio.gather(*(one(r, b) for r, b in batches.items()))
        results: list[InsertResult | None] = [None] * len(inserts)
        stored_refs: set[tuple[str, bytes]] = set()
        released: list[tuple[str, bytes]] = []
        duplicates: list[tuple[int, int, bytes]] = []
        for (recipient, batch), (per_insert, acked_bodies) in zip(batches.items(), replies):
            for body in acked_bodies:
                released.append((body.decode(), recipient))
            for index, reply in zip(batch.inserts, per_insert):
                env = inserts[index]
                outcome = _OUTCOMES[int(reply[0])]
                request = bool(int(reply[1]))
                envelope: StoredEnvelope | None = None
                if outcome is InsertOutcome.STORED:
                    envelope = StoredEnvelope(
                        int(reply[2]),
                        recipient,
                        env.sender,
                        env.msg_id,
                        env.body,
                        now_ms,
                        env.header if env.upload is not None else None,
                    )
                    if env.upload is not None:
                        stored_refs.add((bodies[env.upload], recipient))
                elif outcome is InsertOutcome.DUPLICATE and len(reply) > 3:
                    duplicates.append((index, int(reply[2]), reply[3]))
                results[index] = InsertResult(outcome, envelope, request)
        for env in inserts:  # references written for recipients that stored nothing
            if env.upload is not None:
                ref = (bodies[env.upload], env.recipient)
                if ref not in stored_refs:
                    released.append(ref)
                    stored_refs.add(ref)  # once
        for index, seq, raw in duplicates:
            old = await self._envelopes(inserts[index].recipient, [(seq, raw)], now_ms=None)
            result = results[index]
            assert result is not None
            results[index] = replace(result, envelope=old[0] if old else None)
        await self._release(released)
        return [r for r in results if r is not None]

    async def _write_bodies(
        self, inserts: Sequence[NewEnvelope], ttl_ms: int
    ) -> dict[SharedUpload, str]:
        """Write each upload's body once, with a reference field per recipient (before any
        reference is stored, so none ever points at nothing), expiring ``ttl_ms`` from now on
        Redis's clock (PEXPIRE: the relay's clock may be a test's)."""
        uploads: dict[SharedUpload, tuple[bytes, set[bytes]]] = {}
        for env in inserts:
            if env.upload is not None:
                uploads.setdefault(env.upload, (env.body, set()))[1].add(env.recipient)
        names = {upload: keys.body_key(os.urandom(16)) for upload in uploads}

        async def put(upload: SharedUpload) -> None:
            body, recipients = uploads[upload]
            name = names[upload]
            args = [ttl_ms, body, *recipients]
            await self._call(lambda c: _PUT_BODY(c, [name], args))

        await asyncio.gather(*(put(u) for u in uploads))
        return names

    async def _release(self, refs: Sequence[tuple[str, bytes]]) -> None:
        by_body: dict[str, list[bytes]] = defaultdict(list)
        for name, recipient in refs:
            by_body[name].append(recipient)

        async def release(name: str, recipients: list[bytes]) -> None:
            await self._call(lambda c: _RELEASE_BODY(c, [name], recipients))

        await asyncio.gather(*(release(name, rs) for name, rs in by_body.items()))

    async def _envelopes(
        self,
        recipient: bytes,
        rows: Sequence[tuple[int, bytes]],
        *,
        now_ms: int | None,
    ) -> list[StoredEnvelope]:
        """(seq, record) rows as envelopes, the expired ones (at ``now_ms``) left out; the
        shared bodies are read in one round of calls, and a reference whose body is gone is
        skipped."""
        records = [(seq, unpack_record(raw)) for seq, raw in rows]
        refs = {rec.body_ref for _, rec in records if rec.body_ref}
        bodies: dict[str, bytes | None] = {}
        if refs:
            names = sorted(refs)

            async def body(name: str) -> bytes | None:
                value = await self._call(lambda c: c.hget(name, "body"))
                return value if isinstance(value, bytes) else None

            got = await asyncio.gather(*(body(n) for n in names))
            bodies = dict(zip(names, got))
        out: list[StoredEnvelope] = []
        for seq, rec in records:
            if now_ms is not None and rec.expires_at_ms <= now_ms:
                continue
            envelope = _envelope(seq, recipient, rec, bodies)
            if envelope is not None:
                out.append(envelope)
        return out

    async def fetch_after(
        self, recipient: bytes, after_seq: int, limit: int, *, now_ms: int
    ) -> list[StoredEnvelope]:
        """See :meth:`messenger_tui.relay.store.MailboxStore.fetch_after`."""
        mk = keys.mailbox_keys(recipient)
        flat = await self._call(lambda c: _FETCH(c, [mk.q, mk.e], [after_seq, limit, now_ms]))
        rows = [(int(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]
        return await self._envelopes(recipient, rows, now_ms=now_ms)

    async def count(self, recipient: bytes, *, now_ms: int) -> int:
        """See :meth:`messenger_tui.relay.store.MailboxStore.count`."""
        mk = keys.mailbox_keys(recipient)
        return int(await self._call(lambda c: _COUNT(c, [mk.q, mk.e], [now_ms])))

    async def purge_expired(self, *, now_ms: int) -> int:
        """See :meth:`messenger_tui.relay.store.MailboxStore.purge_expired`.

        Walks the purge index of every cluster slot (recipients by the expiry of their
        oldest envelope); each due recipient's expired head goes in chunks of one script
        call. The write script also trims a few expired envelopes at every insert."""
        purged = 0
        for start in range(0, 16_384, _PURGE_SLOTS_PER_ROUND):
            names = [keys.purge_index(s) for s in range(start, start + _PURGE_SLOTS_PER_ROUND)]

            async def due(c: Client, names: list[str] = names) -> list[Any]:
                pipe = c.pipeline(transaction=False)
                for n in names:
                    pipe.zrangebyscore(n, "-inf", now_ms, start=0, num=1_000)
                return await pipe.execute()

            for recipients in await self._call(due):
                for recipient in recipients:
                    purged += await self._purge_one(bytes(recipient), now_ms)
            await asyncio.sleep(0)
        return purged

    async def _purge_one(self, recipient: bytes, now_ms: int) -> int:
        mk = keys.mailbox_keys(recipient)
        purged = 0
        while True:
            n, more, released = await self._call(
                lambda c: _PURGE(c, mk.all(), [recipient, now_ms, _PURGE_CHUNK])
            )
            purged += int(n)
            await self._release([(b.decode(), recipient) for b in released])
            if not int(more):
                return purged
            await asyncio.sleep(0)

    # -------------------------------------------------------------------------- prekeys

    async def put_prekeys(
        self,
        identity: bytes,
        signed: StoredSignedPrekey,
        one_time: Sequence[StoredOneTimePrekey],
        *,
        max_one_time: int,
        now_ms: int,
    ) -> int:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.put_prekeys`."""
        args: list[Any] = [
            keys.pack_signed(signed.spk_id, signed.spk, signed.spk_sig),
            max_one_time,
        ]
        for opk in one_time:
            args += [opk.opk_id, keys.pack_one_time(opk.opk_id, opk.key)]
        pk = keys.prekey_keys(identity)
        return int(await self._call(lambda c: _PUT_PREKEYS(c, pk, args)))

    async def take_bundle(
        self, identity: bytes, *, one_time: bool = True
    ) -> StoredPrekeyBundle | None:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.take_bundle`."""
        pk = keys.prekey_keys(identity)
        reply = await self._call(lambda c: _TAKE_BUNDLE(c, pk, ["1" if one_time else "0"]))
        if reply is None:
            return None
        signed = StoredSignedPrekey(*keys.unpack_signed(reply[0]))
        opk = None if len(reply) < 2 else StoredOneTimePrekey(*keys.unpack_one_time(reply[1]))
        return StoredPrekeyBundle(identity, signed, opk)

    async def prekey_status(self, identity: bytes) -> PrekeyStatus:
        """See :meth:`messenger_tui.relay.store.PrekeyStore.prekey_status`."""
        spk_key, opk_key = keys.prekey_keys(identity)

        async def op(c: Client) -> tuple[object, int]:
            return await c.get(spk_key), await c.zcard(opk_key)

        spk, held = await self._call(op)
        signed_id = keys.unpack_signed(spk)[0] if isinstance(spk, bytes) else None
        return PrekeyStatus(int(held), signed_id)

    # --------------------------------------------------------------------------- access

    async def set_delivery_verifier(self, identity: bytes, verifier: bytes, *, now_ms: int) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.set_delivery_verifier`."""
        await self._call(lambda c: c.set(keys.verifier_key(identity), verifier))

    async def set_group_grants(
        self, identity: bytes, grants: Sequence[tuple[bytes, bytes]], *, now_ms: int
    ) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.set_group_grants`."""
        await group_grants.redis_set(self._call, identity, grants)

    async def grantees(self, sender: bytes, verifier: bytes) -> list[bytes]:
        """See :meth:`messenger_tui.relay.store.AccessStore.grantees`."""
        return await group_grants.redis_grantees(self._call, sender, verifier)

    async def identity_known(self, identity: bytes) -> bool:
        """See :meth:`messenger_tui.relay.store.AccessStore.identity_known`."""
        return bool(await self._call(lambda c: c.exists(keys.seen_key(identity))))

    async def record_identity(self, identity: bytes, *, now_ms: int) -> None:
        """See :meth:`messenger_tui.relay.store.AccessStore.record_identity`."""
        await self._call(lambda c: c.set(keys.seen_key(identity), str(now_ms), nx=True))

    async def persistence_settings(self) -> dict[str, tuple[str, str]]:
        """(appendonly, appendfsync) of the server, or of every master of a cluster."""

        async def one(c: Client) -> tuple[str, str]:
            got = await c.config_get("append*")
            return _text(got.get("appendonly")), _text(got.get("appendfsync"))

        client = self.client
        if isinstance(client, RedisCluster):
            out: dict[str, tuple[str, str]] = {}
            for node in client.get_primaries():

                async def config(c: Client, node: Any = node) -> Any:
                    return await c.execute_command("CONFIG GET", "append*", target_nodes=node)

                got = await self._call(config)
                if isinstance(got, list):
                    got = dict(zip(got[::2], got[1::2]))
                out[f"{node.host}:{node.port}"] = (
                    _text(got.get("appendonly") or got.get(b"appendonly")),
                    _text(got.get("appendfsync") or got.get(b"appendfsync")),
                )
            return out
        return {"": await self._call(lambda c: one(c))}

    # ------------------------------------------------------------------------ relay key

    async def shared_relay_seed(self, proposed: bytes) -> bytes:
        """The relay key seed every node of this deployment uses: ``proposed`` (this node's
        own) if none is stored yet (``SET NX``: the first node to start wins), else the
        stored one."""
        await self._call(lambda c: c.set(keys.RELAY_KEY, proposed, nx=True))
        seed = await self._call(lambda c: c.get(keys.RELAY_KEY))
        if not isinstance(seed, bytes) or len(seed) != _SEED_LEN:
            raise StoreUnavailable(
                f"Redis key {keys.RELAY_KEY} does not hold a {_SEED_LEN}-byte relay key seed"
            )
        return seed


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "?" if value is None else str(value)


def _envelope(
    seq: int, recipient: bytes, rec: Record, bodies: dict[str, bytes | None]
) -> StoredEnvelope | None:
    if not rec.body_ref:
        return StoredEnvelope(seq, recipient, rec.sender, rec.msg_id, rec.payload, rec.stored_at_ms)
    body = bodies.get(rec.body_ref)
    if body is None:
        return None  # the shared body is gone (at its TTL): this reference is expired
    return StoredEnvelope(
        seq, recipient, rec.sender, rec.msg_id, body, rec.stored_at_ms, rec.payload
    )
