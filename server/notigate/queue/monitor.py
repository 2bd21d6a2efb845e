"""What the queue keeps for watching a bot: the throughput ring ``sample.lua`` writes, the
dispatcher heartbeats, and the limiter's state, read in one round trip.

The ring's layout is part of the store's (see ``sample.lua``): one field per interval
slot, each ``"interval,sent,rate_limited,failed,enqueued"`` with the interval's number
(Redis time // INTERVAL_MS) and the bot's lifetime totals when it was sampled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from notigate.queue.keys import QueueKeys

# One sample per interval; an hour of intervals needs one sample more than it has
# intervals (each interval is the difference of two samples).
INTERVAL_MS = 10_000
RING_SLOTS = 361
# Heartbeats older than this are removed; those newer than DISPATCHER_FRESH_MS count.
HEARTBEAT_KEEP_MS = 60_000
DISPATCHER_FRESH_MS = 30_000
# At most this many held chats are listed (the count covers them all).
CHAT_PAUSES_LISTED = 20
# The span of the bot-wide send log GetStats counts as "the last second".
_LAST_SECOND_MS = 1_000


@dataclass(frozen=True, slots=True)
class RingSample:
    """The bot's lifetime totals as sampled in interval ``interval``."""

    interval: int
    sent: int
    rate_limited: int
    failed: int
    enqueued: int

    @property
    def start_ms(self) -> int:
        """When the interval began (Redis time, ms)."""
        return self.interval * INTERVAL_MS


@dataclass(frozen=True, slots=True)
class MonitorReading:
    """The limiter's state, the live dispatchers and the throughput ring of one bot."""

    sent_last_second: int
    held_chats: int
    # (chat, when it opens, ms), latest opening first.
    chat_pauses: list[tuple[str, int]]
    dispatchers: int
    samples: list[RingSample]


def parse_ring(fields: Mapping[bytes, bytes]) -> list[RingSample]:
    """The ring's samples in interval order (a field that does not parse is skipped: the
    ring is rewritten slot by slot, never read whole into a decision)."""
    samples = []
    for value in fields.values():
        parts = value.split(b",")
        if len(parts) != 5 or not all(p.isdigit() for p in parts):
            continue
        n, sent, limited, failed, enqueued = (int(p) for p in parts)
        samples.append(RingSample(n, sent, limited, failed, enqueued))
    samples.sort(key=lambda s: s.interval)
    return samples


async def read_ring(redis: Redis, keys: QueueKeys) -> list[RingSample]:
    """The throughput ring's samples, in interval order."""
    return parse_ring(cast(dict[bytes, bytes], await redis.hgetall(keys.throughput)))


async def read_monitor(redis: Redis, keys: QueueKeys, now_ms: int) -> MonitorReading:
    """Everything of :class:`MonitorReading` in one pipelined round trip, as of ``now_ms``
    (Redis time)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lrange(keys.global_log, 0, -1)
        pipe.zcount(keys.paced, f"({now_ms}", "+inf")
        pipe.zrevrangebyscore(
            keys.paced, "+inf", f"({now_ms}", start=0, num=CHAT_PAUSES_LISTED, withscores=True
        )
        pipe.zcount(keys.dispatchers, f"({now_ms - DISPATCHER_FRESH_MS}", "+inf")
        pipe.hgetall(keys.throughput)
        reply: list[Any] = list(await pipe.execute())
    # The log holds send times, newest first; an album records its sends beyond the rate
    # ahead of now (where Telegram counts them), which this second does not count.
    sends = [int(t) for t in reply[0]]
    last_second = sum(now_ms - _LAST_SECOND_MS < t <= now_ms for t in sends)
    pauses = [(chat.decode(), int(score)) for chat, score in reply[2]]
    return MonitorReading(
        sent_last_second=last_second,
        held_chats=int(reply[1]),
        chat_pauses=pauses,
        dispatchers=int(reply[3]),
        samples=parse_ring(reply[4]),
    )
