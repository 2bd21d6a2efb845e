"""``notigate send-file`` against a running gateway: keys that survive edits, validation of the
whole file before anything is sent, --dry-run and --wait."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway
from tests.test_cli import NOTIGATE, cli, target


def _rows(n: int, start: int = 0) -> list[str]:
    return [
        f'{100 + i % 7},"message {i}",{i % 3},HTML,{"true" if i % 2 else ""}'
        for i in range(start, start + n)
    ]


def _write(
    path: Path,
    rows: list[str],
    header: str = "chat_id,text,priority,parse_mode,disable_notification",
) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


async def _stats(stub: Stub) -> pb.GetStatsResponse:
    return await stub.GetStats(pb.GetStatsRequest())


async def _all_jobs(stub: Stub) -> list[pb.Job]:
    jobs: list[pb.Job] = []
    token = ""
    while True:
        page = await stub.ListJobs(pb.ListJobsRequest(page_size=1000, page_token=token))
        jobs += page.jobs
        token = page.next_page_token
        if not token:
            return jobs


async def test_csv_in_chunks_with_progress(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = _write(tmp_path / "messages.csv", _rows(1001))
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert out.strip() == (
        f"1001 messages accepted from {path}: 1001 new, 0 already accepted (not sent again)"
    )
    # stderr is not a terminal here: one progress line per SendBatch of 500.
    assert [line.split()[1] for line in err.splitlines()] == ["500/1001", "1000/1001", "1001/1001"]
    assert (await _stats(stub)).total_enqueued == 1001
    [job] = (await stub.ListJobs(pb.ListJobsRequest(page_size=1))).jobs
    assert job.request.parse_mode == pb.PARSE_MODE_HTML
    assert re.fullmatch(r"sf:[0-9a-f]{32}:1", job.request.idempotency_key)


async def test_a_rerun_after_edits_sends_only_what_changed(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    rows = _rows(600)
    rows[501] = '105,"",0,HTML,'  # line 503: no text
    path = _write(tmp_path / "messages.csv", rows)
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 1
    assert out == ""
    assert "600 rows checked, 1 invalid; nothing was sent" in err
    assert "  line 503: text: text is required" in err
    assert (await _stats(stub)).total_enqueued == 0

    rows[501] = '105,"message 501, fixed",0,HTML,'
    _write(path, rows)
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert "600 new, 0 already accepted" in out

    # Correct one accepted row, insert two rows at the top (every line number moves) and drop
    # the last: only the corrected row and the two new ones are messages not sent yet.
    rows[9] = '102,"message 9, corrected",0,HTML,true'
    rows = ['200,"first new",0,,', '201,"second new",0,,', *rows[:-1]]
    _write(path, rows)
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert "601 messages accepted" in out and "3 new, 598 already accepted (not sent again)" in out
    stats = await _stats(stub)
    assert stats.total_enqueued == 603
    assert stats.total_duplicates == 598
    texts = {j.request.text for j in await _all_jobs(stub)}
    assert {"message 9, corrected", "first new", "second new"} <= texts

    # Reordering changes nothing either.
    _write(path, rows[::-1])
    code, out, _ = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert "0 new, 601 already accepted" in out
    assert (await _stats(stub)).total_enqueued == 603


async def test_identical_rows_are_distinct_messages(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    same = '300,"reminder",0,,'
    path = _write(tmp_path / "same.csv", [same, '301,"other",0,,', same])
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert "3 new, 0 already accepted" in out
    jobs = {j.job_id: j.request for j in await _all_jobs(stub)}
    reminders = sorted(r.idempotency_key for r in jobs.values() if r.text == "reminder")
    [other] = [r.idempotency_key for r in jobs.values() if r.text == "other"]
    # Same message, same hash; the occurrence number tells the two apart.
    hashes = {k.rsplit(":", 1)[0] for k in reminders}
    assert len(hashes) == 1 and other.rsplit(":", 1)[0] not in hashes
    assert [k.rsplit(":", 1)[1] for k in reminders] == ["1", "2"]

    code, out, _ = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert "0 new, 3 already accepted" in out
    # Spelled differently, the same messages: an empty cell is an unset field, and
    # "HTML" is PARSE_MODE_HTML. Dropping one of the twins leaves one already accepted.
    header = "chat_id,text,priority,parse_mode,disable_notification"
    _write(path, ['300,"reminder",,PARSE_MODE_UNSPECIFIED,false', '301,"other",0,,'], header)
    code, out, _ = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert "0 new, 2 already accepted" in out
    assert (await _stats(stub)).total_enqueued == 3


async def test_an_explicit_key_wins_and_must_be_unique(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    header = "chat_id,text,idempotency_key"
    path = _write(tmp_path / "keys.csv", ['1,"a",order-1', '1,"b",'], header=header)
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    keys = {j.request.text: j.request.idempotency_key for j in await _all_jobs(stub)}
    assert keys["a"] == "order-1" and keys["b"].startswith("sf:")

    # Two rows with one key would be one job: refused before anything is sent, across chunks.
    _write(path, ['1,"c",order-2', '1,"d",', '1,"e",order-2'], header=header)
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw), "--chunk", "1")
    assert code == 1
    assert "line 4: idempotency_key: the same idempotency_key as line 2" in err
    assert (await _stats(stub)).total_enqueued == 2


async def test_every_bad_row_is_reported_and_nothing_sent(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    header = "chat_id,text,priority,delay,parse_mode,reply_markup"
    rows = [
        '1,"ok",0,,,',  # line 2
        '1,"ok",high,,,',  # 3: local: not an integer
        '1,"ok",0,soon,,',  # 4: local: not a duration
        '1,"ok",0,,htm,',  # 5: local: unknown parse_mode
        '1,"ok",0,,,{not json',  # 6: local: not JSON
        'abc,"ok",0,,,',  # 7: server: chat_id
        '1,"",99,,,',  # 8: server: text and priority
        '1,"ok",0,,,"{""rows"": [{""buttons"": [{""text"": ""go"", ""url"": ""ftp://x""}]}]}"',
        '1,"ok",0,,,',  # 10
    ]
    path = _write(tmp_path / "bad.csv", rows, header=header)
    code, out, err = await cli(
        capsys, "send-file", str(path), "--target", target(gw), "--chunk", "3"
    )
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"notigate: {path}: 9 rows checked, 7 invalid; nothing was sent:"
    where = [re.match(r"  line (\d+): (\w+): ", line) for line in lines[1:]]
    assert [(int(m[1]), m[2]) for m in where if m] == [
        (3, "priority"),
        (4, "delay"),
        (5, "parse_mode"),
        (6, "reply_markup"),
        (7, "chat_id"),
        (8, "priority"),
        (8, "text"),
        (9, "reply_markup"),
    ]
    assert "rows[0].buttons[0].url: url must be" in err
    assert "messages[" not in err  # the file's lines and columns, not the batch's indexes
    stats = await _stats(stub)
    assert stats.total_enqueued == 0 and stats.total_duplicates == 0


async def test_all_bad_rows_are_reported_beyond_one_reply(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    # 300 violations do not fit in one error reply: the server lists the first ones only.
    path = _write(tmp_path / "bad.csv", [f'x{i},"m"' for i in range(300)], header="chat_id,text")
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 1
    reported = [int(n) for n in re.findall(r"^  line (\d+): chat_id: ", err, re.M)]
    assert reported == list(range(2, 302))
    assert (await _stats(stub)).total_enqueued == 0


async def test_jsonl_columns_as_the_file_spells_them(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = tmp_path / "messages.jsonl"
    records = [
        {"chat_id": "300", "text": "a", "delay": "90s", "parse_mode": "MarkdownV2"},
        {
            "chatId": 301,
            "text": "b",
            "reply_markup": {"rows": [{"buttons": [{"text": "open", "url": "https://e.x"}]}]},
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    code, out, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 0, err
    assert out.startswith("2 messages accepted")
    [job] = (await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_DELAYED))).jobs
    assert job.request.delay.seconds == 90
    assert job.request.parse_mode == pb.PARSE_MODE_MARKDOWN_V2

    path.write_text(
        '{"chatId": "1", "text": ""}\n'
        "not json\n"
        '{"chat_id": "1", "text": "x", "nope": 1, "parseMode": "htm"}\n'
    )
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 1
    assert "line 1: text: text is required" in err
    assert "line 2: not JSON" in err
    assert "line 3: nope: unknown column 'nope'; known: chat_id, text," in err
    assert "line 3: parseMode: unknown parse_mode 'htm' (use HTML, MarkdownV2 or Markdown)" in err


async def test_header_problems_at_line_1(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    await stub.GetStats(pb.GetStatsRequest())
    path = _write(tmp_path / "h.csv", ['1,"a",0,1'], header="chat_id,txt,Priority,chat_id")
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"notigate: {path}: invalid header; nothing was sent:"
    assert lines[1].startswith("  line 1: Priority: unknown column 'Priority'; known: chat_id,")
    assert lines[2] == "  line 1: chat_id: the same field as column 'chat_id'"
    assert lines[3].startswith("  line 1: txt: unknown column 'txt'; known: chat_id, text,")
    assert "send_at" in lines[3] and "chatId" not in err and "notigate.v1" not in err

    _write(path, ["1,0"], header="chat_id,priority")
    code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
    assert code == 1
    assert "  line 1: text: missing column" in err
    assert (await _stats(stub)).total_enqueued == 0


async def test_unreadable_files(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    await stub.GetStats(pb.GetStatsRequest())
    for name, content in [("missing.csv", None), ("latin1.csv", b"chat_id,text\n1,\xe9\n")]:
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        code, _, err = await cli(capsys, "send-file", str(path), "--target", target(gw))
        assert code == 2, name
        assert err.startswith(f"notigate: {path}: ")


async def test_dry_run_sends_nothing(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = _write(tmp_path / "m.csv", _rows(700))
    code, out, err = await cli(capsys, "send-file", str(path), "--dry-run", "--target", target(gw))
    assert code == 0, err
    assert out.strip() == "700 rows checked, all valid; nothing was sent (--dry-run)"
    stats = await _stats(stub)
    assert stats.total_enqueued == 0 and stats.total_duplicates == 0

    _write(path, [*_rows(700), '1,"",0,,'])
    code, out, err = await cli(capsys, "send-file", str(path), "--dry-run", "--target", target(gw))
    assert code == 1
    assert "701 rows checked, 1 invalid" in err and "line 702: text" in err
    assert (await _stats(stub)).total_enqueued == 0


async def test_wait_follows_delivery_and_counts_failures(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw, _ = gateway
    simulator.block_chat("13")
    rows = ['11,"a"', '12,"b"', '13,"c"', '13,"d"', '14,"e"']
    path = _write(tmp_path / "w.csv", rows, header="chat_id,text")
    argv = ["send-file", str(path), "--wait", "--poll-interval", "0.05", "--target", target(gw)]
    code, out, err = await cli(capsys, *argv)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].endswith("5 new, 0 already accepted (not sent again)")
    assert lines[1] == "3 delivered, 2 failed, 0 cancelled"
    assert lines[2] == "failed:"
    # The first 403 suppressed chat 13: the other job there failed without a send.
    assert sorted(line.split(maxsplit=1) for line in lines[3:5]) == [
        ["1", "Forbidden: bot was blocked by the user"],
        ["1", "suppressed: Forbidden: bot was blocked by the user"],
    ]
    assert err.splitlines()[-1].split()[1:2] == ["5/5"]
    assert "finished" in err.splitlines()[-1]

    simulator.reset()
    simulator.accept_token(gw.settings.bot_token or "")
    path = _write(tmp_path / "ok.csv", ['11,"f"'], header="chat_id,text")
    code, out, err = await cli(capsys, *argv[:1], str(path), *argv[2:])
    assert code == 0, err
    assert out.splitlines()[1] == "1 delivered, 0 failed, 0 cancelled"


async def test_ctrl_c_stops_waiting_only(gateway: tuple[Gateway, Stub], tmp_path: Path) -> None:
    gw, stub = gateway
    path = _write(tmp_path / "later.csv", ['15,"later",10m'], header="chat_id,text,delay")
    proc = await asyncio.create_subprocess_exec(
        str(NOTIGATE),
        "send-file",
        str(path),
        "--wait",
        "--poll-interval",
        "0.05",
        "--target",
        target(gw),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    # The first line of the second bar: waiting has begun.
    while b"finished" not in await asyncio.wait_for(proc.stderr.readline(), 20):
        pass
    proc.send_signal(signal.SIGINT)
    rest = await asyncio.wait_for(proc.stderr.read(), 20)
    assert await proc.wait() == 130
    assert b"stopped waiting: 0 of 1 finished; the others stay queued" in rest
    assert b"1 new" in await proc.stdout.read()
    [job] = (await stub.ListJobs(pb.ListJobsRequest())).jobs
    assert job.state == pb.JOB_STATE_DELAYED


async def test_a_row_is_where_it_starts(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    path = _write(tmp_path / "m.csv", ['1,"two\nlines"', "", '1,""'], header="chat_id,text")
    code, _, err = await cli(capsys, "send-file", str(path), "--dry-run", "--target", target(gw))
    assert code == 1
    assert "2 rows checked, 1 invalid" in err
    assert "  line 5: text: text is required" in err
    assert (await _stats(stub)).total_enqueued == 0


async def test_wait_counts_jobs_the_gateway_no_longer_keeps(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Keeping no completed job: each one is gone before --wait can see it delivered.
    settings = gateway_settings(valkey, simulator, keep_completed=0)
    async with running_gateway(settings) as (gw, _):
        path = _write(tmp_path / "w.csv", ['21,"a"', '22,"b"'], header="chat_id,text")
        argv = ["send-file", str(path), "--wait", "--poll-interval", "0.05"]
        code, out, err = await cli(capsys, *argv, "--target", target(gw))
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[1]
        == "0 delivered, 0 failed, 0 cancelled, 2 finished but no longer kept by the gateway"
    )
