"""The main screen's keys. Every default key must reach the app from a real terminal:
tests/ui/test_key_reach.py feeds the sequences xterm and tmux send for each binding through
Textual's parser (Alt+B, for one, arrives as Ctrl+Left). Priority bindings work whichever
widget has the focus (the composer would otherwise type the letter of an Alt key, and the
conversation list would start its filter)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

from messenger_tui.ui.bindings import focus_bindings

MAIN_BINDINGS: list[BindingType] = [
    *focus_bindings(),
    Binding("ctrl+n", "add_contact", "Add", id="contacts.add",
            tooltip="Add a contact by pasting their address"),
    Binding("ctrl+g", "new_group", "New group", show=False, priority=True, id="groups.create",
            tooltip="Create a group: a name and the contacts to add"),
    Binding("f2", "safety_number", "Verify", id="contact.safety_number",
            tooltip="Show the safety number of the open conversation and verify the "
                    "contact (or accept their changed key)"),
    Binding("f3", "own_address", "Address", id="contacts.own_address",
            tooltip="Show your address with a QR code, to share it"),
    Binding("ctrl+f", "search", "Search", show=False, priority=True, id="search.open",
            tooltip="Search messages: in the open conversation (Ctrl+T in the search: "
                    "in all of them)"),
    Binding("alt+r", "rename_contact", "Rename", show=False, priority=True,
            id="contact.rename", tooltip="Rename the contact of the open conversation"),
    # Not Alt+B: terminals send it as ESC b, which Textual reads as Ctrl+Left (and Alt+F
    # as Ctrl+Right); tests/ui/test_key_reach.py checks every key arrives as bound.
    Binding("alt+x", "toggle_block", "Block", show=False, priority=True,
            id="contact.block",
            tooltip="Block or unblock the contact of the open conversation (a blocked "
                    "contact's messages and typing notices are dropped unseen)"),
    Binding("alt+a", "accept_request", "Accept", show=False, priority=True,
            id="contact.accept",
            tooltip="Accept the open message request: its sender becomes a contact (read "
                    "receipts go to them)"),
    Binding("alt+d", "delete_contact", "Delete", show=False, priority=True,
            id="contact.delete",
            tooltip="Delete the contact of the open conversation with the conversation "
                    "(asks first)"),
    Binding("f4", "talk", "Talk", id="call.talk", priority=True,
            tooltip="Talk in a call: hold (hold-to-talk) or press to open and close the "
                    "microphone (toggle); see Settings, Calls"),
    Binding("f5", "call", "Call", id="call.start",
            tooltip="Call the contact of the open conversation (voice, end-to-end "
                    "encrypted); calling Echo is a sound test"),
    # priority: the composer (a TextArea) binds F6 and F7 too (select line / all)
    Binding("f6", "mute", "Mute", id="call.mute", priority=True,
            tooltip="Mute or unmute your microphone in the call"),
    Binding("f7", "hang_up", "Hang up", id="call.hang_up", priority=True,
            tooltip="End the call (or cancel it while it rings)"),
    Binding("escape", "focus_conversations", "Conversations", show=False,
            id="focus.conversations", tooltip="Move the focus to the conversation list"),
    Binding("alt+up", "cycle(-1)", "Previous chat", show=False,
            id="conversations.previous", tooltip="Open the conversation above"),
    Binding("alt+down", "cycle(1)", "Next chat", show=False,
            id="conversations.next", tooltip="Open the conversation below"),
    Binding("pageup", "scroll_messages(-1)", "Older", show=False, priority=True,
            id="messages.page_up", tooltip="Scroll the conversation one page up (older)"),
    Binding("pagedown", "scroll_messages(1)", "Newer", show=False, priority=True,
            id="messages.page_down",
            tooltip="Scroll the conversation one page down (newer)"),
    # priority: the composer (a TextArea) would otherwise take these keys
    Binding("ctrl+o", "attach_file", "Attach", show=False, priority=True, id="file.attach",
            tooltip="Send a file to the open conversation (a path prompt with completion)"),
    Binding("alt+c", "cancel_transfer", "Cancel file", show=False, priority=True,
            id="file.cancel",
            tooltip="Cancel the newest file transfer of the open conversation"),
    Binding("ctrl+r", "record_voice", "Record", show=False, priority=True,
            id="voice.record",
            tooltip="Record a voice message for the open conversation (Enter sends, Esc "
                    "cancels; at most 5 minutes; not during a call)"),
    Binding("alt+p", "play_voice", "Play", show=False, priority=True, id="voice.play",
            tooltip="Play or pause the voice message on screen (the newest one shown)"),
    Binding("alt+left", "seek_voice(False)", "Back 5 s", show=False, priority=True,
            id="voice.back", tooltip="Jump 5 seconds back in the voice message playing"),
    Binding("alt+right", "seek_voice(True)", "Ahead 5 s", show=False, priority=True,
            id="voice.ahead", tooltip="Jump 5 seconds ahead in the voice message playing"),
    Binding("alt+s", "voice_speed", "Speed", show=False, priority=True, id="voice.speed",
            tooltip="Voice message speed: 1x, 1.5x, 2x (faster is also higher)"),
    Binding("alt+o", "open_file", "Open file", show=False, priority=True, id="file.open",
            tooltip="Open the newest received file of the open conversation with the "
                    "desktop's program (xdg-open); files never open by themselves"),
    Binding("f9", "settings", "Settings", id="app.settings",
            tooltip="Settings: notifications, receipts, typing, theme, call devices, relay, "
                    "passphrase"),
    # priority: else the composer types "m" and the list starts its filter
    Binding("alt+m", "toggle_mute", "Mute chat", show=False, priority=True,
            id="conversation.mute",
            tooltip="Mute or unmute the open conversation (no notices, bell or desktop "
                    "notifications; unread counts still update)"),
]  # fmt: skip
