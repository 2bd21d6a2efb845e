"""The event stream: every state change appended by the script that makes it, and
WatchEvents serving it from a cursor, with filters and gaps."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.queue import QueueKeys
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for, wait_state

WAITING, ACTIVE, COMPLETED = pb.JOB_STATE_WAITING, pb.JOB_STATE_ACTIVE, pb.JOB_STATE_COMPLETED
DELAYED, FAILED, CANCELLED = pb.JOB_STATE_DELAYED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED


def msg(chat: str = "42", text: str = "hi", **fields: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text=text, **fields)  # type: ignore[arg-type]


async def take(
    stub: Stub, count: int, timeout_s: float = 20, **request: object
) -> tuple[list[pb.WatchEventsResponse], str]:
    """The first ``count`` responses of a watch and its initial-metadata cursor."""
    call = stub.WatchEvents(pb.WatchEventsRequest(**request), timeout=timeout_s)  # type: ignore[arg-type]
    start = dict(await call.initial_metadata())["x-notigate-cursor"]
    out: list[pb.WatchEventsResponse] = []
    async for response in call:
        out.append(response)
        if len(out) == count:
            break
    call.cancel()
    return out, start


async def watching(stub: Stub, **request: object) -> AsyncIterator[pb.WatchEventsResponse]:
    async for response in stub.WatchEvents(pb.WatchEventsRequest(**request)):  # type: ignore[arg-type]
        yield response


async def test_every_state_change_of_a_job_is_observed_in_order(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    call = stub.WatchEvents(pb.WatchEventsRequest(), timeout=20)
    await call.initial_metadata()
    job_id = (await stub.Send(msg("42"))).job_id
    events = []
    async for response in call:
        events.append(response.event)
        if response.event.state == COMPLETED:
            break
    call.cancel()
    assert [e.state for e in events] == [WAITING, ACTIVE, COMPLETED]
    assert {e.job_id for e in events} == {job_id}
    assert all(e.chat_id == "42" and e.kind == pb.JOB_KIND_SEND for e in events)
    done = events[-1]
    job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
    assert done.telegram_message_id == job.telegram_message_id != 0
    assert done.time.ToMilliseconds() == job.deliver_time.ToMilliseconds()
    cursors = [e.cursor for e in events]
    assert len(set(cursors)) == 3


async def test_retries_failures_cancels_and_requeues_are_events(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.block_chat("13")
    failing = (await stub.Send(msg("13"))).job_id
    await wait_state(stub, failing, FAILED)
    later = (await stub.Send(msg("14", delay={"seconds": 3600}))).job_id
    await stub.CancelJob(pb.CancelJobRequest(job_id=later))
    simulator.unblock_chat("13")
    await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="13"))
    await stub.RetryJob(pb.RetryJobRequest(job_id=failing))
    await wait_state(stub, failing, COMPLETED)
    got, _ = await take(stub, 8, start_cursor="0-0")
    seen = [(r.event.job_id, r.event.state) for r in got]
    assert seen == [
        (failing, WAITING),
        (failing, ACTIVE),
        (failing, FAILED),
        (later, DELAYED),
        (later, CANCELLED),
        (failing, WAITING),
        (failing, ACTIVE),
        (failing, COMPLETED),
    ]
    failed = got[2].event
    assert failed.error == "Forbidden: bot was blocked by the user" and failed.attempts == 1
    assert not any(r.gap for r in got)


async def test_resume_from_a_cursor_gives_exactly_the_events_after_it(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    ids = [
        r.job_id
        for r in (
            await stub.SendBatch(
                pb.SendBatchRequest(messages=[msg(str(100 + i)) for i in range(5)])
            )
        ).results
    ]
    for job_id in ids:
        await wait_state(stub, job_id, COMPLETED)
    everything, _ = await take(stub, 15, start_cursor="0-0")
    middle = everything[6].event.cursor
    rest, start = await take(stub, 8, start_cursor=middle)
    assert start == middle
    assert [r.event for r in rest] == [r.event for r in everything[7:]]


async def test_an_empty_cursor_streams_only_new_events_and_filters_apply(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    old = (await stub.Send(msg("7"))).job_id
    await wait_state(stub, old, COMPLETED)
    call = stub.WatchEvents(pb.WatchEventsRequest(chat_id="8", states=[COMPLETED]), timeout=20)
    await call.initial_metadata()
    await stub.Send(msg("7"))
    wanted = (await stub.Send(msg("8"))).job_id
    first = await call.read()
    call.cancel()
    assert isinstance(first, pb.WatchEventsResponse)
    assert (first.event.job_id, first.event.state) == (wanted, COMPLETED)
    by_job, _ = await take(stub, 1, start_cursor="0-0", job_ids=[old], states=[COMPLETED])
    assert by_job[0].event.job_id == old


async def test_a_trimmed_cursor_yields_a_gap(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, events_max=1000)
    async with running_gateway(settings) as (_, stub):
        first = (await stub.Send(msg("9", delay={"seconds": 3600}))).job_id
        got, _ = await take(stub, 1, start_cursor="0-0", job_ids=[first])
        trimmed = got[0].event.cursor
        # Delayed jobs: one event each, nothing delivered meanwhile.
        for _ in range(3):
            batch = [msg("9", delay={"seconds": 3600}) for _ in range(1000)]
            await stub.SendBatch(pb.SendBatchRequest(messages=batch))
        key = QueueKeys.for_queue(settings.queue_name).events
        oldest = (await redis.xrange(key, "-", "+", count=1))[0][0].decode()
        assert oldest != trimmed
        after_gap, _ = await take(stub, 2, start_cursor=trimmed)
        assert after_gap[0].gap and after_gap[0].event.cursor == oldest
        assert not after_gap[1].gap
        # The cursor of an event still kept: no gap.
        kept, _ = await take(stub, 1, start_cursor=oldest)
        assert not kept[0].gap


async def test_events_off_appends_nothing(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, events_max=0, queue_name="quiet")
    async with running_gateway(settings) as (_, stub):
        job_id = (await stub.Send(msg("5"))).job_id
        await wait_state(stub, job_id, COMPLETED)
    assert await redis.exists(QueueKeys.for_queue("quiet").events) == 0


async def test_several_watchers_see_the_same_events(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    calls = [stub.WatchEvents(pb.WatchEventsRequest(), timeout=20) for _ in range(3)]
    for call in calls:
        await call.initial_metadata()
    job_id = (await stub.Send(msg("6"))).job_id

    async def three(call: grpc.aio.UnaryStreamCall) -> list[tuple[str, int]]:  # type: ignore[type-arg]
        out = []
        async for response in call:
            out.append((response.event.job_id, response.event.state))
            if len(out) == 3:
                break
        call.cancel()
        return out

    seen = await asyncio.gather(*(three(c) for c in calls))
    assert seen == [[(job_id, WAITING), (job_id, ACTIVE), (job_id, COMPLETED)]] * 3


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"start_cursor": "yesterday"}, "start_cursor"),
        ({"job_ids": ["x1"]}, "job_ids[0]"),
        ({"job_ids": [str(i + 1) for i in range(1001)]}, "job_ids"),
        ({"states": [0]}, "states[0]"),
        ({"chat_id": "not a chat"}, "chat_id"),
    ],
)
async def test_bad_watch_requests_are_invalid_argument(
    gateway: tuple[Gateway, Stub], request_fields: dict[str, object], field: str
) -> None:
    _, stub = gateway
    call = stub.WatchEvents(pb.WatchEventsRequest(**request_fields), timeout=10)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == [field]


async def test_a_watcher_on_one_replica_sees_the_jobs_of_another(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator)
    async with running_gateway(settings) as (_, first), running_gateway(settings) as (_, second):
        call = second.WatchEvents(pb.WatchEventsRequest(states=[COMPLETED]), timeout=20)
        await call.initial_metadata()
        job_id = (await first.Send(msg("31"))).job_id
        response = await call.read()
        call.cancel()
        assert isinstance(response, pb.WatchEventsResponse)
        assert response.event.job_id == job_id


async def test_a_watcher_that_reads_nothing_does_not_hold_up_delivery(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.configure(enforce_limits=False)
    settings = gateway_settings(valkey, simulator)
    settings = settings.replace(limits=dataclasses.replace(settings.limits, global_rate=100_000))
    async with running_gateway(settings) as (_, stub):
        # Opened and never read: its stream fills gRPC's flow-control window and stops there.
        stalled = stub.WatchEvents(pb.WatchEventsRequest(), timeout=60)
        await stalled.initial_metadata()
        batch = [msg(str(2000 + i)) for i in range(1000)]
        await stub.SendBatch(pb.SendBatchRequest(messages=batch))

        async def all_sent() -> bool:
            stats = await stub.GetStats(pb.GetStatsRequest())
            return stats.total_sent == len(batch)

        await wait_for(all_sent, timeout_s=60)
        stalled.cancel()


async def test_an_albums_completed_event_carries_every_message_id(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    items = [
        pb.MediaGroupItem(
            media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, url=f"https://example.com/{i}.jpg")
        )
        for i in range(3)
    ]
    request = pb.SendRequest(chat_id="-1009", media_group=pb.MediaGroup(items=items))
    job_id = (await stub.Send(request)).job_id
    job = await wait_state(stub, job_id, COMPLETED)
    got, _ = await take(stub, 1, start_cursor="0-0", states=[COMPLETED])
    done = got[0].event
    assert list(done.telegram_message_ids) == list(job.telegram_message_ids)
    assert len(done.telegram_message_ids) == 3
    assert done.telegram_message_id == job.telegram_message_ids[0]
