"""Idempotency keys in the queue: a repeat of the request is a duplicate, a different
message under a used key is a conflict that stores nothing, against a real Valkey."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from notigate.errors import IdempotencyKeyReused
from notigate.group_commit import GroupCommit
from notigate.queue import FINGERPRINT_LEN, Enqueued, EnqueueOutcome, NewJob, Queue, fingerprint
from tests.test_queue import drain, job, make_queue

CREATED, DUPLICATE, KEY_REUSED = (
    EnqueueOutcome.CREATED,
    EnqueueOutcome.DUPLICATE,
    EnqueueOutcome.KEY_REUSED,
)


async def snapshot(redis: Redis) -> dict[bytes, bytes]:
    """Every key with its serialized value: equal snapshots mean nothing was written."""
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


def outcomes(results: Sequence[Enqueued]) -> list[tuple[str, EnqueueOutcome]]:
    return [(r.job_id, r.outcome) for r in results]


async def test_a_repeat_of_the_request_returns_the_first_job(redis: Redis) -> None:
    q = await make_queue(redis)
    [first] = await q.enqueue([job(key="order-1", body="shipped")])
    [again] = await q.enqueue([job(key="order-1", body="shipped")])
    assert first.outcome is CREATED and not first.duplicate
    assert again.job_id == first.job_id and again.outcome is DUPLICATE and again.duplicate
    assert len(await drain(q)) == 1
    stats = await q.stats()
    assert stats.totals["enqueued"] == 1 and stats.totals["duplicates"] == 1


async def test_the_key_stores_the_first_job_and_the_requests_fingerprint(redis: Redis) -> None:
    q = await make_queue(redis)
    [first] = await q.enqueue([job(key="order-1", body="shipped")])
    stored = await redis.get(f"{q.keys.prefix}idem:order-1")
    assert stored == first.job_id.encode() + b":" + fingerprint(b"shipped")
    assert len(fingerprint(b"shipped")) == FINGERPRINT_LEN
    ttl_ms = await redis.pttl(f"{q.keys.prefix}idem:order-1")
    assert 0 < ttl_ms <= q.settings.idempotency_ttl_s * 1000


@pytest.mark.parametrize("all_or_nothing", [True, False])
async def test_a_different_message_under_a_used_key_stores_nothing(
    redis: Redis, all_or_nothing: bool
) -> None:
    q = await make_queue(redis)
    [first] = await q.enqueue([job(key="order-1", body="shipped")])
    before = await snapshot(redis)
    if all_or_nothing:
        with pytest.raises(IdempotencyKeyReused) as info:
            await q.enqueue([job(key="order-1", body="cancelled")])
        err = info.value
        assert (err.key, err.job_id, err.index, err.others) == ("order-1", first.job_id, 0, 0)
        assert f"job {first.job_id}" in str(err) and "'order-1'" in str(err)
    else:
        [res] = await q.enqueue([job(key="order-1", body="cancelled")], all_or_nothing=False)
        assert (res.job_id, res.outcome, res.duplicate) == (first.job_id, KEY_REUSED, False)
    assert await snapshot(redis) == before  # not even the duplicates counter moved
    assert [lease.payload for lease in await drain(q)] == [b"shipped"]


async def test_another_chat_under_a_used_key_is_a_different_message(redis: Redis) -> None:
    # At the queue the payload is what is compared (the service's payload holds the chat).
    q = await make_queue(redis)
    await q.enqueue([NewJob("1", 0, 0, 0, "k", b'chat "1"')])
    with pytest.raises(IdempotencyKeyReused):
        await q.enqueue([NewJob("2", 0, 0, 0, "k", b'chat "2"')])


async def test_a_key_stored_without_a_fingerprint_matches_any_request(redis: Redis) -> None:
    # Keys stored by an earlier version hold the bare job id: they keep working as before.
    q = await make_queue(redis)
    [first] = await q.enqueue([job(body="old")])
    await redis.set(f"{q.keys.prefix}idem:legacy", first.job_id, px=60_000)
    results = await q.enqueue([job(key="legacy", body="anything"), job(key="new", body="n")])
    assert outcomes(results)[0] == (first.job_id, DUPLICATE)
    assert results[1].outcome is CREATED
    [again] = await q.enqueue([job(key="legacy", body="something else")], all_or_nothing=False)
    assert (again.job_id, again.outcome) == (first.job_id, DUPLICATE)
    assert await redis.get(f"{q.keys.prefix}idem:legacy") == first.job_id.encode()


async def test_a_batch_with_a_conflict_stores_nothing_at_all(redis: Redis) -> None:
    q = await make_queue(redis)
    a, b = await q.enqueue([job(key="a", body="A"), job(key="b", body="B")])
    before = await snapshot(redis)
    batch = [
        job(key="fresh-1", body="1"),
        job(body="no key"),
        job(key="a", body="A"),  # a duplicate alone would be fine
        job(key="b", body="not B"),  # the conflict
        job(key="fresh-2", body="2", delay_ms=5000),
        job(key="a", body="not A"),  # a second one
    ]
    with pytest.raises(IdempotencyKeyReused) as info:
        await q.enqueue(batch)
    err = info.value
    assert (err.index, err.key, err.job_id, err.others) == (3, "b", b.job_id, 1)
    assert "messages[3]" in str(err) and "and 1 more" in str(err)
    assert "nothing of the batch was stored" in str(err)
    assert await snapshot(redis) == before
    # The fresh keys were not taken: the same messages go through once the conflict is gone.
    results = await q.enqueue([batch[0], batch[1], batch[2], batch[4]])
    assert [r.outcome for r in results] == [CREATED, CREATED, DUPLICATE, CREATED]
    assert results[2].job_id == a.job_id


async def test_one_key_twice_in_one_call(redis: Redis) -> None:
    q = await make_queue(redis)
    # The same request twice: one job, then a duplicate of it (both modes).
    for all_or_nothing in (True, False):
        key = f"same-{all_or_nothing}"
        first, second = await q.enqueue(
            [job(key=key, body="x"), job(key=key, body="x")], all_or_nothing=all_or_nothing
        )
        assert first.outcome is CREATED
        assert (second.job_id, second.outcome) == (first.job_id, DUPLICATE)

    # Two messages under one key, independent: the first is stored, the second conflicts
    # with it, and the rest of the call is stored.
    results = await q.enqueue(
        [job(key="k", body="one"), job(key="k", body="two"), job(key="m", body="three")],
        all_or_nothing=False,
    )
    assert outcomes(results)[1] == (results[0].job_id, KEY_REUSED)
    assert [results[0].outcome, results[2].outcome] == [CREATED, CREATED]

    # In a batch: nothing is stored, and the error names the earlier message.
    before = await snapshot(redis)
    with pytest.raises(IdempotencyKeyReused) as info:
        await q.enqueue([job(body="0"), job(key="z", body="one"), job(key="z", body="two")])
    err = info.value
    assert (err.index, err.job_id, err.first_index) == (2, "", 1)
    assert "messages[1] of this batch" in str(err)
    assert await snapshot(redis) == before


async def test_a_conflict_against_a_stored_key_repeated_in_one_call(redis: Redis) -> None:
    q = await make_queue(redis)
    [first] = await q.enqueue([job(key="k", body="stored")])
    results = await q.enqueue(
        [job(key="k", body="other"), job(key="k", body="other"), job(key="k", body="stored")],
        all_or_nothing=False,
    )
    # Every message is judged against what the key stands for, the stored request.
    assert outcomes(results) == [
        (first.job_id, KEY_REUSED),
        (first.job_id, KEY_REUSED),
        (first.job_id, DUPLICATE),
    ]


async def test_concurrent_independent_messages_share_a_call_and_fail_alone(
    redis: Redis,
) -> None:
    q = await make_queue(redis)
    [taken] = await q.enqueue([job(key="taken", body="first")])
    writes: list[int] = []

    async def write(jobs: Sequence[NewJob]) -> list[Enqueued]:
        writes.append(len(jobs))
        return await q.enqueue(jobs, all_or_nothing=False)

    commit: GroupCommit[NewJob, Enqueued] = GroupCommit(write)
    lone = asyncio.ensure_future(commit.submit(job(key="lone", body="l")))
    await asyncio.sleep(0)  # its write is in flight; the rest arrive during it
    jobs = [job(key=f"k{i}", body=str(i)) for i in range(8)]
    jobs.insert(4, job(key="taken", body="second"))
    results = await asyncio.gather(*(commit.submit(j) for j in jobs))
    assert (await lone).outcome is CREATED
    assert writes == [1, 9]
    assert (results[4].job_id, results[4].outcome) == (taken.job_id, KEY_REUSED)
    others = results[:4] + results[5:]
    assert all(r.outcome is CREATED for r in others)
    records = [await q.get(r.job_id) for r in others]
    assert {r.payload for r in records if r} == {str(i).encode() for i in range(8)}


async def test_queue_rejects_nothing_without_keys(redis: Redis) -> None:
    # Messages without a key never conflict, even when identical.
    q: Queue = await make_queue(redis)
    results = await q.enqueue([job(body="same"), job(body="same")])
    assert [r.outcome for r in results] == [CREATED, CREATED]
    assert results[0].job_id != results[1].job_id
