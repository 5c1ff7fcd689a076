"""The test harness's real redis-server processes: what the Redis-backed relay tests rely on."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from tests.helpers.redis_process import RedisClusterProcess, RedisProcess


def test_acknowledged_write_survives_sigkill_with_aof_always() -> None:
    with RedisProcess() as server:
        client = redis.Redis.from_url(server.url)
        for index in range(100):
            client.rpush("{bob}:queue", f"envelope-{index}")
        client.close()
        server.kill()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.llen("{bob}:queue") == 100
        assert client.lindex("{bob}:queue", 99) == b"envelope-99"
        client.close()


def test_three_master_cluster_serves_every_slot_and_keeps_hash_tags_together() -> None:
    with RedisClusterProcess(masters=3) as cluster:
        seed = cluster.nodes[0]
        assert seed.cli("cluster", "nodes").count("master") == 3

        def slot(key: str) -> int:
            return int(seed.cli("cluster", "keyslot", key))

        assert len({slot(f"{{user-{index}}}:queue") for index in range(50)}) > 10
        assert slot("{alice}:queue") == slot("{alice}:prekeys")
        client = RedisCluster.from_url(cluster.url)
        for index in range(50):
            client.set(f"{{user-{index}}}:queue", str(index))
        assert [client.get(f"{{user-{index}}}:queue") for index in range(50)] == [
            str(index).encode() for index in range(50)
        ]
        client.close()


def test_a_tls_server_speaks_only_tls() -> None:
    with RedisProcess(tls=True) as server:
        assert server.url.startswith("rediss://")
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
        plain = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        try:
            plain.ping()
        except redis.RedisError:
            pass
        else:
            raise AssertionError("a plaintext client was answered by the TLS-only server")
        finally:
            plain.close()
