"""Fixtures and helpers of the UI tests: a real relay process per module, in-process services
(the real MessengerService), and ways to read what is on the screen."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from messenger_tui.app.service import MessengerService
from tests.helpers.clients import make_service
from tests.helpers.relay_process import RelayProcess

SMALL = (80, 24)
LARGE = (160, 50)
#: Nothing is listening here: services pointed at it stay offline (their outbox waits).
OFFLINE_URL = "ws://127.0.0.1:9"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    with RelayProcess(tmp_path_factory.mktemp("ui-relay") / "data") as proc:
        yield proc


@pytest.fixture
async def offline_pair(tmp_path: Path) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    """Alice and Bob who know each other, never connected (no relay needed)."""
    alice = make_service(tmp_path, "alice", OFFLINE_URL)
    bob = make_service(tmp_path, "bob", OFFLINE_URL)
    alice.add_contact(bob.address, "Bob")
    bob.add_contact(alice.address, "Alice")
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


def screen_text(app: App[Any]) -> str:
    """What the active screen shows, as plain text lines (modal screens include what shows
    through from below only as blanks)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_until(
    pilot: Pilot[Any],
    predicate: Callable[[], bool],
    *,
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
    """Let the app run until ``predicate()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n--- screen ---\n"
                                 f"{screen_text(pilot.app)}")  # fmt: skip
        await pilot.pause(0.02)


def seed_messages(
    service: MessengerService, name: str, texts: list[str], *, outgoing: bool = True
) -> None:
    """Store many messages at once (one transaction), as if exchanged long ago."""
    contact = service.contact(name)
    now = int(time.time() * 1000)
    with service.store.db.transaction():
        for i, text in enumerate(texts):
            service.store.messages.insert(
                contact.id,
                os.urandom(16),
                outgoing=outgoing,
                body=text,
                sent_at_ms=now - (len(texts) - i) * 1000,
                received_at_ms=None if outgoing else now,
                state="read" if outgoing else "seen",
            )


async def wait_shown(pilot: Pilot[Any], text: str, *, timeout: float = 15.0) -> None:
    """Let the app run until ``text`` is on the screen (updates arrive through events)."""
    await wait_until(
        pilot, lambda: text in screen_text(pilot.app), timeout=timeout, what=repr(text)
    )
