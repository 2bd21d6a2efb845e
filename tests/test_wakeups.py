"""Wake messages between replicas: a gateway wakes its own workers directly and skips its
own messages; every other replica's message wakes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from notigate import wakeups
from notigate.config import Settings
from notigate.queue import NewJob, Queue
from tests.conftest import wait_for


class Wakes:
    """Counts the wakes handed to it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1

    def reached(self, n: int) -> Callable[[], Awaitable[bool]]:
        """A predicate for wait_for: ``n`` wakes (or more) have come."""

        async def check() -> bool:
            return self.count >= n

        return check


@contextlib.asynccontextmanager
async def listening(redis: Redis, queue: Queue) -> AsyncIterator[Wakes]:
    wakes = Wakes()
    task = asyncio.create_task(
        wakeups.listen(redis, queue.keys.wake_channel, wakes, origin=queue.origin)
    )
    try:
        await wait_for(wakes.reached(1))  # the wake on subscribing
        subscribed = wakes.count

        async def subscribed_on_redis() -> bool:
            channels = await redis.pubsub_numsub(queue.keys.wake_channel)
            return bool(channels and channels[0][1] >= 1)

        await wait_for(subscribed_on_redis)
        wakes.count -= subscribed
        yield wakes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _job(chat: str) -> NewJob:
    return NewJob(
        chat_id=chat, priority=0, delay_ms=0, max_attempts=0, idempotency_key="", payload=b"x"
    )


async def test_a_send_wakes_its_own_workers_once_and_the_other_replica_once(
    redis: Redis,
) -> None:
    settings = Settings(queue_name="wakes")
    here, there = Queue(redis, settings), Queue(redis, settings)
    await here.load()
    local = Wakes()
    here.on_wake = local
    async with listening(redis, here) as heard_here, listening(redis, there) as heard_there:
        await here.enqueue([_job("1")])  # the queue was empty: the job is due first
        await wait_for(heard_there.reached(1))
        # A marker message from a third party, after the enqueue's: once it is heard,
        # the enqueue's own message has been skipped, not merely not delivered yet.
        await redis.publish(here.keys.wake_channel, "marker")
        await wait_for(heard_here.reached(1))
    assert local.count == 1  # woken directly by its own enqueue
    assert heard_here.count == 1  # the marker only: its own message skipped
    assert heard_there.count == 2  # the enqueue's message and the marker


@pytest.mark.parametrize("due_first", [True, False])
async def test_only_a_change_due_first_wakes_anyone(redis: Redis, due_first: bool) -> None:
    settings = Settings(queue_name="wakes-due")
    q = Queue(redis, settings)
    await q.load()
    local = Wakes()
    q.on_wake = local
    if not due_first:
        await q.enqueue([_job("1")])  # a chat is ready already: nothing new is due first
        local.count = 0
    await q.enqueue([_job("2")])
    assert local.count == (1 if due_first else 0)


async def test_an_explicit_wake_wakes_every_replica_and_its_own_workers(redis: Redis) -> None:
    settings = Settings(queue_name="wakes-bulk")
    here, there = Queue(redis, settings), Queue(redis, settings)
    local = Wakes()
    here.on_wake = local
    async with listening(redis, there) as heard_there:
        await here.wake()
        await wait_for(heard_there.reached(1))
    assert local.count == 1
