"""Call media through a real relay process: two MediaLinks pair by join token and exchange
frames; they resume after the relay restarts on the same port; they go LOST when it stays
down; nothing of the media reaches the relay's disk."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from messenger_tui.transport import Backoff
from messenger_tui.transport.media_link import MediaLink, MediaLinkState
from tests.helpers.relay_process import RelayProcess
from tests.transport.conftest import Identity


def make_link(url: str, token: bytes, leg: int, frames: list[bytes], window: float) -> MediaLink:
    who = Identity.generate()
    return MediaLink(
        url,
        who.public,
        who.sign,
        join_token=token,
        leg=leg,
        on_frame=frames.append,
        reconnect_window_s=window,
        connect_timeout=2.0,
        backoff=Backoff(base=0.05, cap=0.2),
    )


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_media_through_a_relay_process_survives_a_restart(tmp_path: Path) -> None:
    token = os.urandom(32)
    marker = os.urandom(16)
    with RelayProcess(tmp_path / "relay-data") as relay:
        got_caller: list[bytes] = []
        got_callee: list[bytes] = []
        caller = make_link(relay.url, token, 0, got_caller, window=8.0)
        callee = make_link(relay.url, token, 1, got_callee, window=8.0)
        try:
            caller.start()
            callee.start()
            assert await caller.wait_joined(5) and await callee.wait_joined(5)
            await wait_for(lambda: caller.peer_present and callee.peer_present)
            for i in range(20):
                assert caller.send(b"\x01" + marker + bytes([i]) * 100)
                assert callee.send(b"\x01" + bytes([i]) * 80)
            await wait_for(lambda: len(got_callee) == 20 and len(got_caller) == 20)
            assert [f[17] for f in got_callee] == list(range(20))

            await asyncio.to_thread(relay.restart)  # SIGTERM, then the same port again
            await wait_for(lambda: caller.counters.joins == 2 and callee.counters.joins == 2)
            await wait_for(lambda: caller.peer_present and callee.peer_present)
            assert caller.state is MediaLinkState.JOINED
            assert caller.send(b"\x01" + marker + b"resumed")
            await wait_for(lambda: got_callee[-1].endswith(b"resumed"))

            relay.kill()  # and it stays down: LOST once the window is over
            caller.reconnect_window_s = callee.reconnect_window_s = 0.5  # from the next drop
            assert await caller.wait_ended(5) and await callee.wait_ended(5)
            assert {caller.state, callee.state} == {MediaLinkState.LOST}  # both lost
            assert "connection refused" in (caller.error or "")
        finally:
            await caller.close()
            await callee.close()
        for path in relay.data_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert marker not in data and token not in data, path
        assert token.hex() not in relay.log_text()
        assert "media" in relay.log_text()
