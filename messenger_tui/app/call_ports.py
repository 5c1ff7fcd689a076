"""What the call manager (:mod:`messenger_tui.app.calls`) needs of the rest of the app.

:class:`CallPorts` gives :class:`~messenger_tui.app.calls.CallManager` its I/O: call messages
sealed in the contact's ratchet session and sent as ephemeral ``signal`` frames, contact
lookups, the call log line in the conversation, and media links and sessions for the relay's
media route. :func:`make_call_manager` wires a manager to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from messenger_tui.app import events as ev
from messenger_tui.app.calls import CallManager, MediaCarrierLink, MediaSessionLike
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.group_calls import (
    GroupCallManager,
    GroupLegLike,
    GroupMediaLike,
    LegCallbacks,
)
from messenger_tui.app.group_models import Group
from messenger_tui.app.models import Contact, Message
from messenger_tui.app.rows import contact_model, message_model
from messenger_tui.app.sender import OutboxSender
from messenger_tui.core.calls.group_frames import GroupFrameOpener, GroupFrameSealer
from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.calls.states import CallInfo
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.media.ports import AudioFactory, AudioSink, AudioSource
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import TransportError

if TYPE_CHECKING:
    from messenger_tui.media.voice_processing import CaptureProcessor

log = logging.getLogger(__name__)


class CallPorts:
    """``relay_url()`` is the profile's relay URL list now (media links go to the node
    :func:`~messenger_tui.transport.media_join.media_relay_url` picks); ``bitrate_kbps()``
    the Opus rate for a call starting now; ``voice()`` the (echo cancellation, noise
    suppression) settings for it (both on when not given)."""

    def __init__(
        self,
        *,
        store: Store,
        identity: IdentityKeyPair,
        client: RelayClient,
        sender: OutboxSender,
        directory: ContactDirectory,
        now_ms: Callable[[], int],
        relay_url: Callable[[], str],
        bitrate_kbps: Callable[[], int],
        voice: Callable[[], tuple[bool, bool]] | None = None,
    ) -> None:
        self._voice = voice
        self._store = store
        self._identity = identity
        self._client = client
        self._sender = sender
        self._directory = directory
        self.now_ms = now_ms
        self._relay_url = relay_url
        self._bitrate_kbps = bitrate_kbps

    async def send_signal(self, peer: bytes, plaintext: bytes) -> bool:
        if not self._client.connected:
            return False
        try:
            if not await self._sender.ensure_session(peer):
                return False
            body = self._sender.seal_ephemeral(peer, plaintext)
            if body is None:
                return False
            await self._client.signal(peer, body)
        except (TransportError, OSError):
            return False
        return True

    def contact_for(self, identity: bytes) -> Contact | None:
        row = self._directory.by_identity(identity)
        return contact_model(row) if row is not None else None

    def log_call(self, info: CallInfo, text: str) -> Message | None:
        row = self._directory.by_identity(info.peer)
        if row is None:
            return None
        now = self.now_ms()
        with self._store.db.transaction():
            stored = self._store.messages.insert(
                row.id,
                info.call_id,
                outgoing=info.outgoing,
                body=text,
                sent_at_ms=info.started_ms,
                received_at_ms=now,
                state="seen",
                kind="call",
            )
        return message_model(stored) if stored is not None else None

    def open_link(
        self,
        join_token: bytes,
        leg: int,
        on_state: Callable[[str], None],
    ) -> MediaCarrierLink:
        from messenger_tui.transport.media_join import media_relay_url
        from messenger_tui.transport.media_link import MediaLink

        return MediaLink(
            media_relay_url(self._relay_url(), join_token),  # one node per call (several)
            self._identity.public,
            self._identity.sign,
            join_token=join_token,
            leg=leg,
            on_state=lambda state: on_state(state.name.lower()),
        )

    def make_session(
        self,
        keys: MediaKeys,
        carrier: MediaCarrierLink,
        source: AudioSource,
        sink: AudioSink,
        on_connected: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> MediaSessionLike:
        from messenger_tui.media.codec import OpusSettings
        from messenger_tui.media.session import DEFAULT_COMPLEXITY, MediaSession

        bitrate = self._bitrate_kbps() * 1000
        processor = self._voice_processor(source)
        return MediaSession(
            keys,
            carrier,
            source,
            sink,
            loop=asyncio.get_running_loop(),
            settings=OpusSettings(bitrate=bitrate, complexity=DEFAULT_COMPLEXITY),
            on_connected=on_connected,
            on_lost=on_lost,
            voice=processor,
        )

    @property
    def identity_public(self) -> bytes:
        return self._identity.public

    def open_group_leg(self, join_token: bytes, callbacks: LegCallbacks) -> GroupLegLike:
        from messenger_tui.transport.group_link import GroupLink
        from messenger_tui.transport.media_join import media_relay_url

        return GroupLink(
            media_relay_url(self._relay_url(), join_token),  # one node per room (several)
            self._identity.public,
            self._identity.sign,
            join_token=join_token,
            on_frame=callbacks.on_frame,
            on_joined=callbacks.on_joined,
            on_member=callbacks.on_member,
            on_ended=callbacks.on_ended,
        )

    def make_group_media(
        self,
        sealer: GroupFrameSealer,
        opener: GroupFrameOpener,
        send: Callable[[bytes], bool],
        source: AudioSource,
        sink: AudioSink,
    ) -> GroupMediaLike:
        from messenger_tui.media.codec import OpusSettings
        from messenger_tui.media.group_session import GroupMediaSession
        from messenger_tui.media.session import DEFAULT_COMPLEXITY

        return GroupMediaSession(
            sealer,
            opener,
            send,
            source,
            sink,
            loop=asyncio.get_running_loop(),
            settings=OpusSettings(
                bitrate=self._bitrate_kbps() * 1000, complexity=DEFAULT_COMPLEXITY
            ),
            # the echo of the mix as played is cancelled as a 1:1 call's (same settings)
            voice=self._voice_processor(source),
        )

    def _voice_processor(self, source: AudioSource) -> CaptureProcessor | None:
        """Echo cancellation and noise suppression for a microphone in a room (a source
        with a true ``acoustic``); None for WAV files and loops, which have no echo."""
        if not getattr(source, "acoustic", False):
            return None
        from messenger_tui.media.voice_processing import (
            VoiceProcessor,
            VoiceSettings,
            open_voice_processor,
        )

        echo, noise = self._voice() if self._voice is not None else (True, True)
        processor = open_voice_processor(
            VoiceSettings(echo_cancellation=echo, noise_suppression=noise, gain_control=noise)
        )
        log.info("call audio: %s", processor.status)
        # a pass-through (every stage off, or no libspeexdsp) leaves the call's path as it is
        return processor if isinstance(processor, VoiceProcessor) else None


def make_call_manager(
    ports: CallPorts, *, emit: Callable[[ev.Event], None], audio_factory: AudioFactory
) -> CallManager:
    return CallManager(
        now_ms=ports.now_ms,
        send_signal=ports.send_signal,
        contact_for=ports.contact_for,
        log_call=ports.log_call,
        emit=emit,
        open_link=ports.open_link,
        make_session=ports.make_session,
        audio_factory=audio_factory,
    )


def make_group_call_manager(
    ports: CallPorts,
    *,
    groups: Callable[[], list[Group]],
    emit: Callable[[ev.Event], None],
    audio_factory: AudioFactory,
    other_call_busy: Callable[[], bool],
) -> GroupCallManager:
    """The group call manager (app/group_calls.py) over the same ports as 1:1 calls."""
    return GroupCallManager(
        own=ports.identity_public,
        clock=time.monotonic,
        now_ms=ports.now_ms,
        groups=groups,
        send_signal=ports.send_signal,
        emit=emit,
        open_leg=ports.open_group_leg,
        make_media=ports.make_group_media,
        audio_factory=audio_factory,
        other_call_busy=other_call_busy,
    )
