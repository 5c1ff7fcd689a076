"""A small in-test relay speaking the real wire protocol, for the transport's unit tests.

It issues a challenge, verifies the Ed25519 signature with nacl, and answers Send, Ack,
FetchBundle, PublishPrekeys, Subscribe and Signal. Knobs let a test hold answers back, answer
with errors, or drop connections. The real relay is exercised in test_against_relay.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from messenger_tui.transport import Backoff, RelayClient, StateChange
from tests.helpers.certs import CertFiles, make_certificate


@dataclass
class Identity:
    key: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @property
    def public(self) -> bytes:
        return bytes(self.key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message).signature


@dataclass
class StubRelay:
    """Behaviour knobs are plain attributes; change them between or during tests."""

    relay_key: bytes = field(default_factory=lambda: os.urandom(32))
    version: int = wire.PROTOCOL_VERSION
    auth_mode: str = "ok"  # ok | reject | silent | wrong_identity
    answer_sends: bool = True  # False: hold Stored frames back
    send_error: str | None = None  # answer every Send with Error(code=...)
    answer_requests: bool = True
    reverse_requests: int = 0  # buffer this many requests and answer them in reverse order
    extra_after_auth: list[bytes] = field(default_factory=list)  # raw frames after AuthOk
    clock_ms: Callable[[], int] = lambda: int(__import__("time").time() * 1000)

    mailboxes: dict[bytes, list[wire.Deliver]] = field(default_factory=dict)
    bundles: dict[bytes, wire.Bundle] = field(default_factory=dict)
    received: list[wire.ClientFrame] = field(default_factory=list)
    handshakes: int = 0  # websocket connections whose handler ran
    auths: list[wire.Auth] = field(default_factory=list)
    connections: dict[bytes, ServerConnection] = field(default_factory=dict)
    subscriptions: dict[bytes, list[bytes]] = field(default_factory=dict)
    stored: dict[bytes, wire.Send] = field(default_factory=dict)
    server: Server | None = None
    port: int = 0
    _buffered: list[tuple[ServerConnection, wire.ClientFrame]] = field(default_factory=list)

    async def start(self, ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.server = await serve(
            self.handler,
            "127.0.0.1",
            port,
            compression=None,
            max_size=wire.MAX_FRAME,
            ssl=ssl_context,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def drop_all(self) -> None:
        """Cut every connection without a close frame (like a crash or a network loss)."""
        for ws in list(self.connections.values()):
            ws.transport.abort()

    async def push(self, identity: bytes, frame: Any) -> None:
        await self.connections[identity].send(wire.encode(frame))

    async def push_raw(self, identity: bytes, data: bytes | str) -> None:
        await self.connections[identity].send(data)

    async def handler(self, ws: ServerConnection) -> None:
        self.handshakes += 1
        nonce = os.urandom(32)
        challenge = wire.Challenge(
            version=self.version,
            relay_key=self.relay_key,
            nonce=nonce,
            time_ms=self.clock_ms(),
        )
        await ws.send(wire.encode(challenge))
        auth = wire.decode_client_frame(await ws.recv())
        assert isinstance(auth, wire.Auth)
        self.auths.append(auth)
        if self.auth_mode == "silent":
            await ws.wait_closed()
            return
        message = wire.auth_message(self.relay_key, nonce, auth.identity, auth.time_ms)
        try:
            nacl.signing.VerifyKey(auth.identity).verify(message, auth.signature)
            valid = abs(auth.time_ms - self.clock_ms()) <= wire.AUTH_MAX_SKEW_MS
        except nacl.exceptions.BadSignatureError:
            valid = False
        if not valid or self.auth_mode == "reject":
            await ws.send(wire.encode(wire.Error(code="auth_failed", message="bad signature")))
            await ws.close(1008, "authentication failed")
            return
        identity = auth.identity
        self.connections[identity] = ws
        queue = self.mailboxes.get(identity, [])
        shown = os.urandom(32) if self.auth_mode == "wrong_identity" else identity
        await ws.send(
            wire.encode(wire.AuthOk(identity=shown, queued=len(queue), prekeys_remaining=0))
        )
        for extra in self.extra_after_auth:
            await ws.send(extra)
        for deliver in list(queue):
            await ws.send(wire.encode(deliver))
        await ws.send(wire.encode(wire.Drained(pushed=len(queue))))
        try:
            async for data in ws:
                frame = wire.decode_client_frame(data)
                self.received.append(frame)
                await self.answer(ws, identity, frame)
        except ConnectionClosed:
            pass  # drop_all() or a client that vanished
        finally:
            if self.connections.get(identity) is ws:
                del self.connections[identity]

    async def answer(self, ws: ServerConnection, identity: bytes, frame: Any) -> None:
        if isinstance(frame, wire.Send):
            if self.send_error is not None:
                await ws.send(
                    wire.encode(wire.Error(code=self.send_error, message="no", ref=frame.id))
                )
            elif self.answer_sends:
                self.stored[frame.id] = frame
                await ws.send(wire.encode(wire.Stored(id=frame.id, to=frame.to)))
        elif isinstance(frame, wire.Ack):
            box = self.mailboxes.get(identity, [])
            self.mailboxes[identity] = [d for d in box if d.id not in set(frame.ids)]
        elif isinstance(frame, wire.Subscribe):
            self.subscriptions[identity] = list(frame.identities)
        elif isinstance(frame, wire.FetchBundle | wire.PublishPrekeys):
            if not self.answer_requests:
                return
            if self.reverse_requests:
                self._buffered.append((ws, frame))
                if len(self._buffered) < self.reverse_requests:
                    return
                batch, self._buffered = self._buffered[::-1], []
                for conn, request in batch:
                    await conn.send(wire.encode(self.request_answer(request)))
                return
            await ws.send(wire.encode(self.request_answer(frame)))
        elif isinstance(frame, wire.Signal):
            target = self.connections.get(frame.to)
            if target is not None:
                await target.send(wire.encode(wire.SignalDeliver(sender=identity, body=frame.body)))

    def request_answer(self, frame: Any) -> Any:
        if isinstance(frame, wire.PublishPrekeys):
            return wire.Ok(ref=frame.ref, prekeys_remaining=len(frame.opks))
        bundle = self.bundles.get(frame.identity)
        if bundle is None:
            return wire.Error(code="not_found", message="no bundle published", ref=frame.ref)
        return wire.Bundle(
            ref=frame.ref,
            identity=bundle.identity,
            spk_id=bundle.spk_id,
            spk=bundle.spk,
            spk_sig=bundle.spk_sig,
        )


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: StreamHandler) -> AsyncIterator[int]:
    """A plain TCP server on loopback (for peers that are not relays); yields its port and
    closes every connection on exit."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        with contextlib.suppress(Exception):
            await handler(reader, writer)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        for writer in writers:
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
async def relay() -> AsyncIterator[StubRelay]:
    stub = StubRelay()
    await stub.start()
    yield stub
    await stub.stop()


@dataclass
class Recorder:
    """Collects what a RelayClient hands to its callbacks."""

    frames: list[Any] = field(default_factory=list)
    states: list[StateChange] = field(default_factory=list)
    connected: list[tuple[wire.AuthOk, wire.Challenge]] = field(default_factory=list)
    frame_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_frame(self, frame: Any) -> None:
        self.frames.append(frame)
        self.frame_event.set()

    def on_state(self, change: StateChange) -> None:
        self.states.append(change)

    async def on_connected(self, auth: wire.AuthOk, challenge: wire.Challenge) -> None:
        self.connected.append((auth, challenge))

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.frames):
                self.frame_event.clear()
                await self.frame_event.wait()

    def state_names(self) -> list[str]:
        return [s.state.name for s in self.states]


#: What the ``make_client`` fixture yields: make_client(url, who=None, **kwargs).
MakeClient = Callable[..., tuple[RelayClient, "Recorder"]]


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
async def make_client(
    identity: Identity,
) -> AsyncIterator[MakeClient]:
    """make_client(url, who=None, **kwargs) -> (client, recorder); all closed afterwards."""
    made: list[RelayClient] = []

    def factory(
        url: str, who: Identity | None = None, **kwargs: Any
    ) -> tuple[RelayClient, Recorder]:
        rec = Recorder()
        who = who or identity
        kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.05))
        kwargs.setdefault("connect_timeout", 2.0)
        client = RelayClient(
            url,
            who.public,
            who.sign,
            on_frame=rec.on_frame,
            on_state=rec.on_state,
            on_connected=rec.on_connected,
            **kwargs,
        )
        made.append(client)
        return client, rec

    yield factory
    for client in made:
        await client.close()


# ------------------------------------------------------------------ TLS material


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for localhost / 127.0.0.1 made with `cryptography`."""
    return make_certificate(tmp_path_factory.mktemp("tls"), ["localhost", "127.0.0.1"])


@pytest.fixture(scope="session")
def other_name_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate naming only relay.example."""
    return make_certificate(tmp_path_factory.mktemp("tls-other"), ["relay.example"])
