"""Redis errors beyond an outage: the gateway answers with the right code, says why in its
health, and every loop survives (READONLY here; MISCONF, BUSY, LOADING in
test_redis_faults.py)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status as grpc_rpc_status
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.queue.keys import QueueKeys
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for, wait_state
from tests.redis_server import RedisServer
from tests.test_metrics import scrape, value

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
KEYS = QueueKeys.for_queue("default")
# A class name such as ReadOnlyError or ResponseError in a client-facing message.
CLASS_NAME = re.compile(r"[A-Z][a-z]+[A-Z]?[a-z]*Error|Exception|redis\.")


async def health_of(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            return int(reply.status)
        except grpc.aio.AioRpcError:
            return -1


async def wait_health(gw: Gateway, status: int) -> None:
    async def reached() -> bool:
        return await health_of(gw.port) == status

    await wait_for(reached)


def details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    """The google.rpc details of ``error`` by type name."""
    status = grpc_rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, object] = {}
    for any_detail in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if any_detail.Is(cls.DESCRIPTOR):
                detail = cls()
                any_detail.Unpack(detail)
                out[cls.__name__] = detail
    return out


def assert_retryable(error: grpc.aio.AioRpcError) -> None:
    """UNAVAILABLE with ErrorInfo and RetryInfo and a message free of internals."""
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    message = error.details() or ""
    assert "retry" in message and not CLASS_NAME.search(message), message
    got = details(error)
    info = got["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "REDIS_UNAVAILABLE" and info.domain == "notigate"
    assert "RetryInfo" in got


async def send(stub: Stub, text: str, *, delay_s: int = 0) -> str:
    request = pb.SendRequest(chat_id=str(3000 + abs(hash(text)) % 1000), text=text)
    if delay_s:
        request.delay.seconds = delay_s
    return (await stub.Send(request, timeout=10)).job_id


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


async def test_readonly_refuses_sends_as_retryable_and_delivery_resumes_after(
    own_redis: RedisServer, simulator: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover demotes the gateway's Redis to a replica for a while (READONLY)."""
    caplog.set_level(logging.INFO, logger="notigate")
    settings = gateway_settings(own_redis, simulator, metrics_listen="127.0.0.1:0")  # type: ignore[arg-type]
    async with running_gateway(settings) as (gw, stub):
        first = await send(stub, "before")
        await wait_state(stub, first, pb.JOB_STATE_COMPLETED)
        # Accepted now, due during the spell: the dispatcher meets READONLY leasing them.
        due = [await send(stub, f"due {i}", delay_s=1) for i in range(5)]
        await own_redis.become_replica()
        await wait_health(gw, NOT_SERVING)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await send(stub, "refused")
        assert_retryable(refused.value)
        assert "read-only" in (refused.value.details() or "")
        stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)  # reads still work
        [warning] = [w for w in stats.warnings if "refuses writes" in w]
        assert "read-only replica" in warning and "REDIS_URL" in warning
        metrics = await scrape(gw.metrics_port)
        assert value(metrics, "notigate_health_serving") == 0
        assert value(metrics, "notigate_health_reason", reason="store_not_writable") == 1

        async def dispatcher_met_it() -> bool:
            return any("leasing jobs failed" in r.getMessage() for r in caplog.records)

        await wait_for(dispatcher_met_it)

        await own_redis.become_primary()
        await wait_health(gw, SERVING)
        after = await send(stub, "after")
        for job_id in [*due, after]:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        assert all(gw.tasks.running(name) for name in gw.tasks.names)
        assert gw.dispatcher is not None and gw.dispatcher.live()
        metrics = await scrape(gw.metrics_port)
        assert value(metrics, "notigate_redis_errors_total", kind="readonly") > 0
        assert value(metrics, "notigate_health_reason", reason="store_not_writable") == 0
        assert [w for w in (await stub.GetStats(pb.GetStatsRequest())).warnings] == []

    messages = [r.getMessage() for r in caplog.records]
    # Once per spell, not once per retry; and the recovery.
    assert len([m for m in messages if m.startswith("leasing jobs failed")]) == 1
    assert "Redis is back: leasing jobs" in "\n".join(messages)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    texts = [m.text for m in simulator.messages]
    assert sorted(set(texts)) == sorted(["before", "after", *(f"due {i}" for i in range(5))])


async def test_a_script_error_while_leasing_is_logged_once_and_delivery_resumes(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key of the wrong type makes the dequeue script fail on every call."""
    caplog.set_level(logging.INFO, logger="notigate")
    async with running_gateway(gateway_settings(valkey, simulator)) as (gw, stub):
        await redis.hset(KEYS.global_tat, "not", "a string")  # type: ignore[misc]
        ids = [await send(stub, f"held {i}") for i in range(3)]

        async def logged() -> bool:
            return any("leasing jobs failed" in r.getMessage() for r in caplog.records)

        await wait_for(logged)
        await asyncio.sleep(0.3)  # several more failed turns
        for job_id in ids:
            job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
            assert job.state == pb.JOB_STATE_WAITING
        await redis.delete(KEYS.global_tat)
        for job_id in ids:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        assert gw.tasks.running("notigate-dispatch") and gw.tasks.restarts("notigate-dispatch") == 0
    failed = [r for r in caplog.records if r.getMessage().startswith("leasing jobs failed")]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert "WRONGTYPE" in failed[0].getMessage() and "[script]" in failed[0].getMessage()


async def test_a_script_error_in_a_call_is_internal_and_logged_once_with_detail(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (_gw, stub):
        job_id = await send(stub, "to cancel", delay_s=3600)
        await redis.delete(KEYS.job(job_id))
        await redis.set(KEYS.job(job_id), "not a hash")
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=10)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            message = info.value.details() or ""
            assert "WRONGTYPE" not in message and not CLASS_NAME.search(message), message
            got = details(info.value)
            error_info = got["ErrorInfo"]
            assert isinstance(error_info, error_details_pb2.ErrorInfo)
            assert error_info.reason == "INTERNAL"
        await redis.delete(KEYS.job(job_id))
    logged = [r for r in caplog.records if "unexpected Redis error" in r.getMessage()]
    assert len(logged) == 1 and "WRONGTYPE" in logged[0].getMessage()


async def test_health_is_not_serving_while_the_dispatcher_does_not_run(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        await wait_health(gw, SERVING)
        assert gw.dispatcher is not None
        await gw.dispatcher.stop(0.1)
        await wait_health(gw, NOT_SERVING)
        stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
        assert any("delivery loop is not running" in w for w in stats.warnings), stats.warnings
        metrics = await scrape(gw.metrics_port)
        assert value(metrics, "notigate_health_reason", reason="dispatcher_not_running") == 1
        assert value(metrics, "notigate_health_reason", reason="store_not_writable") == 0


async def test_a_delivery_whose_recording_meets_readonly_is_recorded_after_not_resent(
    own_redis: RedisServer, simulator: BotApiSimulator
) -> None:
    """Redis turns read-only while Telegram is accepting the message: the outcome is
    recorded once Redis takes writes again, and the message is not sent a second time
    when its lease expires."""
    simulator.configure(latency_s=1.0)
    settings = gateway_settings(own_redis, simulator, lease_ms=4000)  # type: ignore[arg-type]
    async with running_gateway(settings) as (_gw, stub):
        job_id = await send(stub, "exactly once")
        await wait_state(stub, job_id, pb.JOB_STATE_ACTIVE)
        await own_redis.become_replica()

        async def telegram_has_it() -> bool:
            return any(m.text == "exactly once" for m in simulator.messages)

        await wait_for(telegram_has_it)
        await asyncio.sleep(0.5)  # recording fails meanwhile
        await own_redis.become_primary()
        job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        assert job.attempts <= 1 and job.stalls == 0
    assert [m.text for m in simulator.messages] == ["exactly once"]


async def test_a_job_whose_stored_message_is_damaged_fails_alone(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job's task does not die with an exception (its lease would expire and the job
    come back again and again): the job fails with a reason, the others are delivered."""
    async with running_gateway(gateway_settings(valkey, simulator)) as (gw, stub):
        assert gw.dispatcher is not None
        gw.dispatcher.pause()
        bad = await send(stub, "damaged")
        good = await send(stub, "intact")
        await redis.hset(KEYS.job(bad), "p", b"\x0a\xff\xff\xff\xff\x0f")  # type: ignore[misc]
        gw.dispatcher.resume()
        await wait_state(stub, good, pb.JOB_STATE_COMPLETED)

        async def failed() -> bool:
            return await redis.hget(KEYS.job(bad), "s") == b"f"  # type: ignore[misc]

        await wait_for(failed)
        error = await redis.hget(KEYS.job(bad), "e")  # type: ignore[misc]
        assert error == b"the stored message cannot be decoded"
        assert gw.tasks.restarts("notigate-dispatch") == 0
    assert [m.text for m in simulator.messages] == ["intact"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
