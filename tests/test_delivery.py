"""End to end: gRPC Send -> Redis queue -> workers -> Bot API simulator (limits enforced)."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey
from notigate.queue import QueueKeys
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import (
    Stub,
    gateway_settings,
    running_gateway,
    wait_for,
    wait_state,
)

COMPLETED, FAILED = pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED


def msg(chat: str, text: str = "hi", **fields: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text=text, **fields)  # type: ignore[arg-type]


def max_in_window(times: list[float], window_s: float) -> int:
    """The most events inside any sliding window of ``window_s``."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_send_is_delivered_with_every_field(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    request = msg(
        "42",
        "<b>Order #1</b> shipped",
        parse_mode=pb.PARSE_MODE_HTML,
        disable_notification=True,
        protect_content=True,
        message_thread_id=7,
        reply_markup=pb.InlineKeyboardMarkup(
            rows=[
                pb.InlineKeyboardRow(
                    buttons=[pb.InlineKeyboardButton(text="Track", url="https://example.com/t/1")]
                )
            ]
        ),
        link_preview=pb.LinkPreviewOptions(is_disabled=True),
    )
    reply = await stub.Send(request)
    assert reply.job_id and not reply.duplicate
    job = await wait_state(stub, reply.job_id, COMPLETED)
    [sent] = simulator.messages
    assert job.telegram_message_id == sent.message_id
    assert job.HasField("deliver_time") and job.attempts == 0
    assert job.request == request
    assert sent.chat_id == "42" and sent.text == "<b>Order #1</b> shipped"
    assert sent.params["parse_mode"] == "HTML"
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://example.com/t/1"


async def test_priority_order_and_fifo_within_priority(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    gw.dispatcher.pause()  # type: ignore[attr-defined]
    plan = [("p0-a", 0), ("p5-a", 5), ("p0-b", 0), ("p10", 10), ("p5-b", 5)]
    batch = pb.SendBatchRequest(
        messages=[msg(str(100 + i), text, priority=p) for i, (text, p) in enumerate(plan)]
    )
    await stub.SendBatch(batch)
    gw.dispatcher.resume()  # type: ignore[attr-defined]
    await wait_for(lambda: _count(simulator, 5))
    assert [m.text for m in simulator.messages] == ["p10", "p5-a", "p5-b", "p0-a", "p0-b"]


async def _count(sim: BotApiSimulator, n: int) -> bool:
    return len(sim.messages) >= n


async def test_delay_holds_a_message_until_due(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    delayed = await stub.Send(msg("1", "later", delay=Duration(nanos=400_000_000)))
    now = await stub.Send(msg("2", "now"))
    await wait_state(stub, now.job_id, COMPLETED)
    job = (await stub.GetJob(pb.GetJobRequest(job_id=delayed.job_id))).job
    assert job.state == pb.JOB_STATE_DELAYED and job.HasField("scheduled_time")
    job = await wait_state(stub, delayed.job_id, COMPLETED)
    assert job.deliver_time.ToMilliseconds() >= job.scheduled_time.ToMilliseconds()


async def test_global_and_per_chat_limits_hold_with_zero_429s(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator).replace(
        limits=gateway_settings(valkey, simulator).limits.__class__(global_rate=10)
    )
    async with running_gateway(settings) as (_, stub):
        private = [msg(str(1000 + i), f"p{i}") for i in range(25)]
        same_chat = [msg("77", f"c{i}") for i in range(3)]
        group = [msg("-100555", f"g{i}") for i in range(4)]
        await stub.SendBatch(pb.SendBatchRequest(messages=private + same_chat + group))
        await wait_for(lambda: _count(simulator, 32))
    assert simulator.count_status(429) == 0
    # The windows hold on the sends' lease times (the ACTIVE events, Redis's clock): what
    # the simulator receives adds the machine's scheduling jitter on top.
    key = QueueKeys.for_queue(settings.queue_name).events
    leases = [
        (fields[b"c"].decode(), int(fields[b"t"]) / 1000)
        for _, fields in await redis.xrange(key)
        if fields[b"s"] == b"a"
    ]
    assert len(leases) == 32
    assert max_in_window([t for _, t in leases], 1.0) <= 10
    assert max_in_window([t for chat, t in leases if chat == "77"], 1.0) == 1


async def test_busy_chat_does_not_block_others(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    await stub.SendBatch(pb.SendBatchRequest(messages=[msg("5", f"a{i}") for i in range(100)]))
    b = await stub.Send(msg("6", "b"))
    await wait_state(stub, b.job_id, COMPLETED)
    texts = [m.text for m in simulator.messages]
    # Chat 5 may send once per second; B went out while 5 still had 99 queued.
    assert texts.index("b") <= 2 and sum(t.startswith("a") for t in texts) <= 2


async def test_5xx_is_retried_with_backoff_then_delivered(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.configure(error_rate=1.0)
    reply = await stub.Send(msg("8"))

    async def retried_twice() -> bool:
        job = (await stub.GetJob(pb.GetJobRequest(job_id=reply.job_id))).job
        return job.attempts >= 2

    await wait_for(retried_twice)
    simulator.configure(error_rate=0.0)
    job = await wait_state(stub, reply.job_id, COMPLETED)
    assert job.attempts >= 2 and job.last_error
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_retried >= 2 and stats.total_sent == 1


async def test_5xx_until_attempts_used_up_fails_the_job(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.configure(error_rate=1.0)
    reply = await stub.Send(msg("9", max_attempts=3))
    job = await wait_state(stub, reply.job_id, FAILED)
    assert job.attempts == 3
    assert len([r for r in simulator.requests if r.chat_id == "9"]) == 3


async def test_429_pauses_the_chat_without_using_an_attempt(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.rate_limit_storm(seconds=1.0, retry_after=1)
    reply = await stub.Send(msg("11"))
    job = await wait_state(stub, reply.job_id, COMPLETED)
    assert job.attempts == 0
    requests = [r for r in simulator.requests if r.chat_id == "11"]
    assert requests[0].status == 429 and requests[-1].status == 200
    # Nothing was sent to the chat before retry_after had passed.
    assert requests[1].received_at - requests[0].received_at >= 1.0
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_rate_limited >= 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("block", "Forbidden: bot was blocked by the user"),
        ("missing", "Bad Request: chat not found"),
    ],
)
async def test_permanent_errors_fail_at_once(
    gateway: tuple[object, Stub], simulator: BotApiSimulator, setup: str, expected: str
) -> None:
    _, stub = gateway
    if setup == "block":
        simulator.block_chat("12")
    else:
        simulator.configure(missing_chats=frozenset({"12"}))
    reply = await stub.Send(msg("12"))
    job = await wait_state(stub, reply.job_id, FAILED)
    assert job.last_error == expected and job.attempts == 1
    assert len([r for r in simulator.requests if r.chat_id == "12"]) == 1


async def test_migrated_group_is_followed(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.migrate_chat("-4001", "-1004001")
    first = await stub.Send(msg("-4001", "one"))
    job = await wait_state(stub, first.job_id, COMPLETED)
    assert job.chat_id == "-1004001" and job.request.chat_id == "-4001"
    second = await stub.Send(msg("-4001", "two"))
    await wait_state(stub, second.job_id, COMPLETED)
    assert [m.chat_id for m in simulator.messages] == ["-1004001", "-1004001"]
    # The mapping is remembered: the second send went straight to the new chat.
    assert len([r for r in simulator.requests if r.chat_id == "-4001"]) == 1


async def test_migrated_jobs_wait_for_the_new_chats_window(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    # Groups: 2 sends per 1.5 s. The new supergroup already has 2 jobs of its own, so the
    # old group's 2 must not reach it until its window opens again.
    settings = gateway_settings(valkey, simulator)
    settings = settings.replace(
        limits=dataclasses.replace(settings.limits, group_rate=2, group_window_ms=1500)
    )
    simulator.migrate_chat("-4002", "-1004002")
    async with running_gateway(settings) as (_, stub):
        batch = [msg("-1004002", "new 1"), msg("-1004002", "new 2")]
        batch += [msg("-4002", "old 1"), msg("-4002", "old 2")]
        reply = await stub.SendBatch(pb.SendBatchRequest(messages=batch))
        for result in reply.results:
            job = await wait_state(stub, result.job_id, COMPLETED)
            assert job.attempts == 0 and job.chat_id == "-1004002"  # no attempt used
    assert sorted(m.text for m in simulator.messages) == ["new 1", "new 2", "old 1", "old 2"]
    assert {m.chat_id for m in simulator.messages} == {"-1004002"}
    assert max_in_window([m.received_at for m in simulator.messages], 1.5) == 2
    # Only jobs already leased when the migration was found were tried at the old id.
    assert 1 <= len([r for r in simulator.requests if r.chat_id == "-4002"]) <= 2


async def test_idempotent_send_creates_one_job(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    a = await stub.Send(msg("13", idempotency_key="order-7"))
    b = await stub.Send(msg("13", idempotency_key="order-7"))
    assert a.job_id == b.job_id and not a.duplicate and b.duplicate
    await wait_state(stub, a.job_id, COMPLETED)
    await asyncio.sleep(0.2)
    assert len(simulator.messages) == 1


async def test_cancel_before_delivery_only(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    later = await stub.Send(msg("14", delay=Duration(seconds=60)))
    cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=later.job_id))
    assert cancelled.job.state == pb.JOB_STATE_CANCELLED
    done = await stub.Send(msg("15"))
    await wait_state(stub, done.job_id, COMPLETED)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelJob(pb.CancelJobRequest(job_id=done.job_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelJob(pb.CancelJobRequest(job_id="99999"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_retry_job_requeues_a_failed_job(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.block_chat("16")
    reply = await stub.Send(msg("16"))
    await wait_state(stub, reply.job_id, FAILED)
    simulator.reset()
    # The 403 suppressed the chat: a retried job would fail again without a send.
    await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="16"))
    retried = await stub.RetryJob(pb.RetryJobRequest(job_id=reply.job_id))
    assert retried.job.state in (pb.JOB_STATE_WAITING, pb.JOB_STATE_ACTIVE, pb.JOB_STATE_COMPLETED)
    await wait_state(stub, reply.job_id, COMPLETED)


async def test_stats_and_list_jobs(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.block_chat("21")
    ok = await stub.Send(msg("20"))
    bad = await stub.Send(msg("21"))
    later = await stub.Send(msg("22", delay=Duration(seconds=60)))
    await wait_state(stub, ok.job_id, COMPLETED)
    await wait_state(stub, bad.job_id, FAILED)
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.waiting, stats.active, stats.delayed, stats.completed, stats.failed) == (
        0,
        0,
        1,
        1,
        1,
    )
    assert (stats.total_enqueued, stats.total_sent, stats.total_failed) == (3, 1, 1)
    failed = await stub.ListJobs(pb.ListJobsRequest(state=FAILED))
    assert [j.job_id for j in failed.jobs] == [bad.job_id]
    everything: list[str] = []
    token = ""
    while True:
        page = await stub.ListJobs(pb.ListJobsRequest(page_size=1, page_token=token))
        everything += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert sorted(everything) == sorted([ok.job_id, bad.job_id, later.job_id])


async def test_wakes_while_every_send_slot_is_busy_do_not_stall_delivery(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.configure(latency_s=0.2)
    settings = gateway_settings(valkey, simulator, concurrency=2)
    async with running_gateway(settings) as (gw, stub):
        reply = await stub.SendBatch(
            pb.SendBatchRequest(messages=[msg(str(300 + i), f"w{i}") for i in range(6)])
        )
        for _ in range(20):  # Sends and other replicas wake the dispatcher at any time
            gw.dispatcher.wake()
            await stub.GetStats(pb.GetStatsRequest())  # the event loop keeps serving
            await asyncio.sleep(0.01)
        for result in reply.results:
            await wait_state(stub, result.job_id, COMPLETED)
