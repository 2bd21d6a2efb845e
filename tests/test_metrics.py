"""Prometheus metrics, scraped over real HTTP from a running gateway."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from notigate import __version__
from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.metrics import GRPC_CODE_NAMES
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for, wait_state

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SERVICE = "notigate.v1.NotificationService"


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# Metrics labelled by bot: unless a test names one, it means the default bot's.
BOT_LABELLED = (
    "notigate_jobs_",
    "notigate_telegram_",
    "notigate_delivery_",
    "notigate_outcomes_",
    "notigate_queue_",
    "notigate_bot_",
    "notigate_alert_",
    "notigate_dispatchers",
)


def value(samples: Samples, name: str, **labels: str) -> float:
    if name.startswith(BOT_LABELLED):
        labels.setdefault("bot", "default")
    return samples.get((name, _key(**labels)), 0.0)


async def test_metrics_count_jobs_grpc_calls_and_queue(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        assert gw.metrics_port > 0
        ids = []
        for chat in ("1001", "1002", "1003"):
            reply = await stub.Send(pb.SendRequest(chat_id=chat, text="hi", idempotency_key=chat))
            ids.append(reply.job_id)
        # A repeat of an idempotency key is not a new job.
        await stub.Send(pb.SendRequest(chat_id="1001", text="hi", idempotency_key="1001"))
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Send(pb.SendRequest(chat_id="", text="hi"))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for job_id in ids:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)

        async def refreshed() -> bool:
            got = await scrape(gw.metrics_port)
            return value(got, "notigate_queue_jobs", state="completed") == 3

        await wait_for(refreshed)
        got = await scrape(gw.metrics_port)

    assert value(got, "notigate_jobs_enqueued_total") == 3
    assert value(got, "notigate_jobs_delivered_total") == 3
    assert value(got, "notigate_jobs_failed_total") == 0
    assert value(got, "notigate_telegram_requests_total", outcome="delivered") == 3
    assert value(got, "notigate_telegram_request_duration_seconds_count") == 3
    assert value(got, "notigate_delivery_duration_seconds_count") == 3
    send = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Send"}
    assert value(got, "grpc_server_started_total", **send) == 5
    assert value(got, "grpc_server_handled_total", **send, grpc_code="OK") == 4
    assert value(got, "grpc_server_handled_total", **send, grpc_code="InvalidArgument") == 1
    assert value(got, "grpc_server_handling_seconds_count", **send) == 5
    assert value(got, "notigate_queue_jobs", state="waiting") == 0
    assert value(got, "notigate_queue_oldest_waiting_age_seconds") == 0
    # No per-chat series: chat ids never appear in the exposition.
    assert not any("1001" in str(labels) for _, labels in got)


async def test_permanent_errors_count_as_failed(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    simulator.block_chat("77")  # 403: failed at once
    async with running_gateway(settings) as (gw, stub):
        reply = await stub.Send(pb.SendRequest(chat_id="77", text="hi"))
        job = await wait_state(stub, reply.job_id, pb.JOB_STATE_FAILED)
        got = await scrape(gw.metrics_port)
    assert job.last_error
    assert value(got, "notigate_jobs_failed_total") == 1
    assert value(got, "notigate_telegram_requests_total", outcome="unreachable") == 1


async def test_rate_limits_are_counted(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    simulator.rate_limit_storm(seconds=0.5, retry_after=1)
    async with running_gateway(settings) as (gw, stub):
        reply = await stub.Send(pb.SendRequest(chat_id="78", text="hi"))
        await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
        got = await scrape(gw.metrics_port)
    limited = value(got, "notigate_telegram_rate_limited_total")
    assert limited >= 1
    assert value(got, "notigate_telegram_requests_total", outcome="rate_limited") == limited
    assert value(got, "notigate_jobs_delivered_total") == 1


async def test_two_gateways_keep_separate_registries(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    one = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0", queue_name="one")
    two = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0", queue_name="two")
    async with running_gateway(one) as (gw1, stub1), running_gateway(two) as (gw2, _):
        await stub1.Send(pb.SendRequest(chat_id="42", text="hi"))
        first, second = await scrape(gw1.metrics_port), await scrape(gw2.metrics_port)
    assert value(first, "notigate_jobs_enqueued_total") == 1
    assert value(second, "notigate_jobs_enqueued_total") == 0


async def test_no_metrics_port_without_setting(gateway: tuple[Gateway, Stub]) -> None:
    gw, stub = gateway
    await stub.GetStats(pb.GetStatsRequest())
    assert gw.metrics_port == 0


async def test_exposition_has_build_process_and_health_but_no_created_twins(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        await stub.GetStats(pb.GetStatsRequest())
        got = await scrape(gw.metrics_port)
    assert value(got, "notigate_build_info", version=__version__) == 1
    assert value(got, "process_resident_memory_bytes") > 0
    assert value(got, "process_start_time_seconds") > 0
    assert any(name == "python_info" for name, _ in got)
    assert value(got, "notigate_health_serving") == 1
    assert value(got, "notigate_redis_up") == 1
    assert value(got, "notigate_bot_token_valid") == 1
    assert [name for name, _ in got if name.endswith("_created")] == []
    # Every method's series exist before its first call, as with go-grpc-prometheus.
    get_job = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "GetJob"}
    assert ("grpc_server_handled_total", _key(**get_job, grpc_code="OK")) in got
    assert value(got, "grpc_server_started_total", **get_job) == 0
    stats = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "GetStats"}
    assert value(got, "grpc_server_handled_total", **stats, grpc_code="OK") == 1


def test_grpc_code_labels_are_spelled_as_grpc_go_does() -> None:
    # go-grpc-prometheus writes codes.Code.String(): dashboards match on these strings.
    assert GRPC_CODE_NAMES[grpc.StatusCode.OK] == "OK"
    assert GRPC_CODE_NAMES[grpc.StatusCode.CANCELLED] == "Canceled"
    assert GRPC_CODE_NAMES[grpc.StatusCode.DEADLINE_EXCEEDED] == "DeadlineExceeded"
    assert GRPC_CODE_NAMES[grpc.StatusCode.UNAUTHENTICATED] == "Unauthenticated"
    assert len(set(GRPC_CODE_NAMES.values())) == len(grpc.StatusCode) == 17
