"""Effects: what the signalling machine asks its caller to do, as plain objects.

Every machine method returns a list of these, in the order they should be carried out. The
machine never does I/O itself; the app layer maps each effect to an action:

- :class:`SendSignal`: encode the message (``messages.encode_call_message``), seal it in the
  peer's ratchet session and send it as an ephemeral ``signal`` frame.
- :class:`StartMedia` / :class:`StopMedia`: open / close the call's media session (join the
  relay's media route with ``keys.join_token``, seal with ``keys.send_key``...). Report the
  outcome back with ``media_connected`` / ``media_failed`` / ``media_lost``.
- :class:`StateChanged`: update the UI (ring on ``INCOMING_RINGING``, show the call pane...).
- :class:`PeerRinging`: the caller's UI may switch from "calling" to "ringing".
- :class:`CallEnded`: write the call log entry (missed, declined, duration...).
- :class:`BusyRejected`: a call arrived while we were busy and was answered ``busy``; log it as
  missed if you like (a "call waiting" notice).
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger_tui.core.calls.media_keys import CallRole, MediaKeys
from messenger_tui.core.calls.messages import CallMessage
from messenger_tui.core.calls.states import CallInfo, CallState


@dataclass(frozen=True, slots=True)
class SendSignal:
    peer: bytes
    message: CallMessage


@dataclass(frozen=True, slots=True)
class StartMedia:
    call_id: bytes
    peer: bytes
    role: CallRole
    keys: MediaKeys


@dataclass(frozen=True, slots=True)
class StopMedia:
    call_id: bytes


@dataclass(frozen=True, slots=True)
class StateChanged:
    previous: CallState
    state: CallState
    call: CallInfo


@dataclass(frozen=True, slots=True)
class PeerRinging:
    call: CallInfo


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: CallInfo


@dataclass(frozen=True, slots=True)
class BusyRejected:
    peer: bytes
    call_id: bytes
    created_ms: int


CallEffect = (
    SendSignal | StartMedia | StopMedia | StateChanged | PeerRinging | CallEnded | BusyRejected
)
