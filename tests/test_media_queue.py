"""The queue's side of media: albums weigh their items in the windows, edit and delete
jobs carry their target, payloads are rewritten compare-and-set, album progress sticks,
and uploads referenced by unfinished jobs are pinned. Against a real Valkey server."""

from __future__ import annotations

from redis.asyncio import Redis

from notigate.config import Limits
from notigate.queue import JobKind, JobState, NewJob, Queue
from notigate.queue.scripts import RewriteCode, Status
from tests.test_queue import drain, job, make_queue


def album(chat: str, items: int, body: str = "album") -> NewJob:
    return NewJob(chat, 0, 0, 0, "", body.encode(), weight=items)


async def test_an_album_to_a_private_chat_holds_it_one_window_per_item(redis: Redis) -> None:
    q = await make_queue(
        redis, limits=Limits(global_rate=1000, private_rate=1, group_rate=1000, chat_margin_ms=0)
    )
    await q.enqueue([album("5", 10)])
    [lease] = await drain(q)
    await q.enqueue([job(chat="5", body="next")])
    leased = await q.dequeue(10)
    assert leased.leases == []
    # Ten messages at one a second: the next may go ten windows after the album.
    assert leased.wait_ms is not None and leased.wait_ms > 9_000
    assert lease.payload == b"album"


async def test_an_album_needs_room_for_all_its_items_in_the_chat_window(redis: Redis) -> None:
    q = await make_queue(
        redis, limits=Limits(global_rate=1000, private_rate=1000, group_rate=5, chat_margin_ms=0)
    )
    await q.enqueue([job(chat="-100", body=f"m{i}") for i in range(3)])
    await q.enqueue([album("-100", 4)])
    leases = await drain(q)
    # 3 singles fit the window of 5; the album of 4 does not fit in the 2 left.
    assert [lease.payload for lease in leases] == [b"m0", b"m1", b"m2"]
    waiting, _ = await q.list(JobState.WAITING, None, 10)
    assert [r.payload for r in waiting] == [b"album"]


async def test_an_album_counts_its_items_bot_wide(redis: Redis) -> None:
    q = await make_queue(
        redis,
        # A burst as long as the window: the sliding window alone decides.
        limits=Limits(
            global_rate=10,
            private_rate=1000,
            group_rate=1000,
            global_margin_ms=0,
            global_burst_ms=1000,
        ),
    )
    await q.enqueue([album("1", 8), job(chat="2", body="a"), job(chat="3", body="b")])
    await q.enqueue([job(chat="4", body="c")])
    leases = await drain(q)
    # 8 + 1 + 1 fill the bot's 10; the fourth message waits.
    assert [lease.payload for lease in leases] == [b"album", b"a", b"b"]


async def test_edit_jobs_carry_their_target_and_see_its_state(redis: Redis) -> None:
    q = await make_queue(redis)
    [original] = await q.enqueue([job(chat="9", body="hello")])
    [lease] = await drain(q)
    [edit] = await q.enqueue(
        [
            NewJob(
                "9",
                0,
                0,
                0,
                "",
                b"hello, edited",
                kind=JobKind.EDIT,
                edit_method="editMessageText",
                target_job_id=original.job_id,
            )
        ]
    )
    [leased_edit] = await drain(q)
    assert leased_edit.kind is JobKind.EDIT
    assert leased_edit.edit_method == "editMessageText"
    assert leased_edit.target_state is JobState.ACTIVE
    assert leased_edit.target_message_ids == ()
    assert await q.postpone(leased_edit, 1)
    assert await q.complete(lease, 77)
    record = await q.get(edit.job_id)
    assert record is not None and record.state is JobState.DELAYED
    assert record.kind is JobKind.EDIT and record.target_job_id == original.job_id
    for _ in range(50):
        leases = await drain(q)
        if leases:
            break
    [again] = leases
    assert again.target_state is JobState.COMPLETED
    assert again.target_message_ids == (77,)


async def test_album_deliveries_record_every_message_id(redis: Redis) -> None:
    q = await make_queue(redis)
    [created] = await q.enqueue([album("3", 3)])
    [lease] = await drain(q)
    assert await q.complete(lease, 10, (10, 11, 12))
    record = await q.get(created.job_id)
    assert record is not None
    assert record.message_id == 10 and record.message_ids == (10, 11, 12)


async def test_album_progress_is_kept_and_never_goes_back(redis: Redis) -> None:
    q = await make_queue(redis)
    [created] = await q.enqueue([album("3", 5)])
    [lease] = await drain(q)
    assert await q.record_progress(lease, 3)
    assert await q.record_progress(lease, 2)
    await q.retry(lease, "Bad Gateway", 0)
    record = await q.get(created.job_id)
    assert record is not None and record.sent_items == 3
    for _ in range(50):
        leases = await drain(q)
        if leases:
            break
    assert [lease.sent_items for lease in leases] == [3]


async def test_rewrite_is_compare_and_set_and_honours_states(redis: Redis) -> None:
    q = await make_queue(redis)
    [created] = await q.enqueue([job(chat="4", body="v1", delay_ms=60_000)])
    queued = (JobState.WAITING, JobState.DELAYED)
    stale = await q.rewrite(created.job_id, queued, b"v0", b"v2")
    assert stale.status == RewriteCode.CHANGED
    done = await q.rewrite(created.job_id, queued, b"v1", b"v2")
    assert done.status == Status.OK
    record = await q.get(created.job_id)
    assert record is not None and record.payload == b"v2"
    wrong = await q.rewrite(created.job_id, (JobState.COMPLETED,), b"v2", b"v3")
    assert wrong.status == Status.WRONG_STATE
    missing = await q.rewrite("123", queued, b"", b"x")
    assert missing.status == Status.JOB_NOT_FOUND


async def _upload(redis: Redis, q: Queue, upload_id: str) -> str:
    key = f"{q.keys.prefix}up:{upload_id}"
    await redis.hset(key, mapping={"st": "r", "sz": 3})
    await redis.zadd(f"{q.keys.prefix}uploads", {upload_id: 1})
    return key


async def test_unfinished_jobs_pin_their_uploads_and_finishing_releases_them(
    redis: Redis,
) -> None:
    q = await make_queue(redis, upload_ttl_s=3600)
    key = await _upload(redis, q, "upload-aaaa")
    uploads = f"{q.keys.prefix}uploads"
    pinned = NewJob("6", 0, 0, 0, "", b"photo", upload_ids=("upload-aaaa",))
    [first, second] = await q.enqueue([pinned, pinned])
    assert await redis.hget(key, "refs") == b"2"
    assert await redis.zscore(uploads, "upload-aaaa") == float("inf")
    await q.cancel(first.job_id)
    assert await redis.hget(key, "refs") == b"1"
    assert await redis.zscore(uploads, "upload-aaaa") == float("inf")
    [lease] = await drain(q)
    assert lease.job_id == second.job_id
    await q.fail(lease, "Bad Request: wrong file identifier/HTTP URL specified")
    assert await redis.hget(key, "refs") is None
    trim_at = await redis.zscore(uploads, "upload-aaaa")
    assert trim_at is not None and trim_at != float("inf")
    # Retried: unfinished again, pinned again.
    await q.requeue(second.job_id)
    assert await redis.hget(key, "refs") == b"1"
    assert await redis.zscore(uploads, "upload-aaaa") == float("inf")
