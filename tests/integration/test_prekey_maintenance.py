"""A long-running client tops up one-time prekeys while connected, as handshakes use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app import prekey_upkeep
from tests.helpers.clients import client, next_event, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


async def test_prekeys_are_replenished_while_connected(
    tmp_path: Path, relay: RelayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Treat "fewer than 100 left on the relay" as low, so the first handshake triggers it.
    monkeypatch.setattr(prekey_upkeep, "PREKEY_LOW_WATER", 100)
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
    ):
        # Bob publishes his keys; alice adds him (her first message to him, the delivery-access
        # grant, is the handshake that takes one of his one-time prekeys).
        await bob.connect(timeout=10)
        assert bob.store.prekeys.max_one_time_id() == prekey_upkeep.PREKEY_BATCH
        alice.add_contact(bob.address, bob.name)
        events = bob.subscribe()
        await bob.start()
        await alice.start()
        await alice.send_text(alice.contact("bob").id, "after the handshake")
        await next_event(events, ev.MessageReceived)
        await wait_for(lambda: bob.store.prekeys.max_one_time_id() > prekey_upkeep.PREKEY_BATCH)
        await wait_for(lambda: not bob.store.prekeys.unpublished_one_time())
