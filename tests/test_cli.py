"""The client subcommands of ``notigate`` against a running gateway.

``main`` runs in a thread (the blocking client must not block the loop the gateway
serves on); ``health`` also runs as the installed console script, as Docker runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from notigate.app import Gateway
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from notigate_client.cli import main, parser
from notigate_client.cli.commands import format_job, format_stats, job_row
from tests.conftest import Stub, free_port, job_state, wait_state

NOTIGATE = Path(sys.executable).parent / "notigate"


async def cli(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv), env or {})
    out = capsys.readouterr()
    return code, out.out, out.err


def target(gw: Gateway) -> str:
    return f"127.0.0.1:{gw.port}"


async def test_send_then_job_shows_delivery(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    code, out, _ = await cli(
        capsys,
        "send",
        "--target",
        target(gw),
        "--chat",
        "4242",
        "--text",
        "<b>deploy</b> done",
        "--parse-mode",
        "HTML",
        "--priority",
        "7",
    )
    assert code == 0
    job_id = out.strip()
    job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    assert job.request.parse_mode == pb.PARSE_MODE_HTML
    assert job.request.priority == 7

    code, out, _ = await cli(capsys, "job", job_id, "--target", target(gw))
    assert code == 0
    assert "completed" in out and "4242" in out and "<b>deploy</b> done" in out
    code, out, _ = await cli(capsys, "job", job_id, "--json", "--target", target(gw))
    assert json.loads(out)["state"] == "JOB_STATE_COMPLETED"


async def test_target_comes_from_the_environment(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, _ = gateway
    env = {"NOTIGATE_TARGET": target(gw)}
    code, out, _ = await cli(capsys, "send", "--chat", "5", "--text", "x", env=env)
    assert code == 0 and out.strip()


async def test_delay_and_idempotency_key(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    args = ["send", "--target", target(gw), "--chat", "6", "--text", "later"]
    args += ["--delay", "10m", "--idempotency-key", "k-1"]
    code, first, _ = await cli(capsys, *args)
    assert code == 0
    job = (await stub.GetJob(pb.GetJobRequest(job_id=first.strip()))).job
    assert job.state == pb.JOB_STATE_DELAYED
    assert job.request.delay.seconds == 600

    code, again, err = await cli(capsys, *args)
    assert code == 0 and again == first and "duplicate" in err

    # Only a failed job can be retried: a precondition failure, reported once.
    code, _, err = await cli(capsys, "retry", first.strip(), "--target", target(gw))
    assert code == 1
    assert err.splitlines() == [
        f"notigate: FAILED_PRECONDITION: job {first.strip()} is delayed; retry is not possible"
    ]

    code, out, _ = await cli(capsys, "cancel", first.strip(), "--target", target(gw))
    assert code == 0 and "cancelled" in out


async def test_send_with_a_reused_idempotency_key_fails(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    args = ["send", "--target", target(gw), "--chat", "6", "--idempotency-key", "k-2"]
    code, first, _ = await cli(capsys, *args, "--text", "Order shipped")
    assert code == 0
    job_id = first.strip()
    code, out, err = await cli(capsys, *args, "--text", "Order cancelled")
    assert (code, out) == (1, "")
    assert err.count("ALREADY_EXISTS") == 1 and err.count("\n") == 1
    assert f"job {job_id}" in err and "'k-2'" in err
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 1


async def test_invalid_send_prints_field_violations(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, _ = gateway
    code, out, err = await cli(
        capsys, "send", "--target", target(gw), "--chat", "7", "--text", "x", "--priority", "99"
    )
    assert code == 1
    assert out == ""
    # The status message names the violation already: it is printed once, not twice.
    assert err.splitlines() == ["notigate: INVALID_ARGUMENT: priority: priority must be 0..10"]

    code, out, err = await cli(
        capsys, "send", "--target", target(gw), "--chat", "x", "--text", " ", "--priority", "99"
    )
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "notigate: INVALID_ARGUMENT: 3 invalid fields:"
    assert [line.split(":")[0] for line in lines[1:]] == ["  chat_id", "  text", "  priority"]


async def test_jobs_and_retry_of_a_failed_job(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, stub = gateway
    simulator.block_chat("8")
    reply = await stub.Send(pb.SendRequest(chat_id="8", text="to a blocked chat"))
    await wait_state(stub, reply.job_id, pb.JOB_STATE_FAILED)

    code, out, _ = await cli(capsys, "jobs", "--state", "failed", "--target", target(gw))
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "CHAT"]
    assert row.split()[:3] == [reply.job_id, "failed", "8"]
    assert "blocked" in row

    code, out, _ = await cli(capsys, "jobs", "--limit", "1", "--json", "--target", target(gw))
    assert code == 0 and len(out.splitlines()) == 1

    code, out, _ = await cli(capsys, "retry", reply.job_id, "--target", target(gw))
    assert code == 0
    assert out.startswith(f"job {reply.job_id}: ")


async def test_stats_table_and_watch(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    await stub.Send(pb.SendRequest(chat_id="9", text="x"))
    code, out, _ = await cli(capsys, "stats", "--target", target(gw))
    assert code == 0
    assert out.splitlines()[0].split() == ["QUEUE", "TOTALS", "(lifetime)"]
    # Retained counts say what retention keeps, so "completed 100" does not look stuck.
    assert "(newest 100 kept)" in out and "kept at most 7d" in out
    assert "enqueued" in out and "rate limit 25 msg/s" in out

    code, out, _ = await cli(
        capsys, "stats", "--watch", "0.01", "--count", "2", "--target", target(gw)
    )
    assert code == 0
    assert out.count("QUEUE") == 2

    code, out, _ = await cli(capsys, "stats", "--json", "--target", target(gw))
    assert int(json.loads(out)["total_enqueued"]) >= 1


async def test_health_exit_codes_from_the_console_script(
    gateway: tuple[Gateway, Stub],
) -> None:
    gw, _ = gateway

    async def health(addr: str) -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec(
            str(NOTIGATE),
            "health",
            "--target",
            addr,
            "--timeout",
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out

    code, out = await health(target(gw))
    assert (code, out.strip()) == (0, f"{target(gw)}: SERVING".encode())
    code, out = await health(f"127.0.0.1:{free_port()}")
    assert code == 1 and b"UNAVAILABLE" in out


async def test_health_not_serving_while_the_token_is_rejected(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, stub = gateway
    await stub.GetStats(pb.GetStatsRequest())
    assert gw.health is not None
    simulator.revoke_token(gw.settings.bot_token or "")
    await gw.health.check_token()
    await gw.health.publish()
    code, out, _ = await cli(capsys, "health", "--target", target(gw))
    assert (code, out.strip()) == (1, f"{target(gw)}: NOT_SERVING")


async def test_send_at_sets_send_at(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    args = ["send", "--target", target(gw), "--chat", "10", "--text", "at six"]
    # Within the server's horizon (a year ahead), written with an offset of +01:00.
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    at = when.astimezone(timezone(timedelta(hours=1))).isoformat()
    code, out, _ = await cli(capsys, *args, "--at", at)
    assert code == 0
    job = (await stub.GetJob(pb.GetJobRequest(job_id=out.strip()))).job
    assert job.request.send_at.ToDatetime(tzinfo=UTC) == when
    assert not job.request.HasField("delay")

    # A time without an offset is a usage error, not a guess at the time zone.
    with pytest.raises(SystemExit) as exit_:
        await cli(capsys, *args, "--at", "2036-12-01T18:00:00")
    assert exit_.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        await cli(capsys, *args, "--at", "2036-12-01T18:00:00Z", "--delay", "1m")


async def test_json_output_keeps_zero_fields(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    reply = await stub.Send(pb.SendRequest(chat_id="11", text="x"))
    await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
    code, out, _ = await cli(capsys, "stats", "--json", "--target", target(gw))
    assert code == 0
    stats = json.loads(out)
    assert stats["failed"] == "0" and stats["total_failed"] == "0"
    assert stats["waiting"] == "0" and stats["total_sent"] == "1"

    code, out, _ = await cli(capsys, "job", reply.job_id, "--json", "--target", target(gw))
    job = json.loads(out)
    assert job["attempts"] == 0 and job["last_error"] == ""
    assert job["state"] == "JOB_STATE_COMPLETED"
    code, out, _ = await cli(capsys, "jobs", "--json", "--target", target(gw))
    assert json.loads(out)["attempts"] == 0


async def test_jobs_says_when_more_exist(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    await stub.SendBatch(
        pb.SendBatchRequest(messages=[pb.SendRequest(chat_id="12", text=f"{i}") for i in range(3)])
    )
    code, out, err = await cli(capsys, "jobs", "--limit", "2", "--target", target(gw))
    assert code == 0
    assert len(out.splitlines()) == 3  # header and two jobs
    assert err.strip() == "2 shown; more exist: --limit 10"
    code, out, err = await cli(capsys, "jobs", "--limit", "3", "--target", target(gw))
    assert len(out.splitlines()) == 4 and err == ""


def test_a_delivered_job_does_not_read_as_failed() -> None:
    delivered = pb.Job(
        job_id="5",
        state=pb.JOB_STATE_COMPLETED,
        attempts=1,
        max_attempts=5,
        last_error="Bad Gateway",
        request=pb.SendRequest(chat_id="1", text="hello"),
    )
    shown = " ".join(format_job(delivered).split())
    assert "attempts: 1 failed attempt before delivery" in shown
    assert "earlier error: Bad Gateway" in shown
    row = job_row(delivered)
    assert row[3] == "1" and row[-1] == "hello"

    first_time = pb.Job(job_id="6", state=pb.JOB_STATE_COMPLETED, max_attempts=5)
    assert "delivered on the first attempt" in format_job(first_time)
    assert "error" not in format_job(first_time)
    assert job_row(first_time)[3] == "-"

    failed = pb.Job(
        job_id="7", state=pb.JOB_STATE_FAILED, attempts=5, max_attempts=5, last_error="Forbidden"
    )
    assert "attempts: 5 failed attempts (of 5 allowed)" in " ".join(format_job(failed).split())
    assert "error:" in format_job(failed) and job_row(failed)[-1] == "Forbidden"
    # A state this client does not know yet still prints, by its number.
    assert job_row(pb.Job(job_id="8", state=99))[1] == "state 99"  # type: ignore[arg-type]


def test_stats_show_retention_when_the_gateway_reports_it() -> None:
    stats = pb.GetStatsResponse(completed=100, failed=3, total_sent=5000)
    stats.retention.keep_completed = 100
    stats.retention.keep_failed = 1000
    stats.retention.keep_age.FromSeconds(7 * 86400)
    shown = " ".join(format_stats(stats).split())
    assert "completed 100 (newest 100 kept)" in shown
    assert "failed 3 (newest 1000 kept)" in shown
    assert "finished jobs are kept at most 7d" in shown
    assert "kept" not in format_stats(pb.GetStatsResponse(completed=100))


def test_stats_show_the_limiter_and_the_alerts_in_a_line_each() -> None:
    stats = pb.GetStatsResponse(global_rate=25, dispatchers=2)
    stats.limiter.rate = 25
    stats.limiter.sent_last_second = 7
    stats.limiter.held_chats = 3
    stats.limiter.pause_reason = "429s from 3 chats"
    pause = stats.limiter.chat_pauses.add(chat_id="42")
    pause.until.FromSeconds(1_800_000_000)
    stats.alerts.add(kind=pb.ALERT_KIND_NO_DISPATCHER, bot="alpha", message="nobody delivers")
    lines = format_stats(stats).splitlines()
    assert "dispatchers 2" in lines[-3]
    assert lines[-2] == (
        "limiter: 7 of 25 sends in the last second, 3 chats held (the last reopens "
        "2027-01-15 08:00:00 UTC: chat 42); paused: 429s from 3 chats"
    )
    assert lines[-1] == "alert: bot alpha: nobody delivers"


async def test_retry_every_failed_job_of_a_chat_counts_and_confirms(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, stub = gateway
    simulator.block_chat("31")
    simulator.block_chat("32")
    ids = [
        (await stub.Send(pb.SendRequest(chat_id=c, text="x"))).job_id for c in ["31", "31", "32"]
    ]
    for job_id in ids:
        await wait_state(stub, job_id, pb.JOB_STATE_FAILED)
    args = ["retry", "--all-failed", "--chat", "31", "--target", target(gw)]

    # Without a terminal to ask on and without --yes: counted, nothing changed.
    code, out, err = await cli(capsys, *args)
    assert code == 1
    assert out.splitlines() == [f"2 failed jobs of chat 31 (jobs {ids[0]}, {ids[1]})"]
    assert "--yes" in err
    for job_id in ids:
        assert await job_state(stub, job_id) == pb.JOB_STATE_FAILED

    simulator.unblock_chat("31")
    code, out, _ = await cli(capsys, "suppressed", "remove", "31", "--target", target(gw))
    assert code == 0
    code, out, _ = await cli(capsys, *args, "--yes")
    assert code == 0 and out.splitlines()[-1] == "retried 2 jobs"
    await wait_state(stub, ids[0], pb.JOB_STATE_COMPLETED)
    await wait_state(stub, ids[1], pb.JOB_STATE_COMPLETED)
    assert await job_state(stub, ids[2]) == pb.JOB_STATE_FAILED  # another chat's

    code, out, _ = await cli(capsys, *args, "--yes")
    assert code == 0 and out.strip() == "no failed jobs of chat 31: nothing to retry"
    code, _, err = await cli(capsys, "retry", "--chat", "31", ids[2], "--target", target(gw))
    assert code == 2 and "--all-failed" in err


async def test_cancel_every_delayed_job(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    later = pb.SendRequest(chat_id="41", text="later")
    later.delay.FromSeconds(3600)
    ids = [(await stub.Send(later)).job_id for _ in range(3)]
    code, out, _ = await cli(
        capsys, "cancel", "--all", "--state", "delayed", "--yes", "--target", target(gw)
    )
    assert code == 0
    assert out.splitlines() == [
        f"3 delayed jobs (jobs {', '.join(ids)})",
        "cancelled 3 jobs",
    ]
    for job_id in ids:
        assert await job_state(stub, job_id) == pb.JOB_STATE_CANCELLED


def test_the_first_of_several_tokens_is_the_clients() -> None:
    args = parser({"NOTIGATE_API_TOKEN": " tok-a , tok-b"}).parse_args(["stats"])
    assert args.token == "tok-a"
