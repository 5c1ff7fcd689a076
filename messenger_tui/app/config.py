"""The hand-edited config file: ``config.toml`` in the profile directory (``--home``).

Example::

    [keymap]                 # binding id = key(s); ids are listed in the user guide
    "composer.send" = "ctrl+s"
    "composer.newline" = "enter"

    [ui]
    theme = "nord"           # any Textual theme (Ctrl+P, "Change theme" lists them)
    image_preview = "auto"   # auto | kitty | sixel | half-blocks | off

    [notifications]          # defaults until changed on the settings screen
    toasts = true
    bell = true
    desktop = false
    private = false

    [messaging]
    read_receipts = true
    typing = true

    [calls]
    bitrate_kbps = 24        # Opus bitrate of what you send, 12-64 kb/s
    talk_mode = "open"       # open | hold (hold the talk key, F4) | toggle
    echo_cancellation = true # remove the speaker's echo from what the microphone sends
    noise_suppression = true # suppress background noise, even out a quiet microphone

The ``[keymap]`` is the user's: the app never writes this file. The other sections give
defaults for the settings the settings screen changes; a value changed there is stored in the
profile and wins from then on.

:func:`load_config` never raises on what the file contains: a malformed file or an unknown
entry becomes a readable problem (naming the line) and the rest falls back to the defaults,
so the app always starts. Only the standard library is imported here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_FILE = "config.toml"
#: A config file larger than this is not read (it is a small hand-written file).
MAX_CONFIG_BYTES = 256 * 1024

#: Section -> {option -> type} of the settings a file may give defaults for.
SETTING_SECTIONS: dict[str, dict[str, type[bool | int | str]]] = {
    "ui": {"theme": str, "image_preview": str},
    "notifications": {"toasts": bool, "bell": bool, "desktop": bool, "private": bool},
    "messaging": {"read_receipts": bool, "typing": bool},
    "calls": {
        "bitrate_kbps": int,
        "talk_mode": str,
        "echo_cancellation": bool,
        "noise_suppression": bool,
    },
}
#: Options whose setting has another name in the app (section, option) -> setting.
SETTING_NAMES: dict[tuple[str, str], str] = {("calls", "bitrate_kbps"): "call_bitrate_kbps"}
#: Whole-number options' ranges (inclusive), as the app checks them.
INT_RANGES: dict[tuple[str, str], tuple[int, int]] = {("calls", "bitrate_kbps"): (12, 64)}
#: Text options that take one of a few values (as in app/models.py's TALK_MODES).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("calls", "talk_mode"): ("open", "hold", "toggle"),
    ("ui", "image_preview"): ("auto", "kitty", "sixel", "half-blocks", "off"),
}


@dataclass(frozen=True)
class Config:
    """What the file says. ``problems``: readable messages to show the user (the app starts
    anyway, without the entries they name)."""

    path: Path
    keymap: dict[str, str] = field(default_factory=dict)
    #: Setting name (as in :class:`~messenger_tui.app.models.Settings`) -> default value.
    defaults: dict[str, bool | str | int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


def load_config(
    home: Path,
    *,
    binding_ids: Collection[str] | None = None,
    key_problem: Callable[[str], str | None] | None = None,
) -> Config:
    """Read ``config.toml`` in ``home`` (a missing file is an empty config).

    ``binding_ids``: the ids a keymap may name (unknown ones are reported and skipped);
    ``key_problem``: says what is wrong with a key string, or None when it is fine."""
    path = config_path(home)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return Config(path, problems=[f"{path}: larger than {MAX_CONFIG_BYTES} bytes; "
                                          "not read, defaults used"])  # fmt: skip
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        return Config(path, problems=[f"{path}: cannot read it ({exc.strerror or exc}); "
                                      "defaults used"])  # fmt: skip
    return parse_config(raw, path, binding_ids=binding_ids, key_problem=key_problem)


def parse_config(
    raw: bytes,
    path: Path,
    *,
    binding_ids: Collection[str] | None = None,
    key_problem: Callable[[str], str | None] | None = None,
) -> Config:
    """Parse the file's bytes (see :func:`load_config`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Config(path, problems=[f"{path} line {line}: not UTF-8 text; defaults used"])
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Config(path, problems=[f"{path}: not valid TOML: {exc}; defaults used"])
    problems: list[str] = []

    def where(section: str | None, key: str | None = None) -> str:
        line = _line_of(text, section, key)
        return f"{path} line {line}" if line else str(path)

    keymap: dict[str, str] = {}
    defaults: dict[str, bool | str | int] = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            problems.append(f"{where(None, section)}: {section!r} should be a [section]; "
                            "ignored")  # fmt: skip
            continue
        if section == "keymap":
            for binding_id, keys in body.items():
                at = where(section, binding_id)
                if not isinstance(keys, str) or not keys.strip():
                    problems.append(f'{at}: keymap entry {binding_id!r} must be a key such as '
                                    f'"ctrl+s" (several: "ctrl+s,f5"); ignored')  # fmt: skip
                    continue
                if binding_ids is not None and binding_id not in binding_ids:
                    hint = _close_match(binding_id, binding_ids)
                    problems.append(f"{at}: unknown binding id {binding_id!r}"
                                    + (f" (did you mean {hint!r}?)" if hint else "")
                                    + "; ignored. The user guide lists the ids")  # fmt: skip
                    continue
                keys = ",".join(k.strip() for k in keys.split(","))
                bad = [k for k in keys.split(",") if key_problem and key_problem(k)]
                if bad and key_problem is not None:
                    problems.append(f"{at}: {binding_id!r}: {key_problem(bad[0])}; ignored")
                    continue
                keymap[binding_id] = keys
        elif section in SETTING_SECTIONS:
            options = SETTING_SECTIONS[section]
            for name, value in body.items():
                at = where(section, name)
                kind = options.get(name)
                if kind is None:
                    known = ", ".join(options)
                    problems.append(f"{at}: unknown option {name!r} in [{section}] "
                                    f"(known: {known}); ignored")  # fmt: skip
                elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    what = {bool: "true or false", int: "a whole number"}.get(kind, "a quoted name")
                    problems.append(f"{at}: [{section}] {name} must be {what}; ignored")
                elif isinstance(value, str) and (not value.strip() or len(value) > 64):
                    problems.append(f"{at}: [{section}] {name} must be a short name; ignored")
                elif isinstance(value, str) and value.strip() not in CHOICES.get(
                    (section, name), (value.strip(),)
                ):
                    choices = ", ".join(CHOICES[section, name])
                    problems.append(f"{at}: [{section}] {name} must be one of {choices}; ignored")
                elif (
                    isinstance(value, int)
                    and (section, name) in INT_RANGES
                    and not (INT_RANGES[section, name][0] <= value <= INT_RANGES[section, name][1])
                ):
                    low, high = INT_RANGES[section, name]
                    problems.append(f"{at}: [{section}] {name} must be {low}-{high}; ignored")
                else:
                    setting = SETTING_NAMES.get((section, name), str(name))
                    defaults[setting] = value.strip() if isinstance(value, str) else value
        else:
            known = ", ".join(["keymap", *SETTING_SECTIONS])
            problems.append(f"{where(section)}: unknown section [{section}] (known: {known}); "
                            "ignored")  # fmt: skip
    return Config(path, keymap=keymap, defaults=defaults, problems=problems)


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")


def _line_of(text: str, section: str | None, key: str | None = None) -> int | None:
    """The line (1-based) of ``key`` in ``[section]`` (or of the section header when ``key``
    is None; of a top-level key when ``section`` is None). A best effort for messages."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).strip("\"' ")
            if key is None and current == section:
                return number
            continue
        if key is not None and current == section:
            stripped = line.lstrip()
            for quoted in (f'"{key}"', f"'{key}'", key):
                if stripped.startswith(quoted) and stripped[len(quoted) :].lstrip()[:1] == "=":
                    return number
    return None


def _close_match(word: str, candidates: Collection[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
