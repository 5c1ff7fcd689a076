"""Relay URLs: ``ws://host:port/path`` or ``wss://host:port/path[#sha256=<fingerprint>]``.

A self-signed relay is trusted by pinning the SHA-256 fingerprint of its certificate (DER) in
the URL fragment: 64 hex digits, any case, optionally colon-separated, for example
``wss://relay.example:8443/#sha256=AB:CD:...``. Without a pin, ``wss://`` checks the
certificate against the system trust store and the host name.

Several nodes of one deployment: a comma-separated list (``ws://a:8765,ws://b:8765``) is the
profile's list of relay URLs; the client uses one at a time and fails over to the next
(:func:`parse_relay_urls`; docs/user-guide.md).
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

from messenger_tui.transport.errors import BadRelayUrl, format_fingerprint

__all__ = ["MAX_RELAY_URLS", "RelayEndpoint", "parse_relay_url", "parse_relay_urls"]

#: Longest relay URL accepted (a host of 253, a port, a path and a pin fit easily).
MAX_URL_LEN = 2048
#: Most relay URLs one profile may list (nodes of one deployment).
MAX_RELAY_URLS = 16
#: Longest host name (RFC 1035: 253 characters in text form) and label (63).
MAX_HOST_LEN = 253
MAX_LABEL_LEN = 63

_PIN_RE = re.compile(r"^sha256=([0-9a-f:]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class RelayEndpoint:
    """Where and how to connect: pass ``connect_url`` to the websocket client."""

    connect_url: str  # the URL without its fragment: what the websocket client opens
    tls: bool  # wss://
    pin_sha256: bytes | None  # expected SHA-256 of the certificate DER, if pinned
    display: str  # safe to show the user and to log
    host: str = ""
    port: int = 0


def split_relay_urls(text: str) -> list[str]:
    """The URLs of a comma-separated list, stripped (one URL: a list of one)."""
    if not isinstance(text, str):
        raise BadRelayUrl(f"relay URL must be text, got {type(text).__name__}")
    return [part.strip() for part in text.split(",")]


def parse_relay_urls(text: str) -> list[RelayEndpoint]:
    """Validate a comma-separated list of relay URLs of one deployment (or one URL).

    Raises :class:`BadRelayUrl` naming the faulty entry: an empty entry, a duplicate, more
    than :data:`MAX_RELAY_URLS`, or anything :func:`parse_relay_url` refuses."""
    parts = split_relay_urls(text)
    if len(parts) > MAX_RELAY_URLS:
        raise BadRelayUrl(
            f"{len(parts)} relay URLs listed; at most {MAX_RELAY_URLS} nodes of one deployment"
        )
    endpoints: list[RelayEndpoint] = []
    for number, part in enumerate(parts, 1):
        if not part and len(parts) > 1:
            raise BadRelayUrl(f"relay URL number {number} of the list is empty (a stray comma?)")
        endpoint = parse_relay_url(part)
        if any(e.connect_url == endpoint.connect_url for e in endpoints):
            raise BadRelayUrl(f"relay URL {part!r} is listed twice")
        endpoints.append(endpoint)
    return endpoints


def parse_relay_url(url: str) -> RelayEndpoint:
    """Validate a relay URL and split off its certificate pin.

    Raises :class:`BadRelayUrl` with a message fit for the user; show it and ask again.
    """
    if not isinstance(url, str):
        raise BadRelayUrl(f"relay URL must be text, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise BadRelayUrl("relay URL is empty; expected ws://host:port or wss://host:port")
    if len(text) > MAX_URL_LEN:
        raise BadRelayUrl(
            f"relay URL is {len(text):,} characters long; at most {MAX_URL_LEN:,} are accepted"
        )
    if any(c.isspace() for c in text):
        raise BadRelayUrl(f"relay URL {text!r} contains white space")
    control = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf")), None)
    if control is not None:
        raise BadRelayUrl(
            f"relay URL {text!r} contains the control or invisible character "
            f"U+{ord(control):04X}; remove it"
        )
    if "://" not in text:
        raise BadRelayUrl(f"relay URL {text!r} has no scheme; write ws://{text} or wss://{text}")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:
        raise BadRelayUrl(f"relay URL {text!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        hint = ""
        if scheme in ("http", "https"):
            hint = f"; did you mean {'wss' if scheme == 'https' else 'ws'}://?"
        raise BadRelayUrl(
            f"relay URL {text!r} must start with ws:// or wss://, not {parts.scheme}://{hint}"
        )
    if parts.username is not None or parts.password is not None:
        raise BadRelayUrl(
            f"relay URL for host {parts.hostname!r} contains a user name or password; "
            "relays authenticate with your identity key, remove the credentials"
        )
    host = parts.hostname
    if not host:
        raise BadRelayUrl(f"relay URL {text!r} has no host name")
    if len(host) > MAX_HOST_LEN:
        raise BadRelayUrl(
            f"relay URL host name is {len(host):,} characters long; a DNS name has at most "
            f"{MAX_HOST_LEN} (RFC 1035)"
        )
    if any(len(label) > MAX_LABEL_LEN for label in host.split(".")):
        raise BadRelayUrl(
            f"relay URL host name {host[:80]!r} has a label longer than {MAX_LABEL_LEN} "
            "characters (RFC 1035)"
        )
    try:
        port = parts.port
    except ValueError:
        raise BadRelayUrl(
            f"relay URL {text!r} has an invalid port; use a number from 1 to 65535"
        ) from None
    if port == 0:
        raise BadRelayUrl(f"relay URL {text!r} has port 0; use a number from 1 to 65535")
    tls = scheme == "wss"
    pin = _parse_pin(parts.fragment, text)
    if pin is not None and not tls:
        raise BadRelayUrl(
            f"relay URL {text!r} pins a certificate but uses ws:// (no TLS); use wss://"
        )
    netloc = parts.netloc  # keeps IPv6 brackets and an explicit port as written
    path = parts.path or "/"
    connect_url = urllib.parse.urlunsplit((scheme, netloc, path, parts.query, ""))
    effective_port = port if port is not None else (443 if tls else 80)
    display = urllib.parse.urlunsplit((scheme, netloc.lower(), parts.path, parts.query, ""))
    if pin is not None:
        display += f" (pinned sha256 {format_fingerprint(pin)[:23]}…)"
    return RelayEndpoint(
        connect_url=connect_url,
        tls=tls,
        pin_sha256=pin,
        display=display,
        host=host,
        port=effective_port,
    )


def _parse_pin(fragment: str, text: str) -> bytes | None:
    if not fragment:
        return None
    match = _PIN_RE.match(fragment.strip())
    if match is None:
        raise BadRelayUrl(
            f"relay URL fragment {'#' + fragment!r} is not a certificate pin; "
            "expected #sha256=<64 hex digits>"
        )
    digits = match.group(1).replace(":", "")
    if len(digits) != 64:
        raise BadRelayUrl(
            f"certificate pin in relay URL has {len(digits)} hex digits; a SHA-256 "
            "fingerprint has 64"
        )
    return bytes.fromhex(digits)
