"""Relay URL parsing: schemes, ports, certificate pins and the errors for bad input."""

from __future__ import annotations

import pytest

from messenger_tui.transport import BadRelayUrl, TransportError, parse_relay_url

PIN_HEX = "0123456789abcdef" * 4
PIN = bytes.fromhex(PIN_HEX)


def test_plain_ws() -> None:
    ep = parse_relay_url("ws://127.0.0.1:8765")
    assert ep.connect_url == "ws://127.0.0.1:8765/"
    assert ep.tls is False
    assert ep.pin_sha256 is None
    assert ep.host == "127.0.0.1" and ep.port == 8765
    assert ep.display == "ws://127.0.0.1:8765"


def test_wss_default_port_and_path_kept() -> None:
    ep = parse_relay_url("  WSS://Relay.Example.org/messenger?x=1  ")
    assert ep.connect_url == "wss://Relay.Example.org/messenger?x=1"
    assert ep.tls is True
    assert ep.port == 443
    assert ep.host == "relay.example.org"


def test_ipv6_host() -> None:
    ep = parse_relay_url("ws://[::1]:9000/")
    assert ep.host == "::1" and ep.port == 9000
    assert ep.connect_url == "ws://[::1]:9000/"


@pytest.mark.parametrize(
    "fragment",
    [
        f"sha256={PIN_HEX}",
        f"SHA256={PIN_HEX.upper()}",
        "sha256=" + ":".join(PIN_HEX[i : i + 2] for i in range(0, 64, 2)),
        "sha256=" + ":".join(PIN_HEX[i : i + 2] for i in range(0, 64, 2)).upper(),
    ],
)
def test_pin_forms(fragment: str) -> None:
    ep = parse_relay_url(f"wss://relay.example:8443/#{fragment}")
    assert ep.pin_sha256 == PIN
    assert ep.tls
    assert "#" not in ep.connect_url
    assert ep.connect_url == "wss://relay.example:8443/"
    assert "pinned" in ep.display and PIN_HEX not in ep.display.lower().replace(":", "")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("", "empty"),
        ("relay.example:8765", "no scheme"),
        ("http://relay.example", "did you mean ws://"),
        ("https://relay.example", "did you mean wss://"),
        ("ftp://relay.example", "must start with ws:// or wss://"),
        ("ws://", "no host"),
        ("ws://relay.example:99999", "invalid port"),
        ("ws://relay.example:abc", "invalid port"),
        ("ws://relay.example:0", "port 0"),
        ("ws://user:pw@relay.example", "user name or password"),
        ("ws://relay example", "white space"),
        (f"ws://relay.example/#sha256={PIN_HEX}", "use wss://"),
        ("wss://relay.example/#sha256=abcd", "has 4 hex digits"),
        (f"wss://relay.example/#sha256={PIN_HEX}00", "has 66 hex digits"),
        (f"wss://relay.example/#sha1={PIN_HEX}", "not a certificate pin"),
        ("wss://relay.example/#sha256=" + "zz" * 32, "not a certificate pin"),
        ("wss://relay.example/#pin", "not a certificate pin"),
    ],
)
def test_bad_urls(url: str, needle: str) -> None:
    with pytest.raises(BadRelayUrl) as info:
        parse_relay_url(url)
    assert needle in str(info.value)
    assert isinstance(info.value, TransportError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ws://relay\x00.example:1", "control or invisible character U+0000"),
        ("ws://relay.example:1/\x00", "U+0000"),
        ("ws://relay\x7f.example", "U+007F"),
        ("ws://relay\u200b.example", "U+200B"),  # zero-width space: looks like another host
        ("ws://relay\u202e.example", "U+202E"),  # right-to-left override
        ("ws://" + "a" * 70_000 + ":1", "at most 2,048 are accepted"),
        ("ws://" + "a." * 130 + "com", "at most 253 (RFC 1035)"),
        ("ws://" + "a" * 64 + ".example", "longer than 63"),
    ],
)
def test_control_characters_and_overlong_hosts_are_refused(url: str, needle: str) -> None:
    with pytest.raises(BadRelayUrl) as info:
        parse_relay_url(url)
    assert needle in str(info.value)
    assert len(str(info.value)) < 400  # the message never echoes a 70,000-character host


def test_longest_valid_host_is_accepted() -> None:
    host = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, labels of at most 63
    assert len(host) == 253
    assert parse_relay_url(f"ws://{host}:1").host == host


# ---------------------------------------------------------------- several nodes


def test_a_list_of_relay_urls_of_one_deployment() -> None:
    from messenger_tui.transport.urls import parse_relay_urls

    endpoints = parse_relay_urls("ws://10.0.0.1:8765, wss://node-2.example:443")
    assert [e.connect_url for e in endpoints] == [
        "ws://10.0.0.1:8765/",
        "wss://node-2.example:443/",
    ]
    assert [e.connect_url for e in parse_relay_urls("ws://h:1")] == ["ws://h:1/"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ws://h:1,,ws://h:2", "number 2 of the list is empty"),
        ("ws://h:1,", "number 2 of the list is empty"),
        ("ws://h:1,ws://h:1", "listed twice"),
        (",".join(f"ws://h:{i}" for i in range(1, 18)), "at most 16"),
        ("ws://h:1,http://h:2", "http"),
    ],
)
def test_a_bad_list_names_the_faulty_entry(text: str, message: str) -> None:
    from messenger_tui.transport.urls import parse_relay_urls

    with pytest.raises(BadRelayUrl, match=message):
        parse_relay_urls(text)
