"""How the webhook's delivery stands: pending, delivered, undeliverable, and the oldest
pending event's time (read, not changed: no script)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from notigate.job_views import timestamp
from notigate.queue.records import stored_int
from notigate.queue.scripts.base import store_errors
from notigate.webhooks.keys import WebhookKeys
from notigate_client import pb

__all__ = ["WebhookStats", "read_stats", "undeliverable_records"]


@dataclass(frozen=True, slots=True)
class WebhookStats:
    pending: int
    delivered: int
    undeliverable: int
    # ms; None when nothing is pending.
    oldest_pending_ms: int | None

    def to_pb(self) -> pb.WebhookStats:
        out = pb.WebhookStats(
            pending=self.pending, delivered=self.delivered, undeliverable=self.undeliverable
        )
        if self.oldest_pending_ms is not None:
            out.oldest_pending_time.CopyFrom(timestamp(self.oldest_pending_ms))
        return out


async def read_stats(redis: Redis, keys: WebhookKeys) -> WebhookStats:
    """The delivery's figures, read in one transaction (they agree with each other)."""
    async with store_errors(), redis.pipeline(transaction=True) as pipe:
        pipe.hlen(keys.outbox)
        pipe.hmget(keys.state, ["delivered", "undeliverable"])
        pipe.zrange(keys.times, 0, 0, withscores=True)
        pending, (delivered, undeliverable), oldest = await pipe.execute()
    return WebhookStats(
        pending=int(pending),
        delivered=stored_int(delivered),
        undeliverable=stored_int(undeliverable),
        oldest_pending_ms=int(oldest[0][1]) if oldest else None,
    )


async def undeliverable_records(
    redis: Redis, keys: WebhookKeys, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest undeliverable events as recorded (newest first): ``cursor``, ``event``
    (its stream fields), ``attempts``, ``error``, ``at`` (ms); or, for entries trimmed
    unread, ``trimmed`` (how many), ``after`` and ``before`` (cursors), ``at``."""
    async with store_errors():
        raw = await redis.lrange(keys.dead, 0, limit - 1)
    return [json.loads(item) for item in raw]
