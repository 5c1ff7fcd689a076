"""Adding a contact grants delivery access at once; blocking one re-keys everyone else.

The delivery secret (core/delivery_access.py) is what lets a contact's messages pass the
recipient's stranger quota on the relay. A contact must hold it before the recipient ever
writes to them (otherwise a fast first burst is throttled as message requests), and after a
block every remaining contact must be sent the new secret, not wait for the next text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_tui.app.service import MessengerService
from messenger_tui.core.delivery_access import ACCESS_SECRET_LEN
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


async def test_adding_shares_the_secret_and_blocking_rekeys_the_others(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
            client(tmp_path, "carol", relay.url) as carol,
        ):
            await introduce(alice, bob)
            await introduce(alice, carol)
            for s in (alice, bob, carol):
                await s.start()

            def held(holder: MessengerService, owner: bytes) -> bytes | None:
                return holder.store.contacts.delivery_access(owner)

            alice_id = alice.identity.public
            # No text was written: adding each other was enough.
            await wait_for(lambda: held(bob, alice_id) is not None, timeout=30)
            await wait_for(lambda: held(carol, alice_id) is not None, timeout=30)
            first = held(bob, alice_id)
            assert first is not None and len(first) == ACCESS_SECRET_LEN
            assert held(carol, alice_id) == first

            alice.set_blocked(alice.contact("carol").id, True)
            await wait_for(lambda: held(bob, alice_id) not in (None, first), timeout=30)
            rotated = held(bob, alice_id)
            # Bob holds the new secret; carol (blocked) was never sent it.
            assert held(carol, alice_id) == first != rotated
            # Bob's messages still reach alice.
            await bob.send_text(bob.contact("alice").id, "still friends")
            await wait_for(
                lambda: any(
                    m.text == "still friends"
                    for m in alice.history(alice.contact("bob").id, limit=10)
                ),
                timeout=30,
            )
