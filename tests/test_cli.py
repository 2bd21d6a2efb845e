"""The client subcommands of ``notigate`` against a running gateway.

``main`` runs in a thread (the blocking client must not block the loop the gateway
serves on); ``health`` also runs as the installed console script, as Docker runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from notigate.app import Gateway
from notigate.cli import main
from notigate.simulator import BotApiSimulator
from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from tests.conftest import Stub, free_port, wait_state

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

    # Only a failed job can be retried: a precondition failure, reported with its violation.
    code, _, err = await cli(capsys, "retry", first.strip(), "--target", target(gw))
    assert code == 1
    assert "FAILED_PRECONDITION" in err and f"jobs/{first.strip()}" in err

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
    assert "INVALID_ARGUMENT" in err
    assert "  priority:" in err


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
    assert out.splitlines()[0].split() == ["QUEUE", "TOTALS"]
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


def _csv(path: Path, rows: int, bad_line: int | None = None) -> Path:
    lines = ["chat_id,text,priority,parse_mode,disable_notification"]
    for i in range(rows):
        text = "" if i + 2 == bad_line else f"message {i}"
        lines.append(f'{100 + i % 7},"{text}",{i % 3},HTML,{"true" if i % 2 else ""}')
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_send_file_csv_in_chunks_with_progress(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = _csv(tmp_path / "messages.csv", 1001)
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert out.strip() == f"1001 messages accepted (0 duplicates) from {path}"
    # stderr is not a terminal here: one progress line per SendBatch of 500.
    progress = err.splitlines()
    assert [line.split()[1] for line in progress] == ["500/1001", "1000/1001", "1001/1001"]
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 1001

    # Keys derived from the file and line: running the same file again sends nothing new.
    code, out, _ = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0
    assert "(1001 duplicates)" in out
    listed = await stub.ListJobs(pb.ListJobsRequest(page_size=1))
    request = listed.jobs[0].request
    assert request.parse_mode == pb.PARSE_MODE_HTML


async def test_send_file_jsonl(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = tmp_path / "messages.jsonl"
    records = [
        {"chat_id": "300", "text": "a", "delay": "90s", "parse_mode": "MarkdownV2"},
        {
            "chat_id": "301",
            "text": "b",
            "reply_markup": {"rows": [{"buttons": [{"text": "open", "url": "https://e.x"}]}]},
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert out.startswith("2 messages accepted")
    delayed = await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_DELAYED))
    [job] = delayed.jobs
    assert job.request.delay.seconds == 90
    assert job.request.parse_mode == pb.PARSE_MODE_MARKDOWN_V2


async def test_send_file_reports_rejected_lines(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = _csv(tmp_path / "bad.csv", 600, bad_line=503)
    code, _, err = await cli(
        capsys, "send-file", str(path), "--target", target(gw), "--chunk", "500"
    )
    assert code == 1
    assert "line 503: messages[1].text" in err
    assert "500 of 600 messages were accepted before" in err
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 500


async def test_send_file_unreadable_input(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    # An RPC first: a gateway that never served a call can hang in shutdown (health task).
    await stub.GetStats(pb.GetStatsRequest())
    path = tmp_path / "broken.jsonl"
    path.write_text('{"chat_id": "1", "text": "ok"}\n{"chat_id": "1", "nope": 1}\n')
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 2
    assert "line 2:" in err and "nope" in err
