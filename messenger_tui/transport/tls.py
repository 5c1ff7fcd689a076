"""TLS contexts and certificate pinning for relay connections.

Unpinned ``wss://`` uses the system trust store with host name checks. A pinned relay
(``#sha256=`` in the URL) is trusted by the SHA-256 of its certificate alone: the chain and the
host name are not checked, and the fingerprint is compared before anything is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl

from messenger_tui.transport.errors import RelayUnreachable, TlsError
from messenger_tui.transport.urls import parse_relay_url

__all__ = [
    "certificate_fingerprint",
    "default_ssl_context",
    "fetch_certificate_fingerprint",
    "pinned_ssl_context",
]


def certificate_fingerprint(der: bytes) -> bytes:
    """SHA-256 of a DER certificate: the value pinned with ``#sha256=`` in a relay URL."""
    return hashlib.sha256(der).digest()


def default_ssl_context() -> ssl.SSLContext:
    """Context for unpinned relays: system trust store, host name checked."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def pinned_ssl_context() -> ssl.SSLContext:
    """Context for pinned relays. It verifies nothing by itself: the caller MUST compare
    :func:`certificate_fingerprint` of the peer certificate with the pin before sending."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def fetch_certificate_fingerprint(url: str, timeout: float = 5.0) -> bytes:
    """Fetch the SHA-256 fingerprint of the certificate a ``wss://`` relay presents.

    Nothing is verified and nothing is sent beyond the TLS handshake. Show the result to the
    user to compare with the relay operator's fingerprint before pinning it; never pin it
    silently. Raises :class:`BadRelayUrl`, :class:`RelayUnreachable` or :class:`TlsError`.
    """
    endpoint = parse_relay_url(url)
    if not endpoint.tls:
        raise TlsError(f"relay {endpoint.display} does not use TLS; there is no certificate")
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=pinned_ssl_context(),
                server_hostname=endpoint.host,
            )
    except TimeoutError:
        raise RelayUnreachable(endpoint.display, f"timed out after {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise TlsError(f"TLS handshake with relay {endpoint.display} failed: {exc}") from None
    except OSError as exc:
        raise RelayUnreachable(endpoint.display, exc.strerror or str(exc)) from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
    if not der:
        raise TlsError(f"relay {endpoint.display} presented no certificate")
    return certificate_fingerprint(der)
