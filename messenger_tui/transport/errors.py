"""Typed errors of the relay transport. Each message says what went wrong and what to do.

Every error derives from :class:`TransportError`, so the app can catch the whole family and
show ``str(exc)`` to the user; none of the messages contain keys or message bodies.
"""

from __future__ import annotations

__all__ = [
    "BadRelayUrl",
    "NotConnected",
    "PinMismatch",
    "RelayAuthFailed",
    "RelayProtocolError",
    "RelayRequestError",
    "RelayUnreachable",
    "RequestTimeout",
    "TlsError",
    "TransportError",
    "format_fingerprint",
]


def format_fingerprint(fingerprint: bytes) -> str:
    """Render a certificate SHA-256 fingerprint as colon-separated upper-case hex."""
    return ":".join(f"{b:02X}" for b in fingerprint)


class TransportError(Exception):
    """Base of every error raised by messenger_tui.transport."""


class BadRelayUrl(TransportError, ValueError):
    """A relay URL that cannot be used. Ask the user for a corrected URL."""


class RelayUnreachable(TransportError):
    """No connection could be opened: refused, DNS failure, network down, or timeout.

    Retry later (``RelayClient.run`` does so with backoff)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"cannot reach relay {url}: {cause}")
        self.url = url
        self.cause = cause


class RelayProtocolError(TransportError):
    """The peer answered, but not as a relay of this protocol version would.

    Check the URL points at a messenger-tui relay and that client and relay are up to date."""


class RelayAuthFailed(TransportError):
    """The relay refused the authentication (bad signature, stale clock, banned identity).

    Retrying the same way rarely helps: check the system clock and the identity key."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TlsError(TransportError):
    """The TLS handshake failed, typically because the relay's certificate is not trusted.

    For a self-signed relay, add its certificate fingerprint to the URL as ``#sha256=<hex>``
    after checking it with the relay's operator."""


class PinMismatch(TransportError):
    """The relay's certificate does not match the pinned fingerprint.

    Nothing was sent to the relay. Either the relay changed its certificate (ask its
    operator for the new fingerprint) or someone intercepts the connection."""

    def __init__(self, url: str, expected: bytes, actual: bytes | None) -> None:
        actual_text = format_fingerprint(actual) if actual is not None else "no certificate"
        super().__init__(
            f"certificate of relay {url} does not match the pinned fingerprint: "
            f"expected sha256 {format_fingerprint(expected)}, got {actual_text}"
        )
        self.url = url
        self.expected = expected
        self.actual = actual


class NotConnected(TransportError):
    """There is no authenticated connection, or it dropped before the answer arrived.

    Keep the request (e.g. the envelope in the outbox) and retry after reconnecting; sends
    are idempotent by message id."""


class RelayRequestError(TransportError):
    """The relay answered a request with an ``Error`` frame (codes in ``wire.ErrorCode``)."""

    #: Codes after which the same request may succeed later.
    RETRYABLE = frozenset({"rate_limited", "internal", "mailbox_full"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"relay refused the request ({code}): {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """True when retrying the same request later may succeed."""
        return self.code in self.RETRYABLE


class RequestTimeout(TransportError):
    """The relay did not answer a request in time. The request may still take effect."""
