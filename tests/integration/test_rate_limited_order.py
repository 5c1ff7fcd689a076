"""A sender faster than the relay's rate limit still delivers everything, once, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow
COUNT = 300


async def test_rate_limited_burst_arrives_in_order(tmp_path: Path) -> None:
    limits = ["--send-rate", "200", "--send-burst", "50"]
    with RelayProcess(tmp_path / "relay", extra_args=limits) as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            texts = [f"paced {i:03d}" for i in range(COUNT)]
            for text in texts:
                await alice.send_text(alice.contact("bob").id, text)
            await bob.start()
            await alice.start()
            await wait_for(lambda: alice.outbox_count() == 0, timeout=60)

            def received() -> list[str]:
                return [
                    m.text
                    for m in bob.history(bob.contact("alice").id, limit=COUNT + 10)
                    if m.kind == "text"
                ]

            await wait_for(lambda: len(received()) >= COUNT, timeout=60)
            assert received() == texts
        assert "too many messages" in relay.stderr_text() or "rate" in relay.log_text()
