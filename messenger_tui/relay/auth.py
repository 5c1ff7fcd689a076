"""Challenge-response authentication of a connection (sans-I/O).

The relay sends :func:`make_challenge` as the first frame; the client answers with
:class:`~messenger_tui.core.wire.Auth`, which :meth:`AuthChallenge.verify` checks. A challenge
is single use: after one verification attempt (successful or not) it refuses everything, so
the caller must close the connection after a failure and the client must reconnect for a
fresh nonce. Replaying a captured Auth on another connection fails because that connection's
nonce differs.
"""

from __future__ import annotations

import os

import nacl.exceptions
import nacl.signing

from messenger_tui.core import wire

NONCE_LEN = 32


class AuthRefused(Exception):
    """The Auth frame does not prove the claimed identity; ``str()`` says why (no secrets)."""


class AuthChallenge:
    """The nonce of one connection and the check of the single Auth answer to it."""

    def __init__(self, relay_key: bytes, now_ms: int, echo: bytes | None = None) -> None:
        self.relay_key = relay_key
        self.nonce = os.urandom(NONCE_LEN)
        self._used = False
        self.frame = wire.Challenge(
            version=wire.PROTOCOL_VERSION,
            relay_key=relay_key,
            nonce=self.nonce,
            time_ms=now_ms,
            echo=echo,
        )

    def verify(self, auth: wire.Auth, now_ms: int) -> bytes:
        """Return the authenticated identity, or raise :class:`AuthRefused`.

        Consumes the challenge: any later call raises :class:`AuthRefused`.
        """
        if self._used:
            raise AuthRefused("this challenge was already answered; reconnect for a new one")
        self._used = True
        if len(auth.identity) != wire.KEY_LEN:
            raise AuthRefused(f"identity must be a {wire.KEY_LEN}-byte Ed25519 public key")
        skew = auth.time_ms - now_ms
        if abs(skew) > wire.AUTH_MAX_SKEW_MS:
            raise AuthRefused(
                f"auth timestamp is {skew / 1000:+.0f} s from the relay clock "
                f"(limit {wire.AUTH_MAX_SKEW_MS // 1000} s): check the system clock"
            )
        if not 0 <= auth.time_ms < 2**64:
            raise AuthRefused("auth timestamp out of range")
        message = wire.auth_message(self.relay_key, self.nonce, auth.identity, auth.time_ms)
        try:
            nacl.signing.VerifyKey(auth.identity).verify(message, auth.signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
            raise AuthRefused("signature does not verify for this identity and nonce") from None
        return auth.identity
