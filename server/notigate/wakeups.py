"""Wake messages between replicas.

The queue scripts PUBLISH on the queue's wake channel when a job became due
earlier than anything else (a Send, a retry, a returned job); every replica
subscribes, so an idle one starts delivering at once instead of sleeping
until its own next timer. A message carries the publishing gateway's origin
(:attr:`notigate.queue.Queue.origin`): that gateway woke its own workers already,
so it skips its own messages. One subscription serves every bot of a gateway:
each bot's queue has its own channel, and a message wakes that bot's workers only.

On a Redis Cluster the scripts keep classic PUBLISH, which the cluster broadcasts to every
node, and a replica subscribes on the node of the channel's slot. Sharded pub/sub
(SPUBLISH) would keep each message on its shard, but a wake is rare (a job became due
earlier than all others, not every Send) and tiny, and only hurries an idle replica (its
timers deliver anyway): the broadcast costs little, while PUBLISH works unchanged on one
server, Sentinel's primaries and every Redis and Valkey version the scripts run on.
Classic subscriptions, too, hear every node's messages, so one subscription to every bot's
channel serves the bots of all shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from redis.asyncio import Redis

from notigate.errors import REDIS_ERRORS, RedisErrorKind, store_error
from notigate.queue.connection import cluster_of, refresh_slots
from notigate.supervisor import Spell

log = logging.getLogger(__name__)

# After a (re)subscription every bot is woken: this many, then a pause.
_WAKE_ALL_BATCH = 50
_WAKE_ALL_PAUSE_S = 0.01


async def listen(
    redis: Redis,
    channel: str | Mapping[str, Callable[[], None]],
    on_wake: Callable[[], None] = lambda: None,
    *,
    origin: str = "",
    on_redis_error: Callable[[RedisErrorKind], None] = lambda _: None,
) -> None:
    """Call ``on_wake`` for every wake message on ``channel`` but those of ``origin``
    (or, given channels with their callbacks, the channel's callback); resubscribe after
    any Redis error, and then call every callback: anything may have become due meanwhile.

    Never returns: a lost subscription only delays idle replicas (their timers still fire),
    so every Redis error is retried with backoff, logged once per spell.
    """
    wakes = {channel: on_wake} if isinstance(channel, str) else dict(channel)
    by_name = {name.encode(): wake for name, wake in wakes.items()}
    spell = Spell("listening for wake messages", logger=log, count=on_redis_error)
    cluster = cluster_of(redis)
    while True:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            if cluster is not None:
                # The cluster's pub/sub picks its node from the slot map, which only
                # the client's commands read: read it now (again after a failover).
                await cluster.initialize()
            await pubsub.subscribe(*wakes)
            # Anything may have become due while we were not subscribed: wake every bot, a
            # few at a time, so a thousand dequeues do not hold the loop at once.
            for i, wake in enumerate(wakes.values(), start=1):
                wake()
                if i % _WAKE_ALL_BATCH == 0:
                    await asyncio.sleep(_WAKE_ALL_PAUSE_S)
            spell.succeeded()
            own = origin.encode()
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None and message["data"] != own:
                    woken = by_name.get(message["channel"])
                    if woken is not None:
                        woken()
        except REDIS_ERRORS as exc:
            error = store_error(exc)
            if error.kind is RedisErrorKind.CONNECTION and not spell.active:
                # A Redis restart or an idle connection dropped: routine, resubscribe.
                log.debug("wake subscription lost (%s); resubscribing", error)
                spell.failures += 1
                on_redis_error(error.kind)
            else:
                spell.failed(error)
            if cluster is not None:
                await refresh_slots(cluster)
            await asyncio.sleep(spell.delay_s(0.1, 1.0))
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
