"""Delivery access on the client: our own delivery secret and the ones contacts gave us.

See :mod:`messenger_tui.core.delivery_access` for the scheme. The rules here:

* Our secret is created on first use (32 random bytes, setting ``delivery_secret``) and its
  verifier is registered with the relay after every connect (:meth:`AccessKeys.register`), so
  a new relay or a restored profile is always in step.
* It travels inside texts we write (``Text.access``: writing to someone is what makes them a
  contact), and in an ``Access`` payload queued when we add or unblock a contact (adding
  someone is the other way to make them one) and after a rotation. Receipts, typing and calls
  never carry it, so a stranger who writes to us learns nothing until we answer or add them.
* A contact's secret arrives in its texts and is stored on its contact row (the latest wins);
  the sender presents it in every Send to that contact.
* Blocking a contact rotates our secret (:meth:`AccessKeys.rotate`) and registers the new
  verifier: the blocked contact's old secret is refused from then on (its sends become message
  requests). Every remaining added contact is sent the new secret at once (an ``Access``
  payload through the outbox); until it arrives their messages are message requests,
  delivered within the stranger quota.
"""

from __future__ import annotations

import asyncio
import logging
import os

from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.delivery_access import ACCESS_SECRET_LEN, delivery_verifier
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import TransportError

log = logging.getLogger(__name__)
_SETTING = "delivery_secret"


class AccessKeys:
    """Our delivery secret and contacts' secrets, on top of the profile store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._register_task: asyncio.Task[None] | None = None

    def own_secret(self) -> bytes:
        """Our current delivery secret (created and stored on first use)."""
        value = self._store.settings.get(_SETTING)
        if value is not None:
            secret = bytes.fromhex(value)
            if len(secret) == ACCESS_SECRET_LEN:
                return secret
        return self._new_secret()

    def rotate(self) -> bytes:
        """Replace our secret (after blocking someone); register it with :meth:`register`."""
        return self._new_secret()

    def _new_secret(self) -> bytes:
        secret = os.urandom(ACCESS_SECRET_LEN)
        with self._store.db.transaction():
            self._store.settings.set(_SETTING, secret.hex())
        return secret

    def for_contact(self, identity: bytes) -> bytes | None:
        """The secret to present when sending to ``identity`` (None: we are a stranger)."""
        return self._store.contacts.delivery_access(identity)

    def learn(self, identity: bytes, secret: bytes | None) -> None:
        """A text from ``identity`` carried its secret (call inside the receive transaction)."""
        if secret is not None and len(secret) == ACCESS_SECRET_LEN:
            self._store.contacts.set_delivery_access(identity, secret)

    def share_with(self, identities: list[bytes], now_ms: int) -> None:
        """Queue our current secret to each of ``identities`` (call inside a transaction; wake
        the sender after it commits)."""
        body = pl.encode_payload(pl.Access(secret=self.own_secret()))
        for identity in identities:
            self._store.outbox.enqueue(identity, os.urandom(16), body, "access", now_ms)

    def share_with_all(self, now_ms: int) -> None:
        """After a rotation: queue the new secret to every added, unblocked contact."""
        self.share_with(
            [c.identity for c in self._store.contacts.all() if not c.blocked and not c.auto_added],
            now_ms,
        )

    async def register(self, client: RelayClient) -> None:
        """Register our verifier with the relay (raises the client's transport errors)."""
        verifier = delivery_verifier(self.own_secret())
        await client.request(wire.SetDeliveryVerifier(ref=0, verifier=verifier))

    def register_soon(self, client: RelayClient) -> None:
        """After a rotation: register the new verifier in the background if connected (a
        failure is logged; the next connect registers it anyway)."""
        if client.connected:
            loop = asyncio.get_running_loop()
            self._register_task = loop.create_task(self._register_safely(client))

    async def _register_safely(self, client: RelayClient) -> None:
        try:
            await self.register(client)
        except (TransportError, OSError) as exc:
            log.warning("delivery verifier registration failed: %s", type(exc).__name__)
