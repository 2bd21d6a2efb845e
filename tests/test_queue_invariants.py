"""Random sequences of every queue operation keep the scripts' shared invariants.

enqueue.lua relies on them to skip the full placement of chats it touches, and the
dequeue script on them to find every sendable chat:
- a chat with queued jobs is in exactly one of ``ready`` and ``paced``;
- a chat without queued jobs is in neither;
- a ready chat's score is the rank of its most urgent queued job.
Enqueues reuse idempotency keys with the same or another payload, in all-or-nothing and
independent calls; each outcome is checked against a model of the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from redis.asyncio import Redis

from notigate.config import Limits, Settings
from notigate.errors import IdempotencyKeyReused, JobNotFound, JobStateConflict
from notigate.queue import CompletedSend, EnqueueOutcome, JobState, Lease, NewJob, Queue

# Private chats paced at 1 per 50 ms, groups 2 per 80 ms: pacing and pauses happen often.
LIMITS = Limits(
    global_rate=1000,
    private_rate=1,
    private_window_ms=50,
    group_rate=2,
    group_window_ms=80,
    chat_margin_ms=0,
)
CHATS = ["11", "12", "13", "-1001", "-1002", "@news", "-7"]
MIGRATED = {"-7": "-1007"}  # "-7" becomes a supergroup whenever it is sent to


async def check_invariants(redis: Redis, q: Queue) -> None:
    prefix = q.keys.prefix
    ready = {m.decode(): s for m, s in await redis.zrange(q.keys.ready, 0, -1, withscores=True)}
    paced = {m.decode() for m in await redis.zrange(q.keys.paced, 0, -1)}
    for chat in set(CHATS) | set(MIGRATED.values()) | set(ready) | paced:
        head = await redis.zrange(f"{prefix}q:{chat}", 0, 0, withscores=True)
        where = (chat in ready, chat in paced)
        if head:
            assert where in ((True, False), (False, True)), (chat, where)
            if chat in ready:
                assert ready[chat] == head[0][1], (chat, ready[chat], head[0][1])
        else:
            assert where == (False, False), (chat, where)


async def enqueue_checked(
    redis: Redis,
    q: Queue,
    jobs: list[NewJob],
    keys: dict[str, tuple[bytes, str]],
    all_or_nothing: bool,
) -> list[str]:
    """Enqueue ``jobs`` and check each outcome against ``keys`` (key -> payload, first job),
    which it updates; returns the ids of the jobs created."""
    # What each job should get: (outcome, the key's first job id or the index of the job
    # of this call that creates it).
    expected: list[tuple[EnqueueOutcome, str | int]] = []
    firsts: dict[str, tuple[bytes, str | int]] = {}
    for i, j in enumerate(jobs):
        k = j.idempotency_key
        first = keys.get(k) or firsts.get(k) if k else None
        if first is None:
            expected.append((EnqueueOutcome.CREATED, i))
            if k:
                firsts[k] = (j.payload, i)
        elif first[0] == j.payload:
            expected.append((EnqueueOutcome.DUPLICATE, first[1]))
        else:
            expected.append((EnqueueOutcome.KEY_REUSED, first[1]))
    if all_or_nothing and any(o is EnqueueOutcome.KEY_REUSED for o, _ in expected):
        idem = [f"{q.keys.prefix}idem:{j.idempotency_key}" for j in jobs if j.idempotency_key]
        # (Not the whole database: pacing windows expire meanwhile.)
        before = (await redis.get(q.keys.seq), await redis.mget(idem), (await q.stats()).totals)
        with pytest.raises(IdempotencyKeyReused) as info:
            await q.enqueue(jobs)
        conflicts = [i for i, (o, _) in enumerate(expected) if o is EnqueueOutcome.KEY_REUSED]
        assert info.value.index == conflicts[0]
        assert info.value.others == len(conflicts) - 1
        after = (await redis.get(q.keys.seq), await redis.mget(idem), (await q.stats()).totals)
        assert after == before  # nothing stored: no job, no key, no counter
        return []
    results = await q.enqueue(jobs, all_or_nothing=all_or_nothing)
    for r, (outcome, first) in zip(results, expected, strict=True):
        assert r.outcome is outcome
        if outcome is not EnqueueOutcome.CREATED:
            assert r.job_id == (results[first].job_id if isinstance(first, int) else first)
    for k, (payload, first) in firsts.items():
        assert isinstance(first, int)
        keys[k] = (payload, results[first].job_id)
    return [r.job_id for r in results if r.outcome is EnqueueOutcome.CREATED]


@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_keep_ready_and_paced_consistent(redis: Redis, seed: int) -> None:
    rng = random.Random(seed)
    q = Queue(redis, Settings(limits=LIMITS))
    await q.load()
    leases: list[Lease] = []
    ids: list[str] = []
    keys: dict[str, tuple[bytes, str]] = {}
    for step in range(250):
        op = rng.choice(["enqueue", "enqueue", "dequeue", "complete", "retry", "defer", "cancel"])
        if op == "enqueue":
            jobs = [
                NewJob(
                    chat_id=rng.choice(CHATS),
                    priority=rng.choice([0, 0, 5, 10]),
                    delay_ms=rng.choice([0, 0, 0, 30]),
                    max_attempts=rng.choice([0, 2]),
                    idempotency_key=rng.choice(["", "", f"k{rng.randrange(20)}"]),
                    # Two payloads: a key comes back with its own request or another one.
                    payload=rng.choice([b"p", b"p", b"q"]),
                )
                for _ in range(rng.randrange(1, 6))
            ]
            ids += await enqueue_checked(redis, q, jobs, keys, rng.random() < 0.5)
        elif op == "dequeue":
            leases += (await q.dequeue(rng.randrange(1, 5))).leases
        elif op == "cancel" and ids:
            with contextlib.suppress(JobStateConflict, JobNotFound):  # delivered or unknown
                await q.cancel(rng.choice(ids))
        elif leases:
            lease = leases.pop(rng.randrange(len(leases)))
            if op == "complete" and lease.chat_id in MIGRATED:
                # A send to this chat is answered with its new id.
                await q.migrate(lease, MIGRATED[lease.chat_id])
            elif op == "complete":
                await q.complete_many([CompletedSend(lease, message_id=step)])
            elif op == "retry":
                await q.retry(lease, "HTTP 502", backoff_ms=rng.choice([0, 20]))
            else:
                await q.defer(lease, pause_ms=rng.choice([0, 40]))
        await check_invariants(redis, q)
    # Everything still queued gets out: nothing is stranded outside ready and paced.
    for _ in range(400):
        if not await redis.zcard(q.keys.waiting) and not await redis.zcard(q.keys.delayed):
            break
        for lease in (await q.dequeue(50)).leases:
            await q.complete_many([CompletedSend(lease, message_id=1)])
        await check_invariants(redis, q)
        await asyncio.sleep(0.01)
    stats = await q.stats()
    assert stats.counts[JobState.WAITING] == stats.counts[JobState.DELAYED] == 0
