"""The Echo contact: a real participant (own identity, own ratchet sessions) that replies to
every message with ``echo: <text>``. The relay's ``--echo`` mode and ``make run`` run it.

Use :func:`ensure_echo_profile` before starting the relay (the relay announces Echo's identity
in its Challenge), then ``await run_echo(home, relay_url)`` until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from messenger_tui.app import events as ev
from messenger_tui.app.profile import create_profile, open_profile, profile_exists
from messenger_tui.app.service import MessengerService

log = logging.getLogger(__name__)
ECHO_NAME = "Echo"


def ensure_echo_profile(home: Path, relay_url: str | None = None) -> bytes:
    """Create Echo's profile if needed (and point it at ``relay_url`` when given); return
    Echo's identity public key, which the relay announces in its Challenge."""
    profile = (
        open_profile(home, None)
        if profile_exists(home)
        else create_profile(home, ECHO_NAME, relay_url or "ws://127.0.0.1:0", None)
    )
    try:
        if relay_url is not None:
            with profile.store.db.transaction():
                profile.store.settings.set("relay_url", relay_url)
        return profile.identity.public
    finally:
        profile.close()


async def run_echo(home: Path, relay_url: str, ready: asyncio.Event | None = None) -> None:
    """Answer every text message until cancelled."""
    ensure_echo_profile(home, relay_url)
    profile = open_profile(home, None)
    service = MessengerService(profile)
    queue = service.subscribe()
    await service.start()
    if ready is not None:
        ready.set()
    try:
        while True:
            event = await queue.get()
            if isinstance(event, ev.MessageReceived) and event.message.kind == "text":
                contact = event.contact
                if contact.auto_added:  # Echo talks to everyone: accept the request
                    contact = service.add_contact(contact.address, contact.name)
                await service.mark_read(contact.name)
                try:
                    await service.send_text(contact.name, f"echo: {event.message.text}")
                except Exception as exc:  # one bad message must not stop Echo
                    log.warning("echo could not reply: %s", type(exc).__name__)
    finally:
        with contextlib.suppress(Exception):
            await service.close()
        profile.close()
