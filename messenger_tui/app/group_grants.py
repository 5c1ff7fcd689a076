"""Our group send grants at the relay, kept in step with the sender keys we hold.

For each group we are in and each other current member whose sender key we hold, we grant
the relay the verifier of that key's send credential (core/groups/send_credential.py): the
relay then accepts that member's short ``SendMulti`` frames for us (8 bytes per recipient
instead of an identity and a delivery secret). The grants are the newest key of each such
member only, so a member's old key (it rotated) and a removed member (its keys are dropped)
are refused; their senders fall back to the long form, which the relay judges as any send.

:class:`GroupGrants` registers the whole list (``SetGroupGrants``, replacing the previous one)
when the store's ``sender_keys_version`` moved since the last registration and the list
changed, at most :data:`~messenger_tui.core.groups.send_credential.MAX_GRANTS` entries (the
rest are left to the long form). The group sender calls :meth:`GroupGrants.sync` on each
wake (after every delivery batch and every connection).
"""

from __future__ import annotations

import logging

import msgspec

from messenger_tui.core import wire
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import RelayRequestError, RequestTimeout

log = logging.getLogger(__name__)

_RECORD_DECODER = msgspec.msgpack.Decoder(sk.SenderKeyRecord)


def sending_credential(sending: sk.SendingSenderKey) -> bytes:
    """The send credential of our own sender key (what members grant for it)."""
    return sc.send_credential(sending.group_id, sending.key_id, sending.signing_public)


class GroupGrants:
    def __init__(self, store: Store, client: RelayClient) -> None:
        self._store = store
        self._client = client
        self._synced_version = -1
        self._registered: bytes | None = None

    def grants(self) -> bytes:
        """The grants we want now, packed as ``SetGroupGrants.grants``."""
        entries: set[bytes] = set()
        for group_id, sender, data in self._store.groups.member_sender_keys():
            try:
                record = _RECORD_DECODER.decode(data)
            except msgspec.DecodeError:
                continue
            if not record.states:
                continue
            newest = record.states[0]
            credential = sc.send_credential(group_id, newest.key_id, newest.signing_public)
            entries.add(sender + sc.grant_verifier(credential))
        ordered = sorted(entries)
        if len(ordered) > sc.MAX_GRANTS:
            log.info("%d group grants, registering the first %d", len(ordered), sc.MAX_GRANTS)
            ordered = ordered[: sc.MAX_GRANTS]
        return b"".join(ordered)

    async def sync(self) -> None:
        """Register the grants if they may have changed (raises NotConnected and the like: the
        next call retries; a refusal or no answer is logged and waits for the next change)."""
        version = self._store.groups.sender_keys_version
        if version == self._synced_version:
            return
        packed = self.grants()
        if packed != self._registered:
            try:
                await self._client.request(wire.SetGroupGrants(ref=0, grants=packed))
            except (RelayRequestError, RequestTimeout) as exc:
                # A relay without grants (or refusing these): members send us the long form.
                # Not retried until our sender keys change again (no frame per wake).
                log.warning("the relay did not take our group send grants: %s", type(exc).__name__)
                self._synced_version = version
                return
            self._registered = packed
        self._synced_version = version
