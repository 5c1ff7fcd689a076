"""Read models the facade hands out: plain, immutable, free of storage types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from messenger_tui.core.address import encode_address
from messenger_tui.core.message_states import MessageState

#: Message kinds a person sends: unread until seen, announced by toasts and notifications
#: (texts, files and voice messages; schema 009's index holds the same).
UNREAD_KINDS = frozenset({"text", "attachment", "voice"})

#: A contact's local id (the row id of its contact entry): what the facade is keyed by. It
#: survives renames and is never reused, while a display name may change or look like another
#: one; names are resolved to ids once, at the edge (the CLI's NAME arguments).
ContactId = NewType("ContactId", int)


@dataclass(frozen=True)
class Contact:
    id: ContactId
    name: str
    identity: bytes
    verified: bool
    key_changed: bool
    blocked: bool
    auto_added: bool
    #: No toast, bell or desktop notification for their messages (unread still counts).
    muted: bool = False

    @property
    def address(self) -> str:
        return encode_address(self.identity)


@dataclass(frozen=True)
class Message:
    id: int  # local row id, display order
    message_id: bytes
    contact_id: ContactId
    outgoing: bool
    kind: str  # text | notice | call (a call-log entry)
    text: str
    sent_at_ms: int
    received_at_ms: int | None
    state: MessageState
    #: Display position in the conversation (the sender's order; not the arrival order of
    #: ``id``). 0 when unknown: then ``id`` orders.
    pos: int = 0


@dataclass(frozen=True)
class CallView:
    """The current (or last) call, as the UI shows it. Times are local epoch milliseconds."""

    call_id: bytes
    peer: bytes
    contact: Contact | None
    #: idle | outgoing_ringing | incoming_ringing | connecting | active | ended
    state: str
    outgoing: bool
    started_ms: int
    active_ms: int | None
    ended_ms: int | None
    #: hung_up | declined | busy | no_answer | failed | connection_lost (once ended)
    end_reason: str | None
    peer_ringing: bool
    muted: bool
    #: The media route: none | connecting | joined | reconnecting | lost | closed
    link: str
    #: Why audio does not work (device missing, ...), in words; the call may still be up.
    problem: str | None = None
    #: The mic gate (hold-to-talk / toggle, see :meth:`CallManager.set_talking`) is open.
    #: Closed, the call sends encoded silence as when muted.
    talking: bool = True

    @property
    def live(self) -> bool:
        """Ringing, connecting or active: the call pane stays open."""
        return self.state in ("outgoing_ringing", "incoming_ringing", "connecting", "active")


@dataclass(frozen=True)
class CallStats:
    """Live statistics of the active call (plain numbers; the UI draws them)."""

    rtt_ms: float | None
    jitter_ms: float
    loss_percent: float
    peer_loss_percent: float | None
    late_frames: int
    buffer_delay_ms: float
    buffer_target_ms: float
    send_kbps: float
    receive_kbps: float
    mic_level: float
    remote_level: float
    frames_sent: int
    frames_received: int
    dropped_frames: int
    concealed_frames: int
    #: The per-leg health line: capturing → sending → peer receiving → peer playing.
    capturing: bool
    sending: bool
    peer_receiving: bool
    peer_playing: bool
    #: Why our microphone or speaker stopped mid-call, if it did (shown on the health line).
    audio_problem: str | None = None
    #: Recent history (one sample a second, oldest first) for sparklines.
    rtt_history: tuple[float, ...] = ()
    jitter_history: tuple[float, ...] = ()
    loss_history: tuple[float, ...] = ()
    delay_history: tuple[float, ...] = ()
    bitrate_history: tuple[float, ...] = ()


#: The talk modes of :attr:`Settings.talk_mode`.
TALK_MODES: tuple[str, ...] = ("open", "hold", "toggle")
#: How inline images show (ui/image_display.py): "auto" (the terminal's graphics protocol
#: when it has one, else half-blocks), "kitty", "sixel", "half-blocks", "off".
IMAGE_PREVIEW_MODES: tuple[str, ...] = ("auto", "kitty", "sixel", "half-blocks", "off")


@dataclass(frozen=True)
class Settings:
    """The profile's settings (the settings screen; stored in the profile database)."""

    #: In-app notices ("toasts") for messages outside the open conversation.
    toasts: bool = True
    #: The terminal bell for a new message while the terminal does not have the focus.
    bell: bool = True
    #: A desktop notification (OSC 777 / OSC 9, or notify-send) while unfocused.
    desktop: bool = False
    #: Desktop notifications say "New message", without sender or content.
    private: bool = False
    #: Tell contacts when their messages were read (the local read state is kept anyway).
    read_receipts: bool = True
    #: Send and show "typing…".
    typing: bool = True
    #: A Textual theme name ("" = the app's default).
    theme: str = ""
    relay_url: str = ""
    #: Whether the identity key file is sealed with a passphrase.
    passphrase_set: bool = False
    #: The call microphone and speaker, by PortAudio device name ("" = the system default).
    microphone: str = ""
    speaker: str = ""
    #: The Opus bitrate of the audio this client sends in a call (kb/s, 12-64); every frame
    #: is padded to the size this rate allows, so the rate also sets the call's bandwidth.
    call_bitrate_kbps: int = 24
    #: When the microphone is live in a call (one of :data:`TALK_MODES`): "open" (always,
    #: unless muted), "hold" (while the talk key is held; a toggle where the terminal never
    #: reports key releases), "toggle" (the talk key opens and closes it).
    talk_mode: str = "open"
    #: Where received files are saved ("" = ``~/Downloads/messenger-tui``).
    download_dir: str = ""
    #: Received files up to this size (KiB) download by themselves; larger ones on request.
    auto_download_kib: int = 10240
    #: Calls through a microphone and speaker remove the speaker's echo from what is sent
    #: (SpeexDSP; WAV files and headsets gain nothing and lose nothing by it).
    echo_cancellation: bool = True
    #: ... and suppress steady background noise and even out a quiet microphone's level.
    noise_suppression: bool = True
    #: How inline images show (one of :data:`IMAGE_PREVIEW_MODES`).
    image_preview: str = "auto"


@dataclass(frozen=True)
class AudioDevices:
    """The devices calls can use (the settings screen's choices), by PortAudio name.

    ``problem`` says why calls have no audio here (PortAudio missing, no device), and ``fix``
    how to get it; the lists are then empty or one-sided. Chat never depends on any of it."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    problem: str | None = None
    fix: str | None = None


@dataclass(frozen=True)
class TransferView:
    """One attachment transfer as the UI and the CLI show it (app/transfers.py)."""

    id: int
    #: The contact of a 1:1 transfer; None for a group's (``group_row``).
    contact_id: int | None
    #: up (sending) or down (receiving)
    direction: str
    #: encrypting | uploading | sending | new | offered | downloading | done | failed |
    #: cancelled (core/attachments/transfer_states.py)
    status: str
    name: str
    mime_type: str
    #: The file's size in bytes.
    size: int
    #: Bytes of the encrypted blob moved so far, of ``total``.
    done: int = 0
    total: int = 0
    #: Bytes per second over the last seconds, and the seconds left at that rate (None:
    #: not known yet).
    rate_bps: float = 0.0
    eta_s: float | None = None
    message_row: int | None = None
    #: The saved file (a finished download) or the source (an upload).
    path: str | None = None
    sha256: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    #: A voice message's bars (levels 0..7, media/voice_note.py), else None.
    waveform: tuple[int, ...] | None = None
    #: The group (local row id) of a group's transfer (app/group_files.py), else None.
    group_row: int | None = None
