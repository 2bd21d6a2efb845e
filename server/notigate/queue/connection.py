"""The Redis client the gateway's queue and wake-ups use."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from notigate.config import Settings


def redis_client(url: str, settings: Settings, *, for_pubsub: bool = False) -> Redis:
    """A client that fails fast: a stopped Redis must give UNAVAILABLE, not a hang."""
    return Redis.from_url(
        url,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=None if for_pubsub else settings.redis_timeout_s,
        # One immediate retry rides over a connection that Redis closed (restart).
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0 if for_pubsub else 30,
    )
