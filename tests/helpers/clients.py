"""In-process clients (the real MessengerService) talking to a real relay process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from messenger_tui.app import events as ev
from messenger_tui.app.profile import create_profile, open_profile, profile_exists
from messenger_tui.app.service import MessengerService

E = TypeVar("E", bound=ev.Event)


def make_service(root: Path, name: str, relay_url: str) -> MessengerService:
    home = root / name
    profile = (
        open_profile(home, None)
        if profile_exists(home)
        else create_profile(home, name, relay_url, None)
    )
    return MessengerService(profile)


@contextlib.asynccontextmanager
async def client(root: Path, name: str, relay_url: str) -> AsyncIterator[MessengerService]:
    service = make_service(root, name, relay_url)
    try:
        yield service
    finally:
        await service.close()
        service.profile.close()


async def introduce(a: MessengerService, b: MessengerService) -> None:
    """Each adds the other, both publish their prekeys on the relay, and each holds the
    other's delivery secret (adding a contact grants it: docs/protocol.md), so the relay
    counts their messages as a contact's, not as message requests."""
    a.add_contact(b.address, b.name)
    b.add_contact(a.address, a.name)
    for s in (a, b):
        if not s.connected:
            await s.connect(timeout=10)
    await wait_for(lambda: holds_grant(a, b) and holds_grant(b, a), timeout=30)


def holds_grant(holder: MessengerService, owner: MessengerService) -> bool:
    """``holder`` has ``owner``'s delivery secret."""
    return holder.store.contacts.delivery_access(owner.identity.public) is not None


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.02
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(interval)


async def next_event(queue: asyncio.Queue[ev.Event], kind: type[E], timeout: float = 20.0) -> E:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        event = await asyncio.wait_for(queue.get(), max(0.01, remaining))
        if isinstance(event, kind):
            return event


def assert_no_plaintext(directory: Path, texts: list[str]) -> None:
    """No file under ``directory`` (databases, WAL, logs) contains any of the texts."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files, f"nothing stored under {directory}"
    needles = [t.encode() for t in texts]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"plaintext found in {path}"
