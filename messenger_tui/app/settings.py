"""The profile's settings: what the settings screen changes, stored in the profile database.

:class:`ProfileSettings` reads and writes them (cached: the service asks on every event);
values not stored yet come from ``defaults`` (the ``config.toml`` of the profile, see
:mod:`messenger_tui.app.config`), then from :class:`~messenger_tui.app.models.Settings`.
A value changed in the app is stored and wins over the file from then on.

Also here: checking a relay URL. Changing the passphrase is :mod:`messenger_tui.app.profile_keys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import IMAGE_PREVIEW_MODES, TALK_MODES, Settings
from messenger_tui.core.crypto import keystore
from messenger_tui.core.errors import CryptoError
from messenger_tui.storage.store import Store
from messenger_tui.transport.errors import BadRelayUrl
from messenger_tui.transport.urls import parse_relay_urls, split_relay_urls

#: Setting name -> key in the settings table. Booleans are stored as "1" / "0".
STORED_KEYS: dict[str, str] = {
    "toasts": "ui.toasts",
    "bell": "ui.bell",
    "desktop": "ui.desktop",
    "private": "ui.private",
    "read_receipts": "read_receipts",
    "typing": "typing",
    "theme": "ui.theme",
    "microphone": "audio.microphone",
    "speaker": "audio.speaker",
    "call_bitrate_kbps": "audio.call_bitrate_kbps",
    "talk_mode": "audio.talk_mode",
    "download_dir": "files.download_dir",
    "auto_download_kib": "files.auto_download_kib",
    "echo_cancellation": "audio.echo_cancellation",
    "noise_suppression": "audio.noise_suppression",
    "image_preview": "ui.image_preview",
}
#: Settings that are names, and how long each may be.
TEXT_SETTINGS: dict[str, int] = {
    "theme": 64,
    "microphone": 256,
    "speaker": 256,
    "talk_mode": 16,
    "download_dir": 4096,
    "image_preview": 16,
}
#: Text settings that take one of a few values.
CHOICE_SETTINGS: dict[str, tuple[str, ...]] = {
    "talk_mode": TALK_MODES,
    "image_preview": IMAGE_PREVIEW_MODES,
}
#: Settings that are whole numbers, and their range (inclusive).
INT_SETTINGS: dict[str, tuple[int, int]] = {
    # Opus's useful range for speech: below 12 kb/s wideband speech degrades fast; above
    # 64 kb/s mono speech gains nothing audible (every frame is padded to its rate's size)
    "call_bitrate_kbps": (12, 64),
    # 0: nothing downloads by itself; the relay's default cap is 100 MiB
    "auto_download_kib": (0, 1024 * 1024),
}
BOOL_SETTINGS = frozenset(k for k in STORED_KEYS if k not in TEXT_SETTINGS | INT_SETTINGS)
MAX_THEME_LEN = TEXT_SETTINGS["theme"]
DefaultValue = bool | str | int


def check_setting(name: str, value: object) -> DefaultValue:
    """The value if ``name`` is a setting :meth:`ProfileSettings.update` takes and ``value``
    has its type; :class:`BadInput` saying why otherwise."""
    if name not in STORED_KEYS:
        raise BadInput(f"unknown setting {name!r} (known: {', '.join(sorted(STORED_KEYS))})")
    if name in BOOL_SETTINGS:
        if not isinstance(value, bool):
            raise BadInput(f"setting {name!r} is true or false, not {value!r}")
        return value
    if name in INT_SETTINGS:
        low, high = INT_SETTINGS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise BadInput(
                f"setting {name!r} is a whole number from {low} to {high}, not {value!r}"
            )
        return value
    if not isinstance(value, str) or len(value) > TEXT_SETTINGS[name] or not value.isprintable():
        raise BadInput(f"setting {name!r} must be a short name, not {value!r}")
    if name in CHOICE_SETTINGS and value.strip() not in CHOICE_SETTINGS[name]:
        raise BadInput(
            f"setting {name!r} is one of {', '.join(CHOICE_SETTINGS[name])}, not {value!r}"
        )
    return value.strip()


def _from_stored(name: str, text: str, default: DefaultValue) -> DefaultValue:
    """A stored setting's text as its value (the default if it no longer checks out)."""
    if name in BOOL_SETTINGS:
        return text == "1"
    if name in INT_SETTINGS:
        try:
            return check_setting(name, int(text))
        except (ValueError, BadInput):
            return default
    if name in CHOICE_SETTINGS and text not in CHOICE_SETTINGS[name]:
        return default
    return text


def check_relay_url(url: str) -> str:
    """The URL, stripped, if it is a valid relay URL (or a comma-separated list of the URLs
    of one deployment's nodes, then normalised to ``a,b``); :class:`BadInput` saying why
    otherwise."""
    url = url.strip()
    try:
        parse_relay_urls(url)
    except BadRelayUrl as exc:
        raise BadInput(str(exc)) from None
    return ",".join(split_relay_urls(url))


class ProfileSettings:
    """The settings of one open profile (``store``: its database)."""

    def __init__(self, store: Store, default_relay_url: str, key_file: Path) -> None:
        self._store = store
        self._default_relay_url = default_relay_url
        self._key_file = key_file
        self._defaults: dict[str, DefaultValue] = {}
        self._cache: Settings | None = None

    def set_defaults(self, defaults: Mapping[str, DefaultValue]) -> None:
        """Values used while the profile stores none (from the config file); checked."""
        self._defaults = {name: check_setting(name, value) for name, value in defaults.items()}
        self._cache = None

    def current(self) -> Settings:
        if self._cache is None:
            self._cache = self._load()
        return self._cache

    def _load(self) -> Settings:
        base = Settings()
        values: dict[str, DefaultValue] = {}
        get = self._store.settings.get
        for name, key in STORED_KEYS.items():
            stored = get(key)
            if stored is not None:
                values[name] = _from_stored(name, stored, getattr(base, name))
            elif name in self._defaults:
                values[name] = self._defaults[name]
            else:
                values[name] = getattr(base, name)
        try:
            encrypted = keystore.is_encrypted(self._key_file.read_bytes())
        except (OSError, CryptoError):
            encrypted = False
        return Settings(
            toasts=bool(values["toasts"]),
            bell=bool(values["bell"]),
            desktop=bool(values["desktop"]),
            private=bool(values["private"]),
            read_receipts=bool(values["read_receipts"]),
            typing=bool(values["typing"]),
            theme=str(values["theme"]),
            microphone=str(values["microphone"]),
            speaker=str(values["speaker"]),
            call_bitrate_kbps=int(values["call_bitrate_kbps"]),
            talk_mode=str(values["talk_mode"]),
            download_dir=str(values["download_dir"]),
            auto_download_kib=int(values["auto_download_kib"]),
            echo_cancellation=bool(values["echo_cancellation"]),
            noise_suppression=bool(values["noise_suppression"]),
            image_preview=str(values["image_preview"]),
            relay_url=get("relay_url") or self._default_relay_url,
            passphrase_set=encrypted,
        )

    def update(self, changes: Mapping[str, object]) -> Settings:
        """Store the changed settings (all checked first: nothing is stored on an error)."""
        checked = {name: check_setting(name, value) for name, value in changes.items()}
        with self._store.db.transaction():
            for name, value in checked.items():
                text = ("1" if value else "0") if isinstance(value, bool) else str(value)
                self._store.settings.set(STORED_KEYS[name], text)
        self._cache = None
        return self.current()

    def set_relay_url(self, url: str) -> str:
        url = check_relay_url(url)
        with self._store.db.transaction():
            self._store.settings.set("relay_url", url)
        self._cache = None
        return url

    def forget(self) -> None:
        """Read again on the next :meth:`current` (e.g. after the key file changed)."""
        self._cache = None
