"""The Redis client the gateway's queue and wake-ups use: one server, a Redis Cluster or
a primary found through Sentinel.

Every module is typed against :class:`redis.asyncio.Redis`. A cluster client
(:class:`redis.asyncio.cluster.RedisCluster`) offers the same commands, scripts and
pipelines under another class, so :func:`redis_client` hands it out as a ``Redis`` (one
documented cast, here) and the few places that must act differently on a cluster ask
:func:`cluster_of`: a pipeline cannot carry EVALSHA or TIME there, WAIT must reach the
shard's primary on the write's own connection, and a health check covers every primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from notigate.config import Settings
from notigate.errors import REDIS_ERRORS

# Connections per cluster node. redis-py's cluster client raises MaxConnectionsError
# instead of waiting once a node's pool is full (100 by default), and concurrent RPCs
# each hold one while their command runs: the bound is set well above what a gateway's
# gRPC streams and workers can have in flight, and connections are only opened on demand.
CLUSTER_MAX_CONNECTIONS = 2048


def redis_client(url: str | None, settings: Settings, *, for_pubsub: bool = False) -> Redis:
    """A client that fails fast: a stopped Redis must give UNAVAILABLE, not a hang.

    ``for_pubsub``: for subscriptions and blocking reads (no socket timeout). With
    ``redis_sentinels`` the primary is asked of the Sentinels at every (re)connect, so a
    failover is followed without a restart; ``url`` (optional then) gives the primary's
    password, db and TLS.
    """
    timeout = None if for_pubsub else settings.redis_timeout_s
    if settings.redis_sentinels:
        return _sentinel_client(url, settings, timeout, for_pubsub=for_pubsub)
    if url is None:
        raise ValueError("REDIS_URL is needed unless NOTIGATE_REDIS_SENTINELS is set")
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(
            url,
            socket_connect_timeout=settings.redis_timeout_s,
            socket_timeout=timeout,
            # Cluster-level retries follow MOVED and a promoted replica after a failover
            # (the client re-reads the slot map between them); short, so a cluster that
            # stays down answers UNAVAILABLE within a few timeouts.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            max_connections=CLUSTER_MAX_CONNECTIONS,
        )
        # Same commands under another class (see the module's docstring).
        return cast(Redis, cluster)
    return Redis.from_url(
        url,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=timeout,
        # One immediate retry rides over a connection that Redis closed (restart).
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0 if for_pubsub else 30,
    )


def _sentinel_client(
    url: str | None, settings: Settings, timeout: float | None, *, for_pubsub: bool
) -> Redis:
    options: dict[str, Any] = {}
    if url is not None:
        options = dict(parse_url(url))
        for where in ("host", "port", "path"):
            options.pop(where, None)
        if options.pop("connection_class", None) is SSLConnection:
            options["ssl"] = True
    sentinels = []
    for address in settings.redis_sentinels:
        host, _, port = address.rpartition(":")
        sentinels.append((host, int(port)))
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels,
        sentinel_kwargs={
            "socket_connect_timeout": settings.redis_timeout_s,
            "socket_timeout": settings.redis_timeout_s,
        },
    )
    master = settings.redis_sentinel_master or ""
    client: _SentinelPrimary = sentinel.master_for(
        master,
        redis_class=_SentinelPrimary,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0 if for_pubsub else 30,
        **options,
    )
    client.sentinels = list(sentinel.sentinels)
    return client


class _SentinelPrimary(Redis):
    """The primary's client; closing it closes the clients of the Sentinels too."""

    sentinels: list[Redis]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in getattr(self, "sentinels", ()):
            await sentinel.aclose()


def cluster_of(redis: Redis) -> RedisCluster | None:
    """The cluster client behind ``redis``, or None for one server (or Sentinel's)."""
    client: object = redis
    return client if isinstance(client, RedisCluster) else None


def primaries(redis: Redis) -> list[ClusterNode] | None:
    """Every primary of the cluster (None: ``redis`` is no cluster client)."""
    cluster = cluster_of(redis)
    return None if cluster is None else cluster.get_primaries()


async def server_time_ms(redis: Redis, key: str) -> int:
    """The clock (ms) of the server that holds ``key``: the one its scripts stamp
    times with (on a cluster, the primary of its slot; TIME names no key)."""
    cluster = cluster_of(redis)
    if cluster is None:
        sec, usec = await redis.time()
    else:
        node = cluster.get_node_from_key(key)
        sec, usec = await cluster.time(target_nodes=node)
    return int(sec) * 1000 + int(usec) // 1000


# One slot-map refresh at a time per client: every call that meets a failover asks for one.
_refreshing: weakref.WeakKeyDictionary[RedisCluster, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def refresh_slots(cluster: RedisCluster) -> None:
    """Read the cluster's slot map again (after a failover the promoted replica serves
    the slot); an unreachable cluster leaves the old map for the next try."""
    task = _refreshing.get(cluster)
    if task is None or task.done():

        async def refresh() -> None:
            with contextlib.suppress(*REDIS_ERRORS):
                await cluster.nodes_manager.initialize()

        task = asyncio.create_task(refresh())
        _refreshing[cluster] = task
    await asyncio.shield(task)
