"""``--store rediss://``: relay processes on a real TLS-only redis-server (Debian's 7.0 with
``--tls-port`` and a certificate the test makes; the URL names the CA with
``?ssl_ca_certs=``). Two nodes on it serve one user base; a wrong CA is refused at start with
one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_tui.core import wire
from tests.helpers.certs import make_certificate
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[RedisProcess]:
    with RedisProcess(tls=True) as server:
        yield server


async def test_two_nodes_on_a_tls_redis_deliver_across_nodes(tls_redis: RedisProcess) -> None:
    with (
        RelayProcess(store=tls_redis.url) as one,
        RelayProcess(store=tls_redis.url) as two,
    ):
        assert one.relay_key == two.relay_key  # one deployment: the key comes from the store
        alice = await WireClient.connect(one.url)
        bob = await WireClient.connect(two.url)
        await alice.expect(wire.Drained)
        await bob.expect(wire.Drained)
        ids = [new_id() for _ in range(20)]
        for msg_id in ids:
            await alice.send(wire.Send(id=msg_id, to=bob.identity, body=b"over tls"))
        got: list[bytes] = []
        while len(got) < len(ids):
            frame = await bob.recv()
            if isinstance(frame, wire.Deliver):
                got.append(frame.id)
                await bob.send(wire.Ack(ids=[frame.id]))
        assert got == ids
        await alice.close()
        await bob.close()


def test_a_tls_redis_with_an_unknown_ca_is_refused_in_one_line(
    tls_redis: RedisProcess, tmp_path: Path
) -> None:
    other = make_certificate(tmp_path / "other-ca", ["127.0.0.1"])
    url = tls_redis.url.split("?")[0] + f"?ssl_ca_certs={other.cert}"
    relay = RelayProcess(store=url, startup_timeout=20.0)
    with pytest.raises(RuntimeError):
        relay.start()
    stderr = relay.stderr_text()
    relay.close()
    assert "Traceback" not in stderr
    assert "certificate" in stderr.lower() or "ssl" in stderr.lower(), stderr
