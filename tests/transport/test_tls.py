"""TLS against a self-signed certificate: pinning, pin mismatch before any Auth, and the
error for an untrusted certificate without a pin."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator

import pytest

from messenger_tui.transport import (
    PinMismatch,
    RelayUnreachable,
    TlsError,
    certificate_fingerprint,
    fetch_certificate_fingerprint,
)
from messenger_tui.transport.errors import format_fingerprint
from tests.helpers.certs import CertFiles

from .conftest import MakeClient, StubRelay


@pytest.fixture
async def tls_relay(self_signed: CertFiles) -> AsyncIterator[StubRelay]:
    stub = StubRelay()
    await stub.start(ssl_context=self_signed.server_context())
    yield stub
    await stub.stop()


def pinned_url(relay: StubRelay, fingerprint: bytes, host: str = "127.0.0.1") -> str:
    return f"wss://{host}:{relay.port}/#sha256={fingerprint.hex()}"


async def test_pinned_fingerprint_connects(
    tls_relay: StubRelay, self_signed: CertFiles, make_client: MakeClient
) -> None:
    fingerprint = hashlib.sha256(self_signed.der).digest()
    # "localhost" is not checked against anything: the pin alone decides
    client, _ = make_client(pinned_url(tls_relay, fingerprint, host="localhost"))
    auth = await client.connect_once()
    assert client.connected and auth.identity == tls_relay.auths[0].identity


async def test_pin_in_colon_form_connects(
    tls_relay: StubRelay, self_signed: CertFiles, make_client: MakeClient
) -> None:
    pin = format_fingerprint(certificate_fingerprint(self_signed.der))
    client, _ = make_client(f"wss://127.0.0.1:{tls_relay.port}/#SHA256={pin}")
    await client.connect_once()
    assert client.connected


async def test_wrong_pin_fails_before_anything_is_sent(
    tls_relay: StubRelay, self_signed: CertFiles, make_client: MakeClient
) -> None:
    wrong = bytes(32)
    client, _ = make_client(pinned_url(tls_relay, wrong))
    with pytest.raises(PinMismatch) as info:
        await client.connect_once()
    actual = certificate_fingerprint(self_signed.der)
    assert info.value.expected == wrong and info.value.actual == actual
    text = str(info.value)
    assert format_fingerprint(wrong) in text and format_fingerprint(actual) in text
    assert tls_relay.handshakes == 0  # not even the websocket upgrade reached the relay
    assert tls_relay.auths == []
    assert not client.connected


async def test_unpinned_self_signed_is_a_tls_error(
    tls_relay: StubRelay, make_client: MakeClient
) -> None:
    client, _ = make_client(f"wss://127.0.0.1:{tls_relay.port}/")
    with pytest.raises(TlsError) as info:
        await client.connect_once()
    assert "not trusted" in str(info.value) and "#sha256=" in str(info.value)
    assert tls_relay.auths == []


async def test_trusted_via_custom_ca_context(
    tls_relay: StubRelay, self_signed: CertFiles, make_client: MakeClient
) -> None:
    ctx = ssl.create_default_context(cafile=str(self_signed.cert))
    client, _ = make_client(f"wss://localhost:{tls_relay.port}/", ssl_context=ctx)
    await client.connect_once()
    assert client.connected


async def test_hostname_is_checked_without_a_pin(
    other_name_cert: CertFiles, make_client: MakeClient
) -> None:
    relay = StubRelay()
    await relay.start(ssl_context=other_name_cert.server_context())
    try:
        # the CA is trusted, but the certificate names relay.example, not 127.0.0.1
        ctx = ssl.create_default_context(cafile=str(other_name_cert.cert))
        client, _ = make_client(f"wss://127.0.0.1:{relay.port}/", ssl_context=ctx)
        with pytest.raises(TlsError, match="not trusted"):
            await client.connect_once()
        assert relay.auths == []
    finally:
        await relay.stop()


async def test_tls_client_against_plain_server(relay: StubRelay, make_client: MakeClient) -> None:
    client, _ = make_client(f"wss://127.0.0.1:{relay.port}/#sha256={'00' * 32}")
    with pytest.raises((TlsError, RelayUnreachable)) as info:
        await client.connect_once()
    assert "TLS" in str(info.value) or "ws://" in str(info.value)


async def test_fetch_certificate_fingerprint(tls_relay: StubRelay, self_signed: CertFiles) -> None:
    fingerprint = await fetch_certificate_fingerprint(f"wss://127.0.0.1:{tls_relay.port}/")
    assert fingerprint == hashlib.sha256(self_signed.der).digest()
    assert tls_relay.handshakes == 0
