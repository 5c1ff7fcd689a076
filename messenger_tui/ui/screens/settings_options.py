"""What the settings screen offers: its checkboxes with their labels and sections, the call
device and talk-mode choices, and the device list's options (``System default`` first, a
remembered device that is missing marked as not found)."""

from __future__ import annotations

#: Checkbox id -> (setting name, label). In the order shown.
CHECKBOXES: dict[str, tuple[str, str]] = {
    "set-toasts": ("toasts", "Show a notice in the app for new messages"),
    "set-bell": ("bell", "Ring the terminal bell when the terminal is not focused"),
    "set-desktop": ("desktop", "Desktop notifications when the terminal is not focused"),
    "set-private": ("private", 'Private notifications: just "New message", no name or text'),
    "set-read-receipts": ("read_receipts", "Send read receipts (off: they never learn when)"),
    "set-typing": ("typing", 'Send and show "typing…"'),
}
SECTIONS_BEFORE = {
    "set-toasts": "Notifications",
    "set-read-receipts": "Privacy",
}
#: The calls' checkboxes (shown under the devices), as :data:`CHECKBOXES`.
CALL_CHECKBOXES: dict[str, tuple[str, str]] = {
    "set-echo-cancellation": (
        "echo_cancellation",
        "Echo cancellation (without a headset, they do not hear themselves)",
    ),
    "set-noise-suppression": (
        "noise_suppression",
        "Noise suppression and automatic gain for the microphone",
    ),
}
#: The call-device selects: id -> setting name.
DEVICE_SELECTS = {"set-microphone": "microphone", "set-speaker": "speaker"}
SYSTEM_DEFAULT = "System default"
#: The talk mode select's options (Settings.talk_mode).
TALK_MODE_OPTIONS: list[tuple[str, str]] = [
    ("Open mic (F6 mutes)", "open"),
    ("Hold F4 to talk", "hold"),
    ("F4 toggles the mic", "toggle"),
]
#: The image preview select's options (Settings.image_preview; ui/image_display.py).
IMAGE_PREVIEW_OPTIONS: list[tuple[str, str]] = [
    ("Auto: kitty, sixel or half-blocks", "auto"),
    ("Kitty graphics", "kitty"),
    ("Sixel", "sixel"),
    ("Half-blocks (any terminal)", "half-blocks"),
    ("Off (the file's line only)", "off"),
]
METER_WIDTH = 24


def device_options(names: tuple[str, ...], chosen: str) -> list[tuple[str, str]]:
    """ "System default" (value "") first, then the devices; a remembered device that is not
    there now stays choosable, marked as not found."""
    options = [(SYSTEM_DEFAULT, "")] + [(name, name) for name in names]
    if chosen and chosen not in names:
        options.append((f"{chosen} (not found)", chosen))
    return options
