"""Client failover between relay nodes of one deployment (several relay URLs in a profile),
with real relay processes: the node in use is SIGKILLed and both users continue on the next
node, sending and receiving, each message once, in order.

The two relays here run on SQLite (each its own mailboxes; they share the relay key, as the
nodes of one deployment do): what is shown is the client's side, that it finds the other node
and resumes there. The same over one Redis, where the mailboxes survive the node too, is in
tests/integration/test_relay_nodes.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from messenger_tui.app.service import MessengerService
from messenger_tui.relay.relay_key import SEED_FILE
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

BEFORE = 40
AFTER = 40


def texts_from(service: MessengerService, name: str) -> list[str]:
    return [m.text for m in service.history(service.contact(name).id, limit=1000) if not m.outgoing]


async def test_both_users_fail_over_to_the_second_node_when_the_first_is_killed(
    tmp_path: Path,
) -> None:
    first = RelayProcess(tmp_path / "node-1").start()
    second_dir = tmp_path / "node-2"
    second_dir.mkdir(mode=0o700)
    shutil.copy(first.data_dir / SEED_FILE, second_dir / SEED_FILE)  # one deployment's key
    second = RelayProcess(second_dir).start()
    try:
        assert first.relay_key == second.relay_key
        urls = f"{first.url},{second.url}"
        async with (
            client(tmp_path, "alice", urls) as alice,
            client(tmp_path, "bob", urls) as bob,
        ):
            await introduce(alice, bob)
            await alice.start()  # stay connected: reconnect and fail over from now on
            await bob.start()
            assert alice._client.current_url == first.url
            for i in range(BEFORE):
                await alice.send_text(alice.contact("bob").id, f"before {i:03d}")
            await wait_for(lambda: len(texts_from(bob, "alice")) == BEFORE, timeout=60)

            first.kill()  # node 1 dies: both fail over to node 2
            for i in range(AFTER):
                await alice.send_text(alice.contact("bob").id, f"after {i:03d}")
            await wait_for(lambda: alice._client.current_url == second.url, timeout=30)
            await wait_for(lambda: bob._client.current_url == second.url, timeout=30)
            await wait_for(lambda: len(texts_from(bob, "alice")) == BEFORE + AFTER, timeout=90)
            await bob.send_text(bob.contact("alice").id, "got them all")
            await wait_for(lambda: texts_from(alice, "bob") == ["got them all"], timeout=60)

            expected = [f"before {i:03d}" for i in range(BEFORE)]
            expected += [f"after {i:03d}" for i in range(AFTER)]
            assert texts_from(bob, "alice") == expected  # each once, in order
            # her outbox (messages and the receipt for bob's reply) empties on node 2
            await wait_for(lambda: alice.outbox_count() == 0, timeout=30)
    finally:
        first.close()
        second.close()


async def test_a_one_shot_connect_tries_each_url_in_turn(tmp_path: Path) -> None:
    from tests.helpers.ports import free_port

    with RelayProcess(tmp_path / "node") as node:
        dead = f"ws://127.0.0.1:{free_port()}"
        async with client(tmp_path, "carol", f"{dead},{node.url}") as carol:
            await carol.connect(timeout=10)  # the first URL refuses: the second serves
            assert carol.connected and carol._client.current_url == node.url
