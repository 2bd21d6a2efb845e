"""Bulk and scheduled operations end to end: SendBatch validate_only, SendRequest.send_at,
RetryJobs/CancelJobs by filter, and the client's wrappers for them."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from notigate import bulk
from notigate.app import Gateway
from notigate.cli import main
from notigate.embedded import EmbeddedValkey
from notigate.queue import JobState
from notigate.simulator import BotApiSimulator
from notigate_client import (
    AsyncNotificationClient,
    InvalidArgumentError,
    NotificationClient,
    job_state,
    pb,
    state_name,
)
from tests.conftest import Stub, gateway_settings, running_gateway, wait_state
from tests.test_server import field_violations

WAITING, DELAYED = pb.JOB_STATE_WAITING, pb.JOB_STATE_DELAYED
COMPLETED, FAILED, CANCELLED = pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED
HOUR = Duration(seconds=3600)


def msg(chat: str, text: str = "hi", **fields: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text=text, **fields)  # type: ignore[arg-type]


def at(offset_s: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() + offset_s) * 1e9))
    return ts


def by_age(ids: list[str]) -> list[str]:
    return sorted(ids, key=int)


async def states(stub: Stub, ids: list[str]) -> list[int]:
    return [(await stub.GetJob(pb.GetJobRequest(job_id=i))).job.state for i in ids]


async def next_message(pubsub: PubSub, timeout_s: float) -> object:
    """The next published message, or None after ``timeout_s`` (get_message also returns
    None for the ignored subscribe confirmation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is not None:
            return message
    return None


async def send_all(stub: Stub, *requests: pb.SendRequest) -> list[str]:
    return [(await stub.Send(r)).job_id for r in requests]


@pytest.fixture
async def held(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> AsyncIterator[tuple[Gateway, Stub]]:
    """A gateway where a chat takes one message per 10 minutes: after one delivery, the
    chat's next messages stay waiting for the whole test."""
    settings = gateway_settings(valkey, simulator)
    limits = dataclasses.replace(
        settings.limits, private_window_ms=600_000, group_rate=1, group_window_ms=600_000
    )
    async with running_gateway(settings.replace(limits=limits)) as pair:
        yield pair


async def fill_window(stub: Stub, chat: str) -> None:
    [job_id] = await send_all(stub, msg(chat, "first"))
    await wait_state(stub, job_id, COMPLETED)


# -- SendBatch validate_only ---------------------------------------------------------


async def test_validate_only_batch_stores_nothing(gateway: tuple[Gateway, Stub]) -> None:
    _, stub = gateway
    batch = [msg("61", "a", idempotency_key="va-1"), msg("62", "b", delay=HOUR)]
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=batch, validate_only=True))
    assert list(reply.results) == []
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.total_enqueued, stats.waiting, stats.delayed, stats.total_duplicates) == (
        0,
        0,
        0,
        0,
    )
    assert not (await stub.ListJobs(pb.ListJobsRequest())).jobs
    # The idempotency key was not taken: the real call creates both jobs.
    real = await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    assert [r.duplicate for r in real.results] == [False, False]
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 2


async def test_validate_only_batch_reports_what_a_real_call_does(
    gateway: tuple[Gateway, Stub],
) -> None:
    _, stub = gateway
    both = msg("3", "x", delay=HOUR, send_at=at(60))
    batch = [msg("1", "ok"), msg("nope", ""), msg("2", "x", priority=11), both]
    errors = []
    for validate_only in (True, False):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SendBatch(pb.SendBatchRequest(messages=batch, validate_only=validate_only))
        errors.append(info.value)
    checked, real = errors
    assert checked.code() == real.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert checked.details() == real.details()
    assert field_violations(checked) == field_violations(real)
    assert set(field_violations(checked)) == {
        "messages[1].chat_id",
        "messages[1].text",
        "messages[2].priority",
        "messages[3].send_at",
    }
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 0


# -- send_at -------------------------------------------------------------------------


async def test_send_at_in_the_future_is_delayed_until_then(gateway: tuple[Gateway, Stub]) -> None:
    _, stub = gateway
    when = at(3600)
    when.nanos = 250_000_001  # the due time rounds up to the next millisecond
    [job_id] = await send_all(stub, msg("63", send_at=when))
    job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
    assert job.state == DELAYED
    assert job.scheduled_time.ToMilliseconds() == when.seconds * 1000 + 251
    assert job.request.send_at == when
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.delayed, stats.waiting) == (1, 0)


async def test_send_at_soon_is_delivered_no_earlier(gateway: tuple[Gateway, Stub]) -> None:
    _, stub = gateway
    when = at(1.0)
    [job_id] = await send_all(stub, msg("64", send_at=when))
    job = await wait_state(stub, job_id, COMPLETED)
    assert job.deliver_time.ToMilliseconds() >= when.ToMilliseconds()


async def test_send_at_in_the_past_means_now(gateway: tuple[Gateway, Stub]) -> None:
    _, stub = gateway
    [job_id] = await send_all(stub, msg("65", send_at=at(-86_400)))
    job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
    assert job.state != DELAYED
    await wait_state(stub, job_id, COMPLETED)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"send_at": at(60), "delay": HOUR}, "send_at"),
        ({"send_at": at(60), "delay": Duration()}, "send_at"),
        ({"send_at": at(400 * 86_400)}, "send_at"),
        ({"send_at": Timestamp(seconds=10, nanos=-1)}, "send_at.nanos"),
        ({"send_at": Timestamp(seconds=300_000_000_000)}, "send_at.seconds"),
    ],
)
async def test_bad_send_at_is_refused(
    gateway: tuple[Gateway, Stub], fields: dict[str, object], field: str
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(msg("66", **fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(info.value)
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 0


# -- RetryJobs / CancelJobs ----------------------------------------------------------


async def test_retry_jobs_of_one_chat(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator, redis: Redis
) -> None:
    gw, stub = gateway
    simulator.block_chat("71")
    simulator.block_chat("72")
    mine = await send_all(stub, *(msg("71", f"m{i}") for i in range(3)))
    others = await send_all(stub, msg("72", "o1"), msg("72", "o2"))
    for job_id in mine + others:
        await wait_state(stub, job_id, FAILED)
    before = await stub.GetStats(pb.GetStatsRequest())

    flt = pb.JobFilter(chat_id="71")
    counted = await stub.RetryJobs(pb.RetryJobsRequest(filter=flt, validate_only=True))
    assert counted.count == 3 and list(counted.sample_job_ids) == by_age(mine)
    after = await stub.GetStats(pb.GetStatsRequest())
    assert (after.failed, after.waiting, after.total_enqueued) == (5, 0, 5)
    assert after.total_failed == before.total_failed
    assert await states(stub, mine + others) == [FAILED] * 5

    simulator.reset()  # the chats accept messages again
    await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="71"))  # and 71 is reachable
    assert gw.queue is not None
    async with redis.pubsub(ignore_subscribe_messages=True) as wakes:
        await wakes.subscribe(gw.queue.keys.wake_channel)
        done = await stub.RetryJobs(pb.RetryJobsRequest(filter=flt))
        assert done.count == 3 and list(done.sample_job_ids) == by_age(mine)
        # Every replica's workers are woken, once for the whole call (not once per job).
        assert await next_message(wakes, 10) is not None
        assert await next_message(wakes, 0.3) is None
    # Delivered without any other call: the retry woke the dispatcher.
    for job_id in mine:
        job = await wait_state(stub, job_id, COMPLETED)
        assert job.attempts == 0
    assert await states(stub, others) == [FAILED, FAILED]

    # No chat: every failed job; the state may be named or left unset. Chat 72 is reachable
    # again first, or its retried jobs would fail at once as suppressed.
    await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="72"))
    request = pb.RetryJobsRequest(filter=pb.JobFilter(state=FAILED))
    rest = await stub.RetryJobs(request)
    assert rest.count == 2 and list(rest.sample_job_ids) == by_age(others)
    for job_id in others:
        await wait_state(stub, job_id, COMPLETED)
    assert (await stub.RetryJobs(pb.RetryJobsRequest())).count == 0


async def test_cancel_jobs_by_chat_and_state(held: tuple[Gateway, Stub]) -> None:
    _, stub = held
    await fill_window(stub, "81")
    waiting = await send_all(stub, msg("81", "w1"), msg("81", "w2"))
    delayed = await send_all(stub, msg("81", "d1", send_at=at(3600)), msg("81", "d2", delay=HOUR))
    theirs = await send_all(stub, msg("82", "x", delay=HOUR), msg("82", "y", delay=HOUR))
    assert await states(stub, waiting + delayed) == [WAITING, WAITING, DELAYED, DELAYED]

    flt = pb.JobFilter(chat_id="81")
    counted = await stub.CancelJobs(pb.CancelJobsRequest(filter=flt, validate_only=True))
    assert counted.count == 4 and list(counted.sample_job_ids) == by_age(waiting + delayed)
    assert await states(stub, waiting + delayed) == [WAITING, WAITING, DELAYED, DELAYED]
    assert (await stub.GetStats(pb.GetStatsRequest())).total_cancelled == 0

    only_waiting = pb.JobFilter(chat_id="81", state=WAITING)
    done = await stub.CancelJobs(pb.CancelJobsRequest(filter=only_waiting))
    assert done.count == 2 and list(done.sample_job_ids) == waiting
    assert await states(stub, waiting + delayed) == [CANCELLED, CANCELLED, DELAYED, DELAYED]

    done = await stub.CancelJobs(pb.CancelJobsRequest(filter=flt))
    assert done.count == 2 and list(done.sample_job_ids) == delayed
    assert (await stub.CancelJobs(pb.CancelJobsRequest(filter=flt))).count == 0

    assert await states(stub, theirs) == [DELAYED, DELAYED]
    everything = await stub.CancelJobs(pb.CancelJobsRequest(validate_only=True))
    assert everything.count == 2 and list(everything.sample_job_ids) == theirs
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.cancelled, stats.total_cancelled, stats.delayed) == (4, 4, 2)


async def test_cancel_jobs_matches_requested_and_current_chat(
    held: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = held
    simulator.migrate_chat("-4011", "-1004011")
    await fill_window(stub, "-4011")  # migrates, then fills the supergroup's window
    old = await send_all(stub, msg("-4011", "a"), msg("-4011", "b"))
    new = await send_all(stub, msg("-1004011", "c"))
    for job_id in old + new:
        job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
        assert job.state == WAITING and job.chat_id == "-1004011"

    def request(chat: str, validate_only: bool = True) -> pb.CancelJobsRequest:
        return pb.CancelJobsRequest(filter=pb.JobFilter(chat_id=chat), validate_only=validate_only)

    by_old = await stub.CancelJobs(request("-4011"))
    assert by_old.count == 2 and list(by_old.sample_job_ids) == old
    by_new = await stub.CancelJobs(request("-1004011"))
    assert by_new.count == 3 and list(by_new.sample_job_ids) == old + new

    assert (await stub.CancelJobs(request("-4011", validate_only=False))).count == 2
    assert await states(stub, old + new) == [CANCELLED, CANCELLED, WAITING]


@pytest.mark.parametrize("state", [WAITING, DELAYED, pb.JOB_STATE_ACTIVE, COMPLETED, CANCELLED, 42])
async def test_retry_jobs_refuses_other_states(gateway: tuple[Gateway, Stub], state: int) -> None:
    _, stub = gateway
    request = pb.RetryJobsRequest(filter=pb.JobFilter(state=state))  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RetryJobs(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "JOB_STATE_FAILED" in field_violations(info.value)["filter.state"]


@pytest.mark.parametrize("state", [FAILED, pb.JOB_STATE_ACTIVE, COMPLETED, CANCELLED, 42])
async def test_cancel_jobs_refuses_other_states(gateway: tuple[Gateway, Stub], state: int) -> None:
    _, stub = gateway
    [job_id] = await send_all(stub, msg("83", delay=HOUR))
    request = pb.CancelJobsRequest(filter=pb.JobFilter(state=state))  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelJobs(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter.state" in field_violations(info.value)
    assert await states(stub, [job_id]) == [DELAYED]


@pytest.mark.parametrize("chat", ["not a chat", "0", "@ab"])
async def test_bulk_filters_check_the_chat_id(gateway: tuple[Gateway, Stub], chat: str) -> None:
    _, stub = gateway
    flt = pb.JobFilter(chat_id=chat)
    for call in (
        stub.RetryJobs(pb.RetryJobsRequest(filter=flt)),
        stub.CancelJobs(pb.CancelJobsRequest(filter=flt, validate_only=True)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert "filter.chat_id" in field_violations(info.value)


async def test_bulk_walks_in_pages_and_bounds_each_call(gateway: tuple[Gateway, Stub]) -> None:
    gw, stub = gateway
    assert gw.queue is not None
    # One batch: every job has the same due time, so paging runs on ties (byte-ordered
    # ids), and each page's cursor job is cancelled before the next page is read.
    batch = [msg("91" if i % 5 < 3 else "92", f"m{i}", delay=HOUR) for i in range(50)]
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    ids = [r.job_id for r in reply.results]
    mine = [i for i, m in zip(ids, batch, strict=True) if m.chat_id == "91"]
    assert len(mine) == 30

    delayed = [JobState.DELAYED]
    counted = await bulk.cancel_jobs(gw.queue, delayed, "91", validate_only=True, page_size=7)
    assert counted.count == 30 and counted.sample == by_age(mine)[:10]
    acted: list[str] = []
    counts = []
    for _ in range(4):
        outcome = await bulk.cancel_jobs(
            gw.queue, delayed, "91", validate_only=False, limit=12, page_size=7
        )
        counts.append(outcome.count)
        assert outcome.sample == by_age(outcome.sample) and set(outcome.sample) <= set(mine)
        acted += outcome.sample
    assert counts == [12, 12, 6, 0]
    assert len(set(acted)) == len(acted)  # no job acted on twice
    assert await states(stub, mine) == [CANCELLED] * 30
    assert set(await states(stub, [i for i in ids if i not in mine])) == {DELAYED}


# -- the Python client and the CLI ---------------------------------------------------


async def test_async_client_bulk_send_at_and_state_names(gateway: tuple[Gateway, Stub]) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(f"127.0.0.1:{gw.port}") as client:
        when = datetime.now(UTC) + timedelta(hours=2)
        job_id = (await client.send("84", "later", send_at=when)).job_id
        job = await client.get_job(job_id)
        assert state_name(job) == "delayed" and state_name(job.state) == "delayed"
        assert job.scheduled_time.ToDatetime(tzinfo=UTC) >= when - timedelta(milliseconds=1)
        assert [j.job_id async for j in client.list_jobs(state="delayed")] == [job_id]
        assert [j.job_id async for j in client.list_jobs(state="JOB_STATE_WAITING")] == []

        counted = await client.cancel_jobs(chat_id=84, validate_only=True)
        assert (counted.count, list(counted.sample_job_ids)) == (1, [job_id])
        done = await client.cancel_jobs(state="delayed", chat_id="84")
        assert done.count == 1 and state_name(await client.get_job(job_id)) == "cancelled"
        assert (await client.retry_jobs(validate_only=True)).count == 0
        with pytest.raises(InvalidArgumentError) as info:
            await client.retry_jobs(state="waiting")
        assert [field for field, _ in info.value.violations] == ["filter.state"]
        with pytest.raises(ValueError, match="timezone"):
            await client.send("84", "x", send_at=datetime(2030, 1, 1))


async def test_sync_client_bulk_and_send_at(gateway: tuple[Gateway, Stub]) -> None:
    gw, stub = gateway

    def run() -> tuple[str, int, list[str]]:
        with NotificationClient(f"127.0.0.1:{gw.port}") as client:
            zone = timezone(timedelta(hours=5))
            job_id = client.send("85", "later", send_at=datetime.now(zone) + timedelta(hours=1))
            counted = client.cancel_jobs("delayed", 85, validate_only=True).count
            client.cancel_jobs(chat_id="85")
            listed = [j.job_id for j in client.list_jobs("cancelled")]
            return job_id.job_id, counted, listed

    job_id, counted, listed = await asyncio.to_thread(run)
    assert counted == 1 and listed == [job_id]
    assert await states(stub, [job_id]) == [CANCELLED]


def test_state_names_and_values() -> None:
    assert job_state("failed") == job_state("FAILED") == job_state("JOB_STATE_FAILED") == FAILED
    assert job_state(pb.JOB_STATE_WAITING) == WAITING
    assert state_name(pb.Job(state=COMPLETED)) == "completed"
    assert state_name(0) == "unspecified" and state_name(99) == "unknown(99)"  # type: ignore[arg-type]
    for bad in ("unspecified", "JOB_STATE_UNSPECIFIED", "done", ""):
        with pytest.raises(ValueError, match="unknown job state"):
            job_state(bad)


async def test_cli_send_at(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    when = (datetime.now(UTC) + timedelta(hours=3)).astimezone(timezone(timedelta(hours=1)))
    text = when.replace(microsecond=0).isoformat()  # e.g. 2026-12-01T13:00:00+01:00
    argv = ["send", "--target", f"127.0.0.1:{gw.port}", "--chat", "86", "--text", "x"]
    code = await asyncio.to_thread(main, [*argv, "--at", text], {})
    out = capsys.readouterr().out
    assert code == 0
    job = (await stub.GetJob(pb.GetJobRequest(job_id=out.strip()))).job
    assert job.state == DELAYED
    assert job.scheduled_time.ToDatetime(tzinfo=UTC) == datetime.fromisoformat(text)

    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(main, [*argv, "--at", "next tuesday"], {})
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(main, [*argv, "--at", text, "--delay", "1m"], {})
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
