"""Wake messages between replicas.

The queue scripts PUBLISH on the queue's wake channel when a job became due
earlier than anything else (a Send, a retry, a returned job); every replica
subscribes, so an idle one starts delivering at once instead of sleeping
until its own next timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis import exceptions as redis_errors
from redis.asyncio import Redis

log = logging.getLogger(__name__)


async def listen(redis: Redis, channel: str, on_wake: Callable[[], None]) -> None:
    """Call ``on_wake`` for every wake message; reconnect after Redis outages."""
    delay = 0.1
    while True:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            # Anything may have become due while we were not subscribed.
            on_wake()
            delay = 0.1
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None:
                    on_wake()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.debug("wake subscription lost (%s); resubscribing", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
