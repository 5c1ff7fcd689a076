"""The Echo contact: a real participant (own identity, own ratchet sessions) that replies to
every message with ``echo: <text>`` and answers every call, playing the caller's voice back
after :data:`ECHO_CALL_DELAY_S` (a sound test through the whole encrypted path). The relay's
``--echo`` mode and ``make run`` run it.

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
from messenger_tui.media.loopback import DelayLoop
from messenger_tui.media.ports import AudioSink, AudioSource

log = logging.getLogger(__name__)
ECHO_NAME = "Echo"
#: How long after you speak Echo plays it back in a call.
ECHO_CALL_DELAY_S = 1.5
#: Echo hangs up a sound test after this long.
ECHO_CALL_LIMIT_S = 300.0


def _echo_audio() -> tuple[AudioSource, AudioSink]:
    loop = DelayLoop(ECHO_CALL_DELAY_S)
    return loop.source, loop.sink


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
    # one line per sound test with what the caller's audio went through here (the relay logs
    # only warnings by default); no audio, no keys
    media_log = logging.getLogger("messenger_tui.media.session")
    if media_log.level == logging.NOTSET:
        media_log.setLevel(logging.INFO)
    profile = open_profile(home, None)
    service = MessengerService(profile)
    service.set_audio(_echo_audio)
    service.accept_calls_from_strangers()
    queue = service.subscribe()
    await service.start()
    limit: asyncio.TimerHandle | None = None
    if ready is not None:
        ready.set()
    try:
        while True:
            event = await queue.get()
            if isinstance(event, ev.CallChanged):
                call = event.call
                if call.state == "incoming_ringing":
                    try:
                        service.accept_call()
                    except Exception as exc:
                        log.warning("echo could not answer: %s", type(exc).__name__)
                elif call.state == "active" and limit is None:
                    limit = asyncio.get_running_loop().call_later(
                        ECHO_CALL_LIMIT_S, service.hang_up
                    )
                elif not call.live and limit is not None:
                    limit.cancel()
                    limit = None
                continue
            if isinstance(event, ev.MessageReceived) and event.message.kind == "text":
                contact = event.contact
                if contact.auto_added:  # Echo talks to everyone: accept the request
                    contact = service.add_contact(contact.address, contact.name)
                await service.mark_read(contact.id)
                try:
                    await service.send_text(contact.id, f"echo: {event.message.text}")
                except Exception as exc:  # one bad message must not stop Echo
                    log.warning("echo could not reply: %s", type(exc).__name__)
    finally:
        with contextlib.suppress(Exception):
            await service.close()
        profile.close()
