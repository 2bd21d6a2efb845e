"""The Python client and the CLI against a gateway serving several bots.

The gateway serves ``default``, ``support`` and ``alerts``; the simulator knows each bot's
token, so a delivered message tells by its ``bot_id`` which bot sent it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import TokenBinding
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import (
    AsyncNotificationClient,
    InvalidArgumentError,
    NotificationClient,
    NotigateError,
    PermissionDeniedError,
    bot_of_job,
    document,
    pb,
)
from notigate_client._common import build_send_request
from notigate_client.cli.commands import format_bots
from tests.conftest import (
    Stub,
    bot_token,
    bots_settings,
    bots_simulator,
    running_gateway,
    wait_state,
)
from tests.test_cli import cli
from tests.test_node_client import EXAMPLE, ROOT, _node

BOTS = ("default", "support", "alerts")
LATER = timedelta(hours=1)


def bot_id(name: str) -> int:
    """The Telegram id of bot ``name``: its token's first part."""
    return int(bot_token(name).partition(":")[0])


class Bots:
    """A running three-bot gateway, its simulator and an async client on it."""

    def __init__(self, gw: Gateway, stub: Stub, sim: BotApiSimulator) -> None:
        self.gw, self.stub, self.sim = gw, stub, sim
        self.target = f"127.0.0.1:{gw.port}"

    def client(self, **kw: Any) -> AsyncNotificationClient:
        return AsyncNotificationClient(self.target, retries=0, **kw)


@pytest.fixture
async def bots(redis: Redis, valkey: EmbeddedValkey) -> AsyncIterator[Bots]:
    async with (
        bots_simulator(*BOTS) as sim,
        running_gateway(bots_settings(valkey, sim, BOTS)) as (gw, stub),
    ):
        yield Bots(gw, stub, sim)


# -- the client ------------------------------------------------------------------


async def test_each_bot_sends_its_own_messages_and_ids_name_the_bot(bots: Bots) -> None:
    async with bots.client() as client:
        sent = {
            name: await client.send(700 + i, f"from {name}", bot=name, wait=True, wait_timeout=20)
            for i, name in enumerate(BOTS)
        }
        for i, name in enumerate(BOTS):
            job = sent[name]
            assert job.state == pb.JOB_STATE_COMPLETED
            assert job.bot == name
            [delivered] = bots.sim.chat_messages(str(700 + i))
            assert delivered.bot_id == bot_id(name)
            assert delivered.text == f"from {name}"
            # The id alone finds the job: no bot is named.
            assert (await client.get_job(job.job_id)).bot == name
        assert sent["default"].job_id.isdigit()
        assert sent["support"].job_id.startswith("support:")
        assert sent["alerts"].job_id.startswith("alerts:")
        assert bot_of_job(sent["support"].job_id) == "support"
        assert bot_of_job(sent["default"].job_id) == ""


async def test_a_client_wide_bot_applies_unless_a_call_names_its_own(bots: Bots) -> None:
    async with bots.client(bot="support") as client:
        assert (await client.send(710, "x", delay=LATER)).job_id.startswith("support:")
        # "" is the gateway's default bot, not the client's.
        assert (await client.send(711, "x", delay=LATER, bot="")).job_id.isdigit()
        assert (await client.send(712, "x", delay=LATER, bot="alerts")).job_id.startswith("alerts:")
        assert (await client.stats()).delayed == 1
        assert (await client.stats(bot="")).delayed == 3
        listed = [j.job_id async for j in client.list_jobs("delayed")]
        assert len(listed) == 1 and listed[0].startswith("support:")
        # A prepared request naming no bot goes to the client's; one naming a bot keeps it.
        req = build_send_request(713, "x", delay=LATER)
        assert (await client.send_request(req)).job_id.startswith("support:")
        assert req.bot == ""
        named = build_send_request(714, "x", delay=LATER, bot="alerts")
        assert (await client.send_request(named)).job_id.startswith("alerts:")


async def test_the_blocking_client_takes_the_same_bot_arguments(bots: Bots) -> None:
    def use() -> None:
        with NotificationClient(bots.target, bot="alerts", retries=0) as client:
            job = client.send(720, "sync", wait=True, wait_timeout=20)
            assert job.job_id.startswith("alerts:") and job.state == pb.JOB_STATE_COMPLETED
            assert client.get_job(job.job_id).bot == "alerts"
            assert client.stats().total_sent == 1
            assert client.stats(bot="support").total_sent == 0
            assert [j.job_id for j in client.list_jobs(bot="")] == []
            assert "bot='alerts'" in repr(client)

    # The blocking client runs in a thread: the gateway serves on this loop.
    await asyncio.to_thread(use)


async def test_a_batch_goes_to_the_call_bot_unless_its_messages_name_one(bots: Bots) -> None:
    async with bots.client() as client:
        plain = [build_send_request(730 + i, f"m{i}", delay=LATER) for i in range(2)]
        results = await client.send_batch(plain, bot="support")
        assert all(r.job_id.startswith("support:") for r in results)
        assert all(not r.bot for r in plain)  # the caller's messages are not changed
        named = build_send_request(732, "n", delay=LATER, bot="support")
        [result] = await client.send_batch([named], bot="alerts")
        assert result.job_id.startswith("support:")
        # A batch is one bot's: a message naming another is refused, and nothing stored.
        mixed = [build_send_request(733, "a", bot="alerts"), build_send_request(734, "b")]
        with pytest.raises(InvalidArgumentError) as caught:
            await client.send_batch(mixed, bot="support")
        assert any(f == "messages[1].bot" for f, _ in caught.value.violations)
        stats = await client.stats(bot="")
        assert stats.total_enqueued == 3
        assert {b.bot: b.stats.total_enqueued for b in stats.bots} == {
            "default": 0,
            "support": 3,
            "alerts": 0,
        }


async def test_an_unknown_bot_is_invalid_and_names_the_bots(bots: Bots) -> None:
    async with bots.client() as client:
        calls = [
            client.send(740, "x", bot="nope"),
            client.stats(bot="nope"),
            client.cancel_jobs(bot="nope", validate_only=True),
            client.list_suppressed_chats(bot="nope"),
        ]
        for call in calls:
            with pytest.raises(InvalidArgumentError) as caught:
                await call
            err = caught.value
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT
            assert err.reason == "BOT_UNKNOWN"
            said = err.message + " ".join(d for _, d in err.violations)
            assert all(name in said for name in BOTS)
        assert (await client.stats(bot="")).total_enqueued == 0
        with pytest.raises(InvalidArgumentError):
            await client.upload_file(io.BytesIO(b"data"), filename="a.txt", bot="nope")


async def test_bulk_calls_act_on_one_bot_only(bots: Bots) -> None:
    async with bots.client() as client:
        for name in BOTS:
            await client.send(750, "later", bot=name, delay=LATER)
        counted = await client.cancel_jobs(bot="support", validate_only=True)
        assert counted.count == 1 and counted.sample_job_ids[0].startswith("support:")
        assert (await client.cancel_jobs(chat_id=750, bot="support")).count == 1
        per_bot = {b.bot: b.stats.delayed for b in (await client.stats(bot="")).bots}
        assert per_bot == {"default": 1, "support": 0, "alerts": 1}
        assert (await client.retry_jobs(bot="alerts", validate_only=True)).count == 0


async def test_uploads_belong_to_the_bot_they_are_for(bots: Bots) -> None:
    async with bots.client() as client:
        upload = await client.upload_file(io.BytesIO(b"%PDF-1"), filename="a.pdf", bot="support")
        file = document(upload_id=upload.upload_id)
        job = await client.send(760, "doc", media=file, bot="support", wait=True, wait_timeout=20)
        assert job.state == pb.JOB_STATE_COMPLETED
        [delivered] = bots.sim.chat_messages("760")
        assert delivered.bot_id == bot_id("support") and delivered.kind == "document"
        # Another bot cannot send it: Telegram's files are per bot, and so are uploads.
        with pytest.raises(NotigateError):
            await client.send(761, "doc", media=file, bot="alerts")
        assert (await client.stats(bot="alerts")).total_enqueued == 0


async def test_suppression_and_events_are_per_bot(bots: Bots) -> None:
    bots.sim.block_chat("770")
    async with bots.client() as client, client.watch_events(bot="support") as events:
        await events.connect()
        job = await client.send(770, "x", bot="support", wait=True, wait_timeout=20)
        assert job.state == pb.JOB_STATE_FAILED
        watched = await anext(events)
        assert watched.event.bot == "support" and watched.event.job_id.startswith("support:")
        [chat] = (await client.list_suppressed_chats(bot="support")).chats
        assert chat.chat_id == "770" and chat.bot == "support"
        assert not (await client.list_suppressed_chats()).chats
        assert not (await client.list_suppressed_chats(bot="alerts")).chats
        lifted = await client.unsuppress_chat(770, bot="support")
        assert lifted.bot == "support"
        assert not (await client.list_suppressed_chats(bot="support")).chats


async def test_a_token_bound_to_other_bots_is_permission_denied(valkey: EmbeddedValkey) -> None:
    token = "t-support-only"
    binding = TokenBinding(hashlib.sha256(token.encode()).digest(), frozenset({"support"}))
    async with (
        bots_simulator(*BOTS) as sim,
        running_gateway(bots_settings(valkey, sim, BOTS, token_bindings=(binding,))) as (gw, _),
        AsyncNotificationClient(f"127.0.0.1:{gw.port}", token=token, retries=0) as client,
    ):
        sent = await client.send(780, "ok", bot="support", delay=LATER)
        assert sent.job_id.startswith("support:")
        with pytest.raises(PermissionDeniedError) as caught:
            await client.send(781, "no", bot="alerts")
        assert caught.value.reason == "BOT_NOT_ALLOWED"
        assert caught.value.bot == "alerts"
        assert "support" in caught.value.message


# -- the CLI ---------------------------------------------------------------------


async def test_cli_sends_with_bot_and_finds_the_job_by_id(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--target", bots.target]
    code, out, _ = await cli(
        capsys, "send", *base, "--bot", "support", "--chat", "800", "--text", "hi"
    )
    assert code == 0
    job_id = out.strip()
    assert job_id.startswith("support:")
    await wait_state(bots.stub, job_id, pb.JOB_STATE_COMPLETED)
    assert [m.bot_id for m in bots.sim.chat_messages("800")] == [bot_id("support")]
    code, out, _ = await cli(capsys, "job", job_id, *base)
    assert code == 0 and job_id in out and "completed" in out

    env = {"NOTIGATE_TARGET": bots.target, "NOTIGATE_BOT": "alerts"}
    code, out, _ = await cli(capsys, "send", "--chat", "801", "--text", "x", env=env)
    assert code == 0 and out.strip().startswith("alerts:")
    # The flag wins over the environment.
    code, out, _ = await cli(
        capsys, "send", "--chat", "802", "--text", "x", "--bot", "default", env=env
    )
    assert code == 0 and out.strip().isdigit()


async def test_cli_unknown_bot_is_refused_naming_the_bots(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--target", bots.target, "--bot", "nope"]
    for argv in (
        ["send", *base, "--chat", "810", "--text", "x"],
        ["stats", *base],
        ["jobs", *base],
        ["suppressed", "list", *base],
    ):
        code, out, err = await cli(capsys, *argv)
        assert code == 1, argv
        assert not out
        assert "INVALID_ARGUMENT" in err and "nope" in err
        assert all(name in err for name in BOTS)
    async with bots.client() as client:
        assert (await client.stats(bot="")).total_enqueued == 0


async def test_cli_stats_shows_the_sum_then_each_bot(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    async with bots.client() as client:
        for chat in (820, 821):
            await client.send(chat, "x", bot="support", delay=LATER)
        await client.send(822, "x", bot="alerts", delay=LATER)
    base = ["--target", bots.target]
    code, out, _ = await cli(capsys, "stats", *base)
    assert code == 0
    total, _, breakdown = out.partition("\nBOT")
    [delayed] = [line.split() for line in total.splitlines() if line.startswith("delayed")]
    assert delayed[1] == "3"
    rows = {line.split()[0]: line.split() for line in breakdown.splitlines()[1:] if line}
    assert set(rows) == set(BOTS)
    # BOT WAITING DELAYED ACTIVE FAILED SENT TOKEN
    assert rows["support"][2] == "2" and rows["alerts"][2] == "1" and rows["default"][2] == "0"
    assert all(row[6] == "ok" for row in rows.values())

    code, out, _ = await cli(capsys, "stats", *base, "--bot", "support")
    assert code == 0
    # One bot's figures print as a one-bot gateway's always have: no breakdown.
    assert "BOT" not in out and "TOKEN" not in out
    assert out.splitlines()[0].split() == ["QUEUE", "TOTALS", "(lifetime)"]
    [delayed] = [line.split() for line in out.splitlines() if line.startswith("delayed")]
    assert delayed[1] == "2"


def test_stats_of_one_bot_print_as_before() -> None:
    one = pb.GetStatsResponse(waiting=4)
    one.bots.add(bot="default", stats=pb.GetStatsResponse(waiting=4), token_ok=True)
    assert format_bots(one) == ""
    assert format_bots(pb.GetStatsResponse()) == ""
    two = pb.GetStatsResponse(waiting=4)
    two.bots.add(bot="default", stats=pb.GetStatsResponse(waiting=4), token_ok=True)
    two.bots.add(bot="support", token_ok=False)
    lines = format_bots(two).splitlines()
    assert lines[0].split() == ["BOT", "WAITING", "DELAYED", "ACTIVE", "FAILED", "SENT", "TOKEN"]
    assert lines[1].split()[:2] == ["default", "4"] and lines[1].endswith("ok")
    assert lines[2].startswith("support") and "rejected" in lines[2]


async def test_cli_lists_and_cancels_one_bot_jobs(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    async with bots.client() as client:
        for name in BOTS:
            await client.send(830, f"for {name}", bot=name, delay=LATER)
    base = ["--target", bots.target]
    code, out, _ = await cli(capsys, "jobs", *base, "--bot", "alerts", "--state", "delayed")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(ids) == 1 and ids[0].startswith("alerts:")

    code, out, _ = await cli(capsys, "cancel", "--all", "--yes", *base, "--bot", "support")
    assert code == 0
    assert "of bot support" in out and "cancelled 1 jobs" in out
    async with bots.client() as client:
        per_bot = {b.bot: b.stats.delayed for b in (await client.stats(bot="")).bots}
    assert per_bot == {"default": 1, "support": 0, "alerts": 1}


async def test_cli_suppressed_and_events_take_the_bot(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    bots.sim.block_chat("840")
    async with bots.client() as client:
        job = await client.send(840, "x", bot="alerts", wait=True, wait_timeout=20)
    assert job.state == pb.JOB_STATE_FAILED
    base = ["--target", bots.target]
    code, out, _ = await cli(capsys, "suppressed", "list", *base)
    assert code == 0 and "no suppressed chats" in out
    code, out, _ = await cli(capsys, "suppressed", "list", *base, "--bot", "alerts")
    assert code == 0 and "840" in out
    events = ["events", *base, "--bot", "alerts", "--from", "0-0", "--count", "1"]
    code, out, _ = await cli(capsys, *events)
    assert code == 0 and "alerts:" in out
    code, out, _ = await cli(capsys, "suppressed", "remove", "840", *base, "--bot", "alerts")
    assert code == 0 and "no longer suppressed" in out
    async with bots.client() as client:
        assert not (await client.list_suppressed_chats(bot="alerts")).chats


async def test_cli_waits_for_a_job_of_another_bot(
    bots: Bots, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["send", "--target", bots.target, "--bot", "alerts", "--chat", "850", "--text", "w"]
    code, out, _ = await cli(capsys, *argv, "--wait")
    assert code == 0
    assert out.splitlines()[0].startswith("alerts:") and "completed" in out


async def test_cli_stats_say_which_bot_token_telegram_rejects(
    redis: Redis, valkey: EmbeddedValkey, capsys: pytest.CaptureFixture[str]
) -> None:
    # The simulator does not know the alerts bot's token: it answers 401 to it.
    async with (
        bots_simulator("default", "support") as sim,
        running_gateway(bots_settings(valkey, sim, BOTS)) as (gw, _),
    ):
        code, out, _ = await cli(capsys, "stats", "--target", f"127.0.0.1:{gw.port}")
    assert code == 0
    rows = {line.split()[0]: line for line in out.partition("\nBOT")[2].splitlines()[1:]}
    assert "rejected" in rows["alerts"]
    assert rows["default"].endswith("ok") and rows["support"].endswith("ok")


async def test_cli_send_file_rows_without_a_bot_go_to_the_flag_bot(
    bots: Bots, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("chat_id,text,delay\n860,one,1h\n861,two,1h\n")
    argv = ["send-file", str(rows), "--target", bots.target, "--bot", "support"]
    code, out, _ = await cli(capsys, *argv)
    assert code == 0 and "2 messages accepted" in out
    # A row naming another bot cannot share the batch: it is reported, nothing is sent.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("chat_id,text,bot,delay\n862,a,,1h\n863,b,alerts,1h\n")
    code, _, err = await cli(capsys, "send-file", str(mixed), *argv[2:])
    assert code == 1 and "line 3" in err and "nothing was sent" in err
    async with bots.client() as client:
        per_bot = {b.bot: b.stats.delayed for b in (await client.stats(bot="")).bots}
    assert per_bot == {"default": 0, "support": 2, "alerts": 0}


async def test_the_node_example_sends_as_the_bot_of_notigate_bot(bots: Bots) -> None:
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(EXAMPLE),
        bots.target,
        "870",
        "from node",
        cwd=ROOT,
        env={**os.environ, "NOTIGATE_BOT": "support"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    sent, stats = (json.loads(line) for line in out.decode().splitlines())
    assert sent["jobId"].startswith("support:")
    assert stats["totalEnqueued"] == 1
    await wait_state(bots.stub, sent["jobId"], pb.JOB_STATE_COMPLETED)
    assert [m.bot_id for m in bots.sim.chat_messages("870")] == [bot_id("support")]
