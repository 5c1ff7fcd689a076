"""What a call is in: its state, why it ended, and the public snapshot the UI and call log read.

These are plain values with no secrets; :mod:`.signalling` produces them, effects carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from messenger_tui.core.calls.media_keys import CallRole


class CallState(Enum):
    """States of the signalling machine (see the table in :mod:`.signalling`)."""

    IDLE = "idle"
    OUTGOING_RINGING = "outgoing_ringing"
    INCOMING_RINGING = "incoming_ringing"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(Enum):
    """Why a call ended. The values are the strings a hangup message and the call log use."""

    HUNG_UP = "hung_up"
    DECLINED = "declined"
    BUSY = "busy"
    #: Nobody answered within the ring timeout (45 s).
    NO_ANSWER = "no_answer"
    #: Could not be set up: media did not connect in time, or the peer sent a bad key.
    FAILED = "failed"
    #: The media connection dropped during the call and did not come back in time.
    CONNECTION_LOST = "connection_lost"


class EventSource(Enum):
    """Where the event that ended a call came from (``CallInfo.ended_by``)."""

    LOCAL = "local"  # our user pressed a key
    PEER = "peer"  # a signalling message from the other side
    MEDIA = "media"  # the media transport reported connect, failure or loss
    TIMER = "timer"  # a deadline passed


@dataclass(frozen=True, slots=True)
class CallInfo:
    """A snapshot of one call. Times are local milliseconds as given to the machine, except
    ``created_ms``, which is the caller's clock (from the offer)."""

    call_id: bytes
    peer: bytes
    role: CallRole
    state: CallState
    created_ms: int
    #: When this side placed the call or received the offer.
    started_ms: int
    #: When the call was answered (callee: the user accepted; caller: the accept arrived).
    accepted_ms: int | None = None
    #: When media started flowing (the call timer starts here).
    active_ms: int | None = None
    ended_ms: int | None = None
    end_reason: EndReason | None = None
    ended_by: EventSource | None = None
    #: The caller learned that the callee's client is ringing.
    peer_ringing: bool = False

    @property
    def outgoing(self) -> bool:
        return self.role is CallRole.CALLER

    @property
    def missed(self) -> bool:
        """An incoming call that rang and ended without our user answering or declining it."""
        return (
            self.role is CallRole.CALLEE
            and self.state is CallState.ENDED
            and self.accepted_ms is None
            and self.ended_by is not EventSource.LOCAL
        )

    @property
    def duration_ms(self) -> int | None:
        """Talk time (active to ended), or ``None`` if the call never became active."""
        if self.active_ms is None or self.ended_ms is None:
            return None
        return self.ended_ms - self.active_ms
