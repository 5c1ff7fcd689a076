"""What a finished or running 1:1 call shows: the call-log line in the conversation and the
statistics read model the UI reads (pure functions of the core's call info and the media
session's statistics; used by :mod:`messenger_tui.app.calls`)."""

from __future__ import annotations

from messenger_tui.app.models import CallStats
from messenger_tui.core.calls.states import CallInfo, EndReason
from messenger_tui.media.stats import MediaStats


def format_duration(ms: int) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a call's talk time."""
    seconds = max(0, ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def call_log_text(info: CallInfo) -> str:
    """The conversation line for a finished call."""
    direction = "Outgoing call" if info.outgoing else "Incoming call"
    duration = info.duration_ms
    reason = info.end_reason
    if duration is not None:
        text = f"{direction}, {format_duration(duration)}"
        if reason is EndReason.CONNECTION_LOST:
            text += " (connection lost)"
        elif reason is EndReason.FAILED:
            text += " (failed)"
        return text
    if info.outgoing:
        return {
            EndReason.DECLINED: "Outgoing call, declined",
            EndReason.BUSY: "Outgoing call, busy",
            EndReason.NO_ANSWER: "Outgoing call, no answer",
            EndReason.HUNG_UP: "Outgoing call, cancelled",
            EndReason.FAILED: "Outgoing call, failed to connect",
            EndReason.CONNECTION_LOST: "Outgoing call, connection lost",
        }.get(reason or EndReason.FAILED, "Outgoing call")
    if info.missed:
        return "Missed call"
    if reason is EndReason.DECLINED:
        return "Declined call"
    return {
        EndReason.FAILED: "Incoming call, failed to connect",
        EndReason.CONNECTION_LOST: "Incoming call, connection lost",
    }.get(reason or EndReason.FAILED, "Incoming call")


def call_stats(stats: MediaStats) -> CallStats:
    """Copy a media session's statistics into the plain model the UI reads."""
    h = stats.history
    return CallStats(
        rtt_ms=stats.rtt_ms,
        jitter_ms=stats.jitter_ms,
        loss_percent=stats.loss_percent,
        peer_loss_percent=stats.peer_loss_percent,
        late_frames=stats.late_frames,
        buffer_delay_ms=stats.jb_delay_ms,
        buffer_target_ms=stats.jb_target_ms,
        send_kbps=stats.send_kbps,
        receive_kbps=stats.receive_kbps,
        mic_level=stats.mic_level,
        remote_level=stats.remote_level,
        frames_sent=stats.frames_sent,
        frames_received=stats.frames_received,
        dropped_frames=stats.auth_failed + stats.replayed + stats.malformed,
        concealed_frames=stats.concealed_redundancy + stats.concealed_fec + stats.concealed_plc,
        capturing=stats.capturing,
        audio_problem=stats.audio_problem,
        sending=stats.sending,
        peer_receiving=stats.peer_receiving,
        peer_playing=stats.peer_playing,
        rtt_history=tuple(v for v in h.rtt_ms if v is not None),
        jitter_history=h.jitter_ms,
        loss_history=h.loss_percent,
        delay_history=h.jb_delay_ms,
        bitrate_history=tuple(a + b for a, b in zip(h.send_kbps, h.receive_kbps)),
    )
