"""Opening the profile an interactive front end runs on: first-run creation, unlocking with a
passphrase, and the embedded relay.

The UI never composes the relay itself (only the CLI may import it): the CLI hands in an
:class:`EmbeddedRelay` whose ``start`` runs the relay (and Echo) in-process. When the opened
profile points at that relay's URL, :meth:`Launcher.prepare` starts it and makes sure Echo is
a contact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from messenger_tui.app.echo import ECHO_NAME
from messenger_tui.app.errors import AppError, BadInput
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.profile import (
    DEFAULT_RELAY_URL,
    Profile,
    claim_profile,
    create_profile,
    is_key_encrypted,
    open_profile,
    profile_exists,
    validate_name,
)
from messenger_tui.app.service import MessengerService
from messenger_tui.app.settings import check_relay_url
from messenger_tui.core.address import encode_address
from messenger_tui.storage.profile_lock import ProfileLock


@dataclass(frozen=True)
class EmbeddedRelay:
    """A relay the front end runs in its own process. ``start`` is idempotent and returns
    the Echo participant's identity key, or None when the relay runs without Echo."""

    url: str
    start: Callable[[], Awaitable[bytes | None]]


def ensure_echo_contact(service: MessengerFacade, echo_identity: bytes) -> None:
    """Add the relay's Echo participant as a contact unless it is one already."""
    if any(c.identity == echo_identity for c in service.contacts()):
        return
    address = encode_address(echo_identity)
    try:
        service.add_contact(address, ECHO_NAME)
    except BadInput:  # the name is taken by someone else
        service.add_contact(address, f"{ECHO_NAME}-relay")


class Launcher:
    """Creates or opens the profile in ``home`` and returns a (not yet started) service."""

    def __init__(
        self,
        home: Path,
        *,
        embedded: EmbeddedRelay | None = None,
        kdf_limits: tuple[int, int] | None = None,
        setting_defaults: dict[str, bool | str | int] | None = None,
    ) -> None:
        """``setting_defaults``: settings the profile does not store yet (the config file's,
        see app.config), handed to every service opened here."""
        self.home = home
        self.embedded = embedded
        self._kdf_limits = kdf_limits
        self._setting_defaults = dict(setting_defaults or {})
        self._lock: ProfileLock | None = None

    def _service(self, profile: Profile) -> MessengerService:
        service = MessengerService(profile)
        if self._setting_defaults:
            try:
                service.set_setting_defaults(self._setting_defaults)
            except BadInput:
                pass  # the config loader checked them; never fail to open over a default
        return service

    @property
    def has_embedded_relay(self) -> bool:
        return self.embedded is not None

    @property
    def needs_onboarding(self) -> bool:
        return not profile_exists(self.home)

    @property
    def needs_passphrase(self) -> bool:
        return profile_exists(self.home) and is_key_encrypted(self.home)

    @property
    def default_relay_url(self) -> str:
        return self.embedded.url if self.embedded is not None else DEFAULT_RELAY_URL

    async def create(
        self, name: str, passphrase: str | None, relay_url: str | None
    ) -> MessengerService:
        """First run: create the identity and database (``relay_url`` None: the embedded or
        default local relay). The key derivation runs off the event loop."""
        name = validate_name(name)
        url = check_relay_url(relay_url) if relay_url else self.default_relay_url
        profile = await asyncio.to_thread(
            create_profile, self.home, name, url, passphrase or None, kdf_limits=self._kdf_limits
        )
        return self._service(profile)

    def claim(self) -> None:
        """Take the profile's lock now, before asking for the passphrase:
        :class:`ProfileBusy` when another process has the profile open. :meth:`open` uses it."""
        if self._lock is None:
            self._lock = claim_profile(self.home)

    def unclaim(self) -> None:
        """Give the lock back if :meth:`claim` took it and no profile was opened with it."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    async def open(self, passphrase: str | None = None) -> MessengerService:
        """Open the existing profile; :class:`PassphraseProblem` on a wrong passphrase (the
        lock :meth:`claim` took is kept, to ask again)."""
        profile = await asyncio.to_thread(
            open_profile, self.home, passphrase or None, lock=self._lock
        )
        self._lock = None  # the profile holds it now
        return self._service(profile)

    async def prepare(self, service: MessengerFacade) -> str | None:
        """Start the embedded relay if the profile uses it, and add Echo. Returns a problem to
        show the user (the app still opens: the outbox waits for a relay), or None."""
        embedded = self.embedded
        if embedded is None or service.profile.relay_url != embedded.url:
            return None
        try:
            echo = await embedded.start()
        except AppError as exc:
            return str(exc)
        if echo is not None:
            ensure_echo_contact(service, echo)
        return None

    async def release(self, service: MessengerFacade) -> None:
        """Close a service this launcher opened, and its profile (releases the lock)."""
        try:
            await service.close()
        finally:
            service.profile.close()
