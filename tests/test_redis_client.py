"""Which Redis client the settings build, and how cluster errors are classified (no server
needed: redis-py connects lazily; the clusters themselves are in test_cluster.py)."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from notigate.config import Settings
from notigate.errors import QueueUnavailable, RedisErrorKind, StoreError, store_error
from notigate.queue.connection import CLUSTER_MAX_CONNECTIONS, cluster_of, redis_client


async def test_cluster_settings_build_the_cluster_client() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:7000/0", redis_cluster=True)
    client = redis_client(settings.redis_url, settings)
    try:
        cluster = cluster_of(client)
        assert isinstance(cluster, RedisCluster)
        [node] = cluster.nodes_manager.startup_nodes.values()
        assert node.max_connections == CLUSTER_MAX_CONNECTIONS
    finally:
        await client.aclose()


async def test_a_plain_url_builds_no_cluster_client() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:7000/0")
    client = redis_client(settings.redis_url, settings)
    try:
        assert cluster_of(client) is None and isinstance(client, Redis)
    finally:
        await client.aclose()


async def test_sentinel_settings_take_password_db_and_tls_of_the_url() -> None:
    settings = Settings(
        redis_url="rediss://:s3cret@ignored.example:6380/3",
        redis_sentinels=("127.0.0.1:26379", "127.0.0.1:26380"),
        redis_sentinel_master="notigate",
    )
    client = redis_client(settings.redis_url, settings)
    try:
        assert cluster_of(client) is None
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        assert (kwargs["password"], kwargs["db"]) == ("s3cret", 3)
        assert "host" not in kwargs and "SSL" in pool.connection_class.__name__
        assert getattr(pool, "service_name", None) == "notigate"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "exc",
    [
        redis_errors.SlotNotCoveredError('Slot "7" is not covered by the cluster.'),
        redis_errors.ClusterError("TTL exhausted."),
        redis_errors.TryAgainError("TRYAGAIN Multiple keys request during rehashing"),
        redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis_errors.MaxConnectionsError("Too many connections"),
    ],
)
def test_cluster_trouble_is_unavailable(exc: Exception) -> None:
    error = store_error(exc)
    assert isinstance(error, QueueUnavailable)
    assert error.kind in {RedisErrorKind.CLUSTER, RedisErrorKind.CONNECTION}


def test_a_cross_slot_refusal_is_a_bug_not_unavailable() -> None:
    error = store_error(redis_errors.RedisClusterException("all keys must map to the same slot"))
    assert type(error) is StoreError and error.kind is RedisErrorKind.OTHER
