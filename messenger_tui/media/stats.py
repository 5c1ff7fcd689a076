"""What a call's media session reports to the UI: live statistics, health flags, histories.

:class:`MediaStats` is a frozen snapshot, taken on the event loop with
:meth:`MediaSession.stats() <messenger_tui.media.session.MediaSession.stats>` (cheap: the UI can
poll it a few times a second). Rates, loss and delays are refreshed once a second, when the
session sends its receiver report; counters and levels are live.

The health flags answer "why can't they hear me?" one leg at a time::

    capturing  ->  sending  ->  peer_receiving  ->  peer_playing
    (our mic)      (carrier      (the peer's report    (the peer's report
                    accepts)      says our audio        says its speaker
                                  arrives)              plays it)
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Samples kept in each history (one per second: the last minute).
HISTORY_LEN = 60


@dataclass(frozen=True, slots=True)
class MediaHistory:
    """The last :data:`HISTORY_LEN` per-second samples, oldest first, for sparklines.

    ``rtt_ms`` holds ``None`` for seconds without a round-trip measurement."""

    rtt_ms: tuple[float | None, ...] = ()
    jitter_ms: tuple[float, ...] = ()
    loss_percent: tuple[float, ...] = ()
    jb_delay_ms: tuple[float, ...] = ()
    send_kbps: tuple[float, ...] = ()
    receive_kbps: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MediaStats:
    """One snapshot of a call's media. Times in ms, rates in kb/s, levels 0..1 (RMS of the last
    frame, :func:`messenger_tui.media.levels.frame_level`)."""

    #: Round-trip time from the last report's echo; ``None`` until one came back.
    rtt_ms: float | None = None
    #: RFC 3550 interarrival jitter of the peer's audio (ours receiving).
    jitter_ms: float = 0.0
    #: Loss of the peer's audio over the last report interval (ours receiving).
    loss_percent: float = 0.0
    #: Loss of our audio as the peer last reported it (``None`` before its first report).
    peer_loss_percent: float | None = None
    #: Jitter of our audio as the peer measures it.
    peer_jitter_ms: float | None = None
    #: Frames from the peer that arrived after their slot was played or concealed.
    late_frames: int = 0
    jb_delay_ms: float = 0.0
    jb_target_ms: float = 0.0
    #: Sealed audio bytes per second, ours sending and receiving (frame + header + tag).
    send_kbps: float = 0.0
    receive_kbps: float = 0.0
    mic_level: float = 0.0
    remote_level: float = 0.0
    #: Audio frames the carrier accepted / refused; authentic audio frames received.
    frames_sent: int = 0
    frames_send_failed: int = 0
    frames_received: int = 0
    reports_sent: int = 0
    reports_received: int = 0
    #: Frames dropped by the opener: failed authentication (tampered, wrong key, wrong
    #: direction), replayed or older than the window, malformed.
    auth_failed: int = 0
    replayed: int = 0
    malformed: int = 0
    #: Missing frames filled from the next packet's redundant copy, its FEC, or by PLC.
    concealed_redundancy: int = 0
    concealed_fec: int = 0
    concealed_plc: int = 0
    #: Frames the jitter buffer skipped (delay too high) or inserted (delay too low).
    jb_dropped: int = 0
    jb_stretched: int = 0
    #: The packet-loss hint the Opus encoder currently uses (follows the peer's reports).
    encoder_loss_percent: int = 0
    muted: bool = False
    #: An authentic frame from the peer has arrived.
    connected: bool = False
    # health of our leg, in order
    capturing: bool = False
    sending: bool = False
    peer_receiving: bool = False
    peer_playing: bool = False
    #: The peer's report says its microphone is muted.
    peer_muted: bool = False
    #: Why our microphone or speaker stopped mid-call (a device that went away), if it did:
    #: the reason behind a "capturing ✗".
    audio_problem: str | None = None
    history: MediaHistory = field(default_factory=MediaHistory)

    @property
    def health(self) -> tuple[tuple[str, bool], ...]:
        """The leg's health line in order: (label, ok) for capturing, sending, peer
        receiving, peer playing."""
        return (
            ("capturing", self.capturing),
            ("sending", self.sending),
            ("peer receiving", self.peer_receiving),
            ("peer playing", self.peer_playing),
        )

    @property
    def first_broken(self) -> str | None:
        """The first link of the health line that is down (the answer to "why can't they
        hear me"), or ``None`` when all are up."""
        for label, ok in self.health:
            if not ok:
                return label
        return None
