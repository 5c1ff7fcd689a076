"""Client transport: an asyncio websocket connection to the relay.

Connects and authenticates (challenge-response with the identity key), verifies TLS or a
certificate pin, keeps the connection alive with pings, reconnects with exponential backoff
and full jitter, and correlates requests with their answers. The app layer uses
:class:`RelayClient`; see docs/protocol.md §6.
"""

from messenger_tui.transport.backoff import Backoff
from messenger_tui.transport.client import ConnectionState, RelayClient, StateChange
from messenger_tui.transport.errors import (
    BadRelayUrl,
    NotConnected,
    PinMismatch,
    RelayAuthFailed,
    RelayProtocolError,
    RelayRequestError,
    RelayUnreachable,
    RequestTimeout,
    TlsError,
    TransportError,
)
from messenger_tui.transport.tls import certificate_fingerprint, fetch_certificate_fingerprint
from messenger_tui.transport.urls import RelayEndpoint, parse_relay_url

__all__ = [
    "Backoff",
    "BadRelayUrl",
    "ConnectionState",
    "NotConnected",
    "PinMismatch",
    "RelayAuthFailed",
    "RelayClient",
    "RelayEndpoint",
    "RelayProtocolError",
    "RelayRequestError",
    "RelayUnreachable",
    "RequestTimeout",
    "StateChange",
    "TlsError",
    "TransportError",
    "certificate_fingerprint",
    "fetch_certificate_fingerprint",
    "parse_relay_url",
]
