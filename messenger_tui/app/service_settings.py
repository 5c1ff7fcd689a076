"""The settings part of :class:`~messenger_tui.app.service.MessengerService`: the stored
settings (:mod:`.settings`), the relay URL (reconnecting to it) and the passphrase
(:mod:`.profile_keys`).

A part of the service class (a base of ``MessengerService``): its methods forward to the
parts the composition root (:mod:`.service`) wires; the state they use is declared in
:class:`~messenger_tui.app.service_state.ServiceState`.
"""

from __future__ import annotations

import asyncio

from messenger_tui.app import profile_keys
from messenger_tui.app.models import Settings
from messenger_tui.app.service_state import ServiceState


class SettingsMethods(ServiceState):
    """The settings, the relay URL and the passphrase."""

    def settings(self) -> Settings:
        """The profile's settings (the settings screen shows and changes them)."""
        return self._settings.current()

    def update_settings(self, **changes: bool | str | int) -> Settings:
        """Change and store settings by name (``read_receipts=False``, ``theme="nord"``);
        :class:`BadInput` for an unknown name or a wrong type (nothing is stored then)."""
        updated = self._settings.update(changes)
        if "talk_mode" in changes:  # the current call follows: open mic opens the gate
            self.calls.gated = updated.talk_mode != "open"
            self.calls.set_talking(not self.calls.gated)
        return updated

    def set_setting_defaults(self, defaults: dict[str, bool | str | int]) -> None:
        """Defaults (from the config file) for settings the profile does not store yet."""
        self._settings.set_defaults(defaults)

    async def set_relay_url(self, url: str) -> Settings:
        """Validate and store another relay URL (:class:`BadInput` saying why it is not one)
        and, if the service runs, reconnect to it now; queued messages go out there."""
        url = self._settings.set_relay_url(url)
        self._client.set_url(url)
        self.last_error = None
        if self._upkeep.running:  # started: stay connected, to the new relay
            await self._client.close()
            await self._client.start()
        return self._settings.current()

    async def change_passphrase(self, current: str | None, new: str | None) -> Settings:
        """Re-seal the identity key file and re-encrypt the database under ``new`` (None or
        "": remove the passphrase; the database is then under a key stored with the identity
        key). ``current`` must unlock the file if it has a passphrase
        (:class:`PassphraseProblem` otherwise; nothing changes). The key derivation runs off
        the event loop; the re-encryption runs on it (it needs the database to itself: about
        0.3 s per 100,000 messages here), see :mod:`messenger_tui.app.profile_keys`."""
        key_file = self.profile.paths.identity
        new_key = await asyncio.to_thread(
            profile_keys.prepare_change, key_file, self.identity, current, new
        )
        profile_keys.commit_change(key_file, self.store, new_key)
        self._settings.forget()
        return self._settings.current()
