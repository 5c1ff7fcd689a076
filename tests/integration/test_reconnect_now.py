"""After a relay restart the client may be deep into its backoff (up to 30 s between
attempts); "reconnect now" (F8, the palette's "Reconnect now") connects at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from messenger_tui.app import events as ev
from messenger_tui.core.links.relay_link import LinkPhase
from tests.helpers.clients import client, wait_for
from tests.helpers.relay_process import RelayProcess


class LongDelays:
    """A backoff already at its cap: every retry waits 30 s (as after a long outage)."""

    def __init__(self) -> None:
        self.resets = 0

    def next_delay(self) -> float:
        return 30.0

    def reset(self) -> None:
        self.resets += 1


async def test_reconnect_now_after_a_relay_restart_connects_at_once(
    tmp_path: Path, relay: RelayProcess
) -> None:
    async with client(tmp_path, "alice", relay.url) as alice:
        lifecycle = alice._client.lifecycle
        delays = LongDelays()
        lifecycle.backoff = delays
        events = alice.subscribe()
        await alice.start()
        await wait_for(lambda: alice.connected, timeout=10)
        assert not alice.reconnect_now()  # connected: nothing to do

        await asyncio.to_thread(relay.kill)
        await wait_for(lambda: lifecycle.phase is LinkPhase.WAITING, timeout=10)
        loop = asyncio.get_running_loop()
        deadline = lifecycle.next_deadline
        assert deadline is not None and deadline - loop.time() > 25  # a long wait ahead
        await asyncio.to_thread(relay.start, relay.port)  # same port, same data

        started = loop.time()
        assert alice.reconnect_now()
        assert not alice.reconnect_now()  # the attempt is in flight
        await wait_for(lambda: alice.connected, timeout=10)
        took = loop.time() - started
        assert took < 5, f"reconnect now took {took:.1f} s"
        print(f"reconnect now: connected {took * 1000:.0f} ms after the request")
        assert delays.resets >= 1  # the backoff restarts from its base

        states = []
        while not events.empty():
            event = events.get_nowait()
            if isinstance(event, ev.ConnectionChanged):
                states.append(event.state)
        assert states[-3:] == ["reconnecting", "connecting", "connected"]
