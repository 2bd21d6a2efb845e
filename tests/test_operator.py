"""What an operator sees: GetStats warnings and retention, `notigate stats`, the log, the
health gauges, and NOT_FOUND messages that say why a job is gone.

Real gateway, real Valkey, the Bot API simulator over HTTP; the CLI runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped,unused-ignore]
from redis.asyncio import Redis

from notigate.cli import main
from notigate.embedded import EmbeddedValkey
from notigate.health import TokenState
from notigate.rpc_status import DETAILS_METADATA_KEY
from notigate.simulator import BotApiSimulator
from notigate_client import NotFoundError, from_rpc_error, pb
from tests.conftest import (
    TOKEN,
    Stub,
    free_port,
    gateway_settings,
    running_gateway,
    wait_for,
    wait_state,
)
from tests.test_metrics import scrape, value


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv), {})
    return code, capsys.readouterr().out


def _token_warnings(stats: pb.GetStatsResponse) -> list[str]:
    return [w for w in stats.warnings if "bot token" in w]


async def test_rejected_token_shows_in_stats_metrics_and_one_log_line_per_change(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="notigate")
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        health = gw.health
        assert health is not None
        assert _token_warnings(await stub.GetStats(pb.GetStatsRequest())) == []
        simulator.revoke_token(TOKEN)
        # Each send in flight is answered 401, then the token is checked again twice:
        # several rejections, one transition.
        batch = pb.SendBatchRequest(
            messages=[pb.SendRequest(chat_id=str(900 + i), text="held") for i in range(3)]
        )
        ids = [r.job_id for r in (await stub.SendBatch(batch)).results]

        async def rejected() -> bool:
            return health.token is TokenState.REJECTED

        await wait_for(rejected)
        await health.check_token()
        await health.check_token()

        stats = await stub.GetStats(pb.GetStatsRequest())
        [warning] = _token_warnings(stats)
        assert warning.startswith("bot token rejected by Telegram")
        assert "BOT_TOKEN" in warning and "@BotFather" in warning and "restart" in warning
        got = await scrape(gw.metrics_port)
        assert value(got, "notigate_bot_token_valid") == 0
        assert value(got, "notigate_health_serving") == 0
        assert value(got, "notigate_redis_up") == 1
        code, out = await cli(capsys, "stats", "--target", f"127.0.0.1:{gw.port}")
        assert code == 0 and f"warning: {warning}" in out
        for job_id in ids:
            job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
            assert job.state == pb.JOB_STATE_WAITING and job.attempts == 0

        simulator.accept_token(TOKEN)
        await health.check_token()
        for job_id in ids:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        assert _token_warnings(await stub.GetStats(pb.GetStatsRequest())) == []
        got = await scrape(gw.metrics_port)
        assert value(got, "notigate_bot_token_valid") == 1
        assert value(got, "notigate_health_serving") == 1

    messages = [r for r in caplog.records if r.name.startswith("notigate")]
    lost = [r for r in messages if "rejected the bot token" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    assert lost[0].levelno == logging.ERROR
    assert "BOT_TOKEN" in lost[0].getMessage() and "@BotFather" in lost[0].getMessage()
    back = [r for r in messages if "bot token accepted again" in r.getMessage()]
    assert len(back) == 1


async def test_token_rejected_at_startup_is_logged_and_warned_once(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notigate")
    simulator.revoke_token(TOKEN)
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        assert gw.health is not None and gw.health.token is TokenState.REJECTED
        await gw.health.check_token()
        [warning] = _token_warnings(await stub.GetStats(pb.GetStatsRequest()))
        assert "BOT_TOKEN" in warning
        assert value(await scrape(gw.metrics_port), "notigate_bot_token_valid") == 0
    lost = [r for r in caplog.records if "rejected the bot token" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR


async def test_an_unreachable_bot_api_is_a_warning_too(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notigate")
    closed = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(valkey, simulator, telegram_api_url=closed)
    async with running_gateway(settings) as (gw, stub):
        assert gw.health is not None and gw.health.token is TokenState.UNKNOWN
        await gw.health.check_token()
        [warning] = _token_warnings(await stub.GetStats(pb.GetStatsRequest()))
    assert warning.startswith("cannot reach the Bot API to check the bot token")
    assert "TELEGRAM_API_URL" in warning
    lines = [r for r in caplog.records if "cannot reach the Bot API" in r.getMessage()]
    assert len(lines) == 1


def _resource_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ResourceInfo:
    [raw] = [v for k, v in exc.trailing_metadata() or () if k == DETAILS_METADATA_KEY]
    status = status_pb2.Status.FromString(raw)
    for detail in status.details:
        info = error_details_pb2.ResourceInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ResourceInfo in the status details")


async def _not_found(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    return info.value


async def test_not_found_says_whether_retention_trimmed_the_job(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(
        valkey, simulator, keep_completed=2, keep_failed=1_000, keep_age_s=3_600
    )
    async with running_gateway(settings) as (_, stub):
        batch = pb.SendBatchRequest(
            messages=[pb.SendRequest(chat_id=str(800 + i), text="x") for i in range(3)]
        )
        ids = [r.job_id for r in (await stub.SendBatch(batch)).results]

        async def all_sent() -> bool:
            return (await stub.GetStats(pb.GetStatsRequest())).total_sent == 3

        await wait_for(all_sent)
        listed = await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_COMPLETED))
        [trimmed] = set(ids) - {job.job_id for job in listed.jobs}

        expected = (
            f"no job {trimmed}: trimmed by retention (finished jobs are kept for 1 hour, and "
            "only the newest 2 completed, 2 cancelled and 1,000 failed) or never used (ids "
            "are not dense)"
        )
        for call in (
            stub.GetJob(pb.GetJobRequest(job_id=trimmed)),
            stub.CancelJob(pb.CancelJobRequest(job_id=trimmed)),
            stub.RetryJob(pb.RetryJobRequest(job_id=trimmed)),
        ):
            exc = await _not_found(call)
            assert exc.details() == expected
            info = _resource_info(exc)
            assert (info.resource_type, info.resource_name) == ("job", trimmed)
            assert info.description == "trimmed by retention or never used"
            err = from_rpc_error(exc)
            assert isinstance(err, NotFoundError) and err.resource_name == trimmed

        newest = max(int(i) for i in ids)
        for call in (
            stub.GetJob(pb.GetJobRequest(job_id="99999999999999")),
            stub.CancelJob(pb.CancelJobRequest(job_id="99999999999999")),
            stub.RetryJob(pb.RetryJobRequest(job_id="99999999999999")),
        ):
            exc = await _not_found(call)
            assert exc.details() == f"no such job: 99999999999999 (the newest job id is {newest})"
            assert _resource_info(exc).description == "never created"


async def test_stats_tell_retained_from_lifetime_counts(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = gateway_settings(valkey, simulator, keep_completed=2, keep_failed=7)
    async with running_gateway(settings) as (gw, stub):
        stub_: Stub = stub
        batch = pb.SendBatchRequest(
            messages=[pb.SendRequest(chat_id=str(700 + i), text="x") for i in range(3)]
        )
        await stub_.SendBatch(batch)

        async def all_sent() -> bool:
            return (await stub_.GetStats(pb.GetStatsRequest())).total_sent == 3

        await wait_for(all_sent)
        stats = await stub_.GetStats(pb.GetStatsRequest())
        code, out = await cli(capsys, "stats", "--target", f"127.0.0.1:{gw.port}")

    assert (stats.completed, stats.total_sent) == (2, 3)
    assert stats.retention.keep_completed == 2
    assert stats.retention.keep_failed == 7
    assert stats.retention.keep_age.seconds == 7 * 24 * 3600
    assert code == 0
    assert out.splitlines()[0].split() == ["QUEUE", "TOTALS", "(lifetime)"]
    rows = {line.split()[0]: line.split()[1:5] for line in out.splitlines()[1:] if line}
    assert rows["completed"] == ["2", "(newest", "2", "kept)"]
    assert rows["failed"] == ["0", "(newest", "7", "kept)"]
    assert "finished jobs are kept at most 7d" in out
