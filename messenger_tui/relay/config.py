"""Relay configuration: one frozen dataclass, built by the CLI or by tests.

Build a :class:`RelayConfig` and hand it to :class:`messenger_tui.relay.server.RelayServer` or
:func:`messenger_tui.relay.server.run_relay`. Every limit has a production default; tests
shrink them to provoke the limits quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from messenger_tui.core.media_wire import MAX_MEDIA_FRAME
from messenger_tui.core.wire import KEY_LEN, MAX_ENVELOPE, MAX_FRAME
from messenger_tui.relay.blob_index import BlobConfig
from messenger_tui.relay.quotas import MailboxQuota
from messenger_tui.relay.store_url import parse_store_url

DAY_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate_per_s`` tokens refill per second, at most ``burst`` saved up."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate_per_s > 0 and burst >= 1")


@dataclass(frozen=True)
class RelayConfig:
    """Everything a relay needs to run. ``port=0`` picks a free port (read it back from
    :attr:`RelayServer.port`)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    #: Where mailboxes, prekeys and the shared state of several nodes live: "sqlite" (the
    #: data directory; one node) or a Redis URL (several nodes on one user base; see
    #: docs/operations.md). Parsed and validated by the relay command's ``--store``.
    store_url: str = "sqlite"
    #: Start on a Redis that could lose acknowledged envelopes in a crash (not AOF with
    #: appendfsync always): for tests and throwaway deployments only.
    accept_volatile_store: bool = False
    #: Envelopes older than this are purged and never delivered.
    ttl_seconds: int = 30 * DAY_SECONDS
    #: Largest envelope / signal body accepted (the wire contract's MAX_ENVELOPE).
    max_envelope: int = MAX_ENVELOPE
    #: Largest websocket message accepted; bigger ones close that connection with 1009.
    max_frame: int = MAX_FRAME
    #: Contact envelopes one mailbox may hold; more are refused with ``mailbox_full``.
    mailbox_limit: int = 100_000
    # ---- mailbox quotas: see docs/protocol.md, "Delivery access and mailbox quotas"
    #: Body bytes of contact envelopes one mailbox may hold.
    mailbox_bytes: int = 1024 * 1024 * 1024
    #: Message requests (envelopes without the recipient's delivery secret) one mailbox may
    #: hold in total, their body bytes, and how many may come from one sender.
    request_limit: int = 1_000
    request_bytes: int = 16 * 1024 * 1024
    request_per_sender: int = 20
    #: New identities (the relay's first sight of one) per source address (IPv6: per /64).
    new_identity_limit: RateLimit = field(default_factory=lambda: RateLimit(10 / 3600, 10))
    #: One-time prekeys handed out per (requester, target) pair and per target; a fetch over
    #: either budget gets the bundle without a one-time prekey.
    prekey_pair_limit: RateLimit = field(default_factory=lambda: RateLimit(1 / 600, 2))
    prekey_target_limit: RateLimit = field(default_factory=lambda: RateLimit(60 / 3600, 20))
    #: One-time prekeys held per identity; extra ones in a publish are dropped.
    max_one_time_prekeys: int = 200
    #: Identities one connection may watch with Subscribe.
    max_subscriptions: int = 1_000
    #: Unacknowledged deliveries in flight per connection.
    delivery_window: int = 512
    send_limit: RateLimit = field(default_factory=lambda: RateLimit(1_000.0, 5_000))
    #: Send slots per source address (IPv6: per /64), all its connections and identities
    #: together; a Send takes one slot per started 4 KiB of body. Over it the relay stops
    #: reading from the connection until its turn (TCP pushes back on the sender; nothing is
    #: refused): see relay/address_pacing.py. None: unpaced.
    address_send_limit: RateLimit | None = field(default_factory=lambda: RateLimit(200.0, 2_000))
    #: Authentication handshakes (new connections) per source address, paced the same way; a
    #: connection that would wait longer than 2 s is closed with 1013 (try again later).
    address_auth_limit: RateLimit | None = field(default_factory=lambda: RateLimit(5.0, 30))
    signal_limit: RateLimit = field(default_factory=lambda: RateLimit(1_000.0, 5_000))
    fetch_bundle_limit: RateLimit = field(default_factory=lambda: RateLimit(20.0, 200))
    #: Malformed frames tolerated on one connection before it is closed.
    max_malformed: int = 20
    #: Concurrent connections one source address (IPv6: one /64) may hold; more are refused
    #: with HTTP 429 (docs/threat-model.md). 0 = no cap (load tests from one address).
    max_connections_per_address: int = 64
    #: Seconds a connection may stay unauthenticated before it is closed.
    auth_timeout_s: float = 30.0
    #: Websocket keepalive: ping interval and pong deadline (seconds).
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    #: How often expired envelopes are purged (seconds).
    purge_interval_s: float = 600.0
    #: fsync the database on every commit (survives power loss, slower); without it a
    #: commit survives a killed relay process but not a machine crash.
    durable_fsync: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Identity key of the Echo contact, announced in every Challenge.
    echo_identity: bytes | None = None
    # ---- media route (calls): see docs/protocol.md, "Calls: media route"
    #: Seconds one leg of a call may stay connected without the other before it is closed.
    media_alone_timeout_s: float = 60.0
    #: Bytes waiting in a leg's transport buffer above which frames to it are dropped
    #: (4 KiB is about 0.25 s of both-way 149-byte frames): voice is dropped, never queued.
    media_write_limit: int = 4 * 1024
    #: Bytes waiting for a leg above which control frames are not written: an error reply is
    #: dropped, a frame the client must see (media_peer, media_joined) closes the leg.
    media_control_limit: int = 32 * 1024
    #: Kernel send buffer (SO_SNDBUF) requested for media connections, so a slow leg cannot
    #: hide seconds of voice in the socket; 0 keeps the OS default.
    media_socket_sndbuf: int = 16 * 1024
    #: Largest media frame forwarded; bigger ones are dropped and count as abuse.
    media_max_frame: int = MAX_MEDIA_FRAME
    #: Media frames per second one leg may send (a call sends 50); more are dropped.
    media_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(200.0, 400))
    #: The blob route (attachments): see docs/protocol.md, "Attachments: blob route".
    blob: BlobConfig = field(default_factory=BlobConfig)

    def __post_init__(self) -> None:
        parse_store_url(self.store_url)  # ValueError names the problem
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key (or neither)")
        if self.echo_identity is not None and len(self.echo_identity) != KEY_LEN:
            raise ValueError(f"echo_identity must be a {KEY_LEN}-byte Ed25519 public key")
        if not 0 < self.max_envelope <= MAX_ENVELOPE:
            raise ValueError(f"max_envelope must be in 1..{MAX_ENVELOPE}")
        if self.max_frame < self.max_envelope:
            raise ValueError("max_frame must be at least max_envelope")
        for name in (
            "ttl_seconds",
            "mailbox_limit",
            "delivery_window",
            "max_malformed",
            "mailbox_bytes",
            "request_limit",
            "request_bytes",
            "request_per_sender",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if (
            self.max_one_time_prekeys < 0
            or self.max_subscriptions < 0
            or self.max_connections_per_address < 0
        ):
            raise ValueError("bounds must not be negative")
        if self.media_alone_timeout_s <= 0:
            raise ValueError("media_alone_timeout_s must be positive")
        if not 0 < self.media_max_frame <= MAX_MEDIA_FRAME:
            raise ValueError(f"media_max_frame must be in 1..{MAX_MEDIA_FRAME}")
        if (
            self.media_write_limit < 0
            or self.media_socket_sndbuf < 0
            or self.media_control_limit < 0
        ):
            raise ValueError("media buffer sizes must not be negative")

    @property
    def tls(self) -> bool:
        """Whether the relay serves wss:// (TLS certificate and key configured)."""
        return self.tls_cert is not None

    @property
    def mailbox_quota(self) -> MailboxQuota:
        """The per-recipient quotas as the store applies them."""
        return MailboxQuota(
            contact_count=self.mailbox_limit,
            contact_bytes=self.mailbox_bytes,
            request_count=self.request_limit,
            request_bytes=self.request_bytes,
            request_per_sender=self.request_per_sender,
        )

    @property
    def ttl_ms(self) -> int:
        """The envelope time-to-live in milliseconds."""
        return self.ttl_seconds * 1000
