"""The Redis queue's scripts, driven directly against a real Valkey server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest
from redis.asyncio import Redis

from notigate.config import Limits, Settings
from notigate.errors import JobNotFound, JobStateConflict
from notigate.queue import JobState, Lease, NewJob, Queue, RetryOutcome


def job(
    chat: str = "1",
    priority: int = 0,
    delay_ms: int = 0,
    key: str = "",
    body: str = "x",
    max_attempts: int = 0,
) -> NewJob:
    return NewJob(chat, priority, delay_ms, max_attempts, key, body.encode())


async def make_queue(redis: Redis, **overrides: object) -> Queue:
    limits = overrides.pop("limits", Limits(global_rate=1000, private_rate=1000, group_rate=1000))
    q = Queue(redis, Settings(limits=limits, **overrides))  # type: ignore[arg-type]
    await q.load()
    return q


async def drain(q: Queue, count: int = 1000) -> list[Lease]:
    leased = await q.dequeue(count)
    return leased.leases


async def test_priority_first_then_fifo_within_priority(redis: Redis) -> None:
    q = await make_queue(redis)
    specs = [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", 5), ("f", 10)]
    await q.enqueue([job(chat="7", priority=p, body=b) for b, p in specs])
    order = [lease.payload.decode() for lease in await drain(q)]
    assert order == ["d", "f", "b", "e", "a", "c"]


async def test_priority_holds_across_chats(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job(chat=str(100 + i), priority=0, body=f"low{i}") for i in range(5)])
    await q.enqueue([job(chat="999", priority=9, body="urgent")])
    leases = await drain(q, count=1)
    assert [lease.payload for lease in leases] == [b"urgent"]


async def test_delayed_job_is_not_due_before_its_time(redis: Redis) -> None:
    q = await make_queue(redis)
    [res] = await q.enqueue([job(delay_ms=300)])
    leased = await q.dequeue(10)
    assert leased.leases == []
    assert leased.wait_ms is not None and 0 < leased.wait_ms <= 300
    record = await q.get(res.job_id)
    assert record is not None and record.state is JobState.DELAYED
    await asyncio.sleep(leased.wait_ms / 1000 + 0.02)
    assert [lease.job_id for lease in await drain(q)] == [res.job_id]


async def test_global_limit_spaces_sends_and_counts_a_sliding_window(redis: Redis) -> None:
    # 3 per 300 ms: one send per 100 ms interval, never 4 in any 300 ms.
    q = await make_queue(
        redis,
        limits=Limits(global_rate=3, global_window_ms=300, private_rate=100, global_margin_ms=0),
    )
    await q.enqueue([job(chat=str(i + 1)) for i in range(5)])
    first = await q.dequeue(10)
    assert len(first.leases) == 1 and first.blocked
    assert first.wait_ms is not None and 0 < first.wait_ms <= 100
    assert (await q.dequeue(10)).leases == []
    for _ in range(4):
        leased = await q.dequeue(10)
        await asyncio.sleep((leased.wait_ms or 0) / 1000 + 0.005)
        assert len((await q.dequeue(10)).leases) == 1
    sends = [int(t) for t in await redis.lrange(q.keys.global_log, 0, -1)]
    assert all(a - b >= 100 for a, b in itertools.pairwise(sends))


async def test_burst_span_lets_high_rates_send_back_to_back(redis: Redis) -> None:
    q = await make_queue(
        redis,
        limits=Limits(global_rate=1000, private_rate=100, global_burst_ms=20, global_margin_ms=0),
    )
    await q.enqueue([job(chat=str(i + 1)) for i in range(50)])
    # 1000/s with a 20 ms burst span (interval 1 ms): 20 may go back to back,
    # plus the one slot of lateness the spacing forgives; then one per interval.
    first = await q.dequeue(50)
    assert len(first.leases) == 21 and first.blocked


async def test_private_chat_paced_without_blocking_other_chats(redis: Redis) -> None:
    q = await make_queue(
        redis,
        limits=Limits(global_rate=1000, private_rate=1, private_window_ms=500, chat_margin_ms=0),
    )
    await q.enqueue([job(chat="1", body=f"a{i}") for i in range(50)])
    first = await drain(q)
    assert [lease.payload for lease in first] == [b"a0"]
    # Chat 1 has 49 queued and is paced; chat 2's message goes at once.
    await q.enqueue([job(chat="2", body="b")])
    assert [lease.payload for lease in await drain(q)] == [b"b"]
    leased = await q.dequeue(10)
    assert leased.leases == [] and leased.wait_ms is not None and leased.wait_ms > 0
    await asyncio.sleep(leased.wait_ms / 1000 + 0.01)
    assert [lease.payload for lease in await drain(q)] == [b"a1"]


async def test_group_window_allows_its_quota_then_paces(redis: Redis) -> None:
    q = await make_queue(
        redis,
        limits=Limits(global_rate=1000, group_rate=3, group_window_ms=60_000, chat_margin_ms=0),
    )
    await q.enqueue([job(chat="-100123", body=str(i)) for i in range(5)])
    assert len(await drain(q)) == 3
    assert (await q.dequeue(10)).leases == []
    opens_at = await redis.zscore(q.keys.paced, "-100123")
    assert opens_at is not None and opens_at - (await q.stats()).now_ms > 59_000


async def test_complete_records_message_id(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job()])
    [lease] = await drain(q)
    assert await q.complete(lease, 777)
    record = await q.get(lease.job_id)
    assert record is not None
    assert record.state is JobState.COMPLETED and record.message_id == 777
    assert record.delivered_ms > 0


async def test_retry_backs_off_then_fails_when_attempts_used(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job(max_attempts=2)])
    [lease] = await drain(q)
    assert await q.retry(lease, "HTTP 502", backoff_ms=50) is RetryOutcome.SCHEDULED
    record = await q.get(lease.job_id)
    assert record is not None and record.state is JobState.DELAYED and record.attempts == 1
    await asyncio.sleep(0.08)
    [again] = await drain(q)
    assert again.attempts == 1
    assert await q.retry(again, "HTTP 502", backoff_ms=50) is RetryOutcome.FAILED
    record = await q.get(lease.job_id)
    assert record is not None and record.state is JobState.FAILED
    assert record.attempts == 2 and record.last_error == "HTTP 502"


async def test_defer_after_429_keeps_attempts_and_pauses_the_chat(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job(chat="5", body="a"), job(chat="5", body="b"), job(chat="6", body="c")])
    leases = await drain(q, count=1)
    assert [lease.payload for lease in leases] == [b"a"]
    assert not await q.defer(leases[0], pause_ms=400)
    record = await q.get(leases[0].job_id)
    assert record is not None and record.state is JobState.WAITING and record.attempts == 0
    # Chat 5 is paused: only chat 6 may send.
    assert [lease.payload for lease in await drain(q)] == [b"c"]
    await asyncio.sleep(0.45)
    # After the pause, the deferred job goes first again (it kept its rank).
    assert [lease.payload for lease in await drain(q, count=1)] == [b"a"]


async def test_429s_from_several_chats_pause_the_whole_bot(redis: Redis) -> None:
    q = await make_queue(redis, bot_pause_chats=2)
    await q.enqueue([job(chat=str(c)) for c in (1, 2, 3)])
    l1, l2, _l3 = await drain(q)
    assert not await q.defer(l1, pause_ms=300)
    assert await q.defer(l2, pause_ms=300)
    stats = await q.stats()
    assert stats.paused_until_ms > stats.now_ms
    assert (await q.dequeue(10)).leases == []


async def test_expired_lease_returns_job_with_its_priority(redis: Redis) -> None:
    q = await make_queue(redis, lease_ms=100)
    await q.enqueue([job(chat="1", priority=7, body="urgent"), job(chat="2", body="later")])
    [lease] = await drain(q, count=1)
    assert lease.payload == b"urgent"
    await asyncio.sleep(0.15)  # the worker "died": no outcome, no renewal
    [again] = await drain(q, count=1)
    assert again.job_id == lease.job_id and again.token != lease.token
    record = await q.get(lease.job_id)
    assert record is not None and record.stalls == 1
    # The dead worker's late outcome cannot override the new lease...
    assert await q.fail(lease, "late") is False
    # ...but a delivery it made is still recorded, so it is not sent twice.
    assert await q.complete(again, 1)


async def test_a_job_goes_back_with_its_rank_also_when_stored_by_an_older_version(
    redis: Redis,
) -> None:
    q = await make_queue(redis)
    ids = [r.job_id for r in await q.enqueue([job("1", priority=p) for p in (7, 0, 3)])]
    # Older versions kept the rank itself in the job hash ('r'), not the priority.
    older = f"{q.keys.prefix}job:{ids[1]}"
    await redis.hset(older, "r", 2**44 + int(ids[1]))  # the rank of priority 9
    leases = await drain(q)
    for lease in leases:
        assert await q.defer(lease) == 0
    assert [x.job_id for x in await drain(q)] == [ids[1], ids[0], ids[2]]


async def test_job_fails_as_stalled_after_too_many_expiries(redis: Redis) -> None:
    q = await make_queue(redis, lease_ms=30, max_stalls=1)
    [res] = await q.enqueue([job()])
    for _ in range(2):
        assert len(await drain(q)) == 1
        await asyncio.sleep(0.05)
    await q.dequeue(10)
    record = await q.get(res.job_id)
    assert record is not None and record.state is JobState.FAILED
    assert record.last_error.startswith("stalled")


async def test_extend_keeps_a_slow_send_leased(redis: Redis) -> None:
    q = await make_queue(redis, lease_ms=150)
    await q.enqueue([job()])
    [lease] = await drain(q)
    for _ in range(3):
        await asyncio.sleep(0.08)
        assert await q.extend([lease]) == 1
    assert (await q.dequeue(10)).leases == []


async def test_cancel_only_before_delivery(redis: Redis) -> None:
    q = await make_queue(redis)
    a, b, c = await q.enqueue([job(chat="1"), job(chat="2", delay_ms=60_000), job(chat="3")])
    assert (await q.cancel(a.job_id)).state is JobState.CANCELLED
    assert (await q.cancel(b.job_id)).state is JobState.CANCELLED
    [lease] = await drain(q)
    assert lease.job_id == c.job_id
    with pytest.raises(JobStateConflict):
        await q.cancel(c.job_id)
    with pytest.raises(JobNotFound):
        await q.cancel("424242")
    assert (await q.dequeue(10)).wait_ms is not None  # c's lease is still scheduled


async def test_requeue_failed_job(redis: Redis) -> None:
    q = await make_queue(redis)
    [res] = await q.enqueue([job()])
    [lease] = await drain(q)
    await q.fail(lease, "Forbidden: bot was blocked by the user")
    record = await q.requeue(res.job_id)
    assert record.state is JobState.WAITING and record.attempts == 0
    assert [lease.job_id for lease in await drain(q)] == [res.job_id]
    with pytest.raises(JobStateConflict):
        await q.requeue(res.job_id)


async def test_retention_trims_oldest_completed_and_failed(redis: Redis) -> None:
    q = await make_queue(redis, keep_completed=3, keep_failed=2)
    ids = [r.job_id for r in await q.enqueue([job(chat=str(i + 1)) for i in range(10)])]
    leases = await drain(q)
    for lease in leases[:6]:
        await q.complete(lease, 1)
    for lease in leases[6:]:
        await q.fail(lease, "nope")
    stats = await q.stats()
    assert stats.counts[JobState.COMPLETED] == 3 and stats.counts[JobState.FAILED] == 2
    assert stats.totals["sent"] == 6 and stats.totals["failed"] == 4
    assert await q.get(ids[0]) is None  # trimmed: its hash is gone too
    assert (await q.get(ids[5])) is not None
    assert await redis.dbsize() < 40


async def test_stats_counts_every_state(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job(chat="1"), job(chat="2"), job(chat="3", delay_ms=60_000)])
    l1, _l2 = await drain(q, count=2)
    await q.complete(l1, 5)
    stats = await q.stats()
    counts = {state.value: n for state, n in stats.counts.items()}
    assert counts == {
        "waiting": 0,
        "delayed": 1,
        "active": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }


async def test_list_pages_through_a_state(redis: Redis) -> None:
    q = await make_queue(redis)
    ids = [r.job_id for r in await q.enqueue([job(chat=str(i + 1)) for i in range(7)])]
    seen: list[str] = []
    after = None
    while True:
        page, after = await q.list(JobState.WAITING, after, 3)
        seen += [r.job_id for r in page]
        if after is None:
            break
    assert seen == ids  # equal scores (one enqueue call) come in id byte order: 1..7


async def test_list_lists_a_job_that_stays_exactly_once_while_others_move(redis: Redis) -> None:
    q = await make_queue(redis)
    # Ids 1..30: their byte order (1, 10, 11, ...) differs from their numeric order,
    # which the position of a vanished cursor must respect.
    ids = [r.job_id for r in await q.enqueue([job(chat=str(i + 1)) for i in range(30)])]
    cancelled = {ids[i] for i in range(0, 30, 4)}
    seen: list[str] = []
    after = None
    while True:
        page, after = await q.list(JobState.WAITING, after, 4)
        seen += [r.job_id for r in page]
        # Between pages: the last listed job and some not yet listed leave the state,
        # and new jobs arrive (later scores: listed after the rest, or not at all).
        for job_id in [r.job_id for r in page[-1:]] + [i for i in cancelled if i not in seen]:
            with contextlib.suppress(JobStateConflict):
                await q.cancel(job_id)
        await q.enqueue([job(chat="99")])
        if after is None:
            break
    stayed = [i for i in ids if i not in cancelled]
    assert [i for i in seen if i in stayed] == sorted(stayed, key=str.encode)
    assert len(seen) == len(set(seen))


async def test_list_newest_first_continues_after_a_cursor_that_left(redis: Redis) -> None:
    q = await make_queue(redis)
    await q.enqueue([job(chat=str(i + 1)) for i in range(12)])
    for lease in await drain(q):
        await q.fail(lease, "403: Forbidden")
    index = q.keys.failed
    scored = await redis.zrange(index, 0, -1, withscores=True)
    newest_first = [m.decode() for m, _ in sorted(scored, key=lambda e: (e[1], e[0]), reverse=True)]
    seen: list[str] = []
    after = None
    while True:
        page, after = await q.list(JobState.FAILED, after, 3)
        seen += [r.job_id for r in page]
        if page:
            await q.requeue(page[-1].job_id)  # the cursor's job leaves the state
        if after is None:
            break
    assert seen == newest_first


async def test_migration_moves_the_old_chats_queue_to_the_new_chat(redis: Redis) -> None:
    q = await make_queue(redis)
    first, second, third = [
        r.job_id for r in await q.enqueue([job("-4001", priority=p) for p in (9, 5, 0)])
    ]
    [already] = [r.job_id for r in await q.enqueue([job("-1004001", priority=7)])]
    [lease] = (await q.dequeue(1)).leases
    assert (lease.job_id, lease.chat_id) == (first, "-4001")
    stale = Lease(lease.job_id, "0", lease.chat_id, 0, b"", lease.created_ms)
    assert await q.migrate(stale, "-1004001") == 0
    assert await q.migrate(lease, "-1004001") == 3
    assert not await redis.exists(f"{q.keys.prefix}q:-4001")
    assert await redis.zscore(q.keys.ready, "-4001") is None
    leased = await drain(q)
    # One chat now, each job keeping its priority; no attempt was used.
    assert [(x.job_id, x.chat_id, x.attempts) for x in leased] == [
        (first, "-1004001", 0),
        (already, "-1004001", 0),
        (second, "-1004001", 0),
        (third, "-1004001", 0),
    ]
    # Later jobs for the old id, and for a chat that had migrated to it, follow the newest.
    assert await q.migrate(leased[1], "-1009") == 1
    [later] = [r.job_id for r in await q.enqueue([job("-4001")])]
    record = await q.get(later)
    assert record is not None and record.chat_id == "-1009"
