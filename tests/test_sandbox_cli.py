"""Sandbox mode's simulator address and the ``notigate sandbox`` commands, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.cli import main
from notigate.config import ConfigError, Settings, from_env
from notigate.embedded import EmbeddedValkey
from notigate.sandbox_cli import DEFAULT_URL, command_hint, default_url, format_message
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import pb
from tests.conftest import TOKEN, running_gateway, wait_state

NOTIGATE = str(Path(sys.executable).parent / "notigate")
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  chat (\S+)  #(\d+)  (.*)$")


# -- the setting -----------------------------------------------------------------------


def test_sandbox_listen_setting() -> None:
    assert from_env({}).sandbox_listen == "127.0.0.1:8081"
    assert DEFAULT_URL == "http://127.0.0.1:8081"
    env = {"NOTIGATE_SANDBOX_LISTEN": "0.0.0.0:9000"}
    assert from_env(env).sandbox_listen == "0.0.0.0:9000"
    assert from_env(env, sandbox_listen="127.0.0.1:0").sandbox_listen == "127.0.0.1:0"
    for bad in ("8081", "127.0.0.1:", ":8081", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ConfigError, match="NOTIGATE_SANDBOX_LISTEN"):
            from_env({"NOTIGATE_SANDBOX_LISTEN": bad})


def test_serve_flag_reaches_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--sandbox", "--sandbox-listen", "nonsense"], env={}) == 2
    assert "NOTIGATE_SANDBOX_LISTEN must be host:port" in capsys.readouterr().err


def test_the_commands_find_the_simulator_where_the_setting_puts_it() -> None:
    assert default_url({}) == DEFAULT_URL
    assert default_url({"NOTIGATE_SANDBOX_LISTEN": "127.0.0.1:9100"}) == "http://127.0.0.1:9100"
    assert default_url({"NOTIGATE_SANDBOX_LISTEN": "0.0.0.0:9100"}) == "http://127.0.0.1:9100"
    assert default_url({"NOTIGATE_SANDBOX_LISTEN": "[::]:9100"}) == "http://[::1]:9100"
    # Port 0 is only known to the gateway (and its log).
    assert default_url({"NOTIGATE_SANDBOX_LISTEN": "127.0.0.1:0"}) == DEFAULT_URL
    assert command_hint("messages", DEFAULT_URL) == "notigate sandbox messages"
    assert command_hint("messages", "http://127.0.0.1:9") == (
        "notigate sandbox messages --url http://127.0.0.1:9"
    )


# -- sandbox mode's simulator ----------------------------------------------------------


def _sandbox_settings(valkey: EmbeddedValkey, tmp_path: Path, listen: str) -> Settings:
    return Settings(
        redis_url=valkey.url,
        sandbox=True,
        sandbox_listen=listen,
        dashboard_listen="127.0.0.1:0",
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        shutdown_grace_s=2.0,
        health_interval_s=0.2,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


async def test_sandbox_simulator_listens_where_configured_and_the_log_names_the_command(
    redis: Redis, valkey: EmbeddedValkey, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="notigate.app")
    async with running_gateway(_sandbox_settings(valkey, tmp_path, "127.0.0.1:0")) as (gw, stub):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", gw.sandbox_url)
        assert gw.sandbox_url != DEFAULT_URL
        reply = await stub.Send(pb.SendRequest(chat_id="42", text="to the sandbox"))
        await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
        # Delivered to the simulator at that address, which serves its control endpoints.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{gw.sandbox_url}/_sim/messages") as resp,
        ):
            assert [m["text"] for m in await resp.json()] == ["to the sandbox"]
    [record] = [r for r in caplog.records if "SANDBOX MODE" in r.getMessage()]
    assert f"`notigate sandbox messages --url {gw.sandbox_url}`" in record.getMessage()
    assert f"`notigate sandbox fail-chat ID --url {gw.sandbox_url}`" in record.getMessage()


async def test_a_taken_sandbox_port_fails_startup_clearly(
    redis: Redis, valkey: EmbeddedValkey, tmp_path: Path, taken_port: int
) -> None:
    listen = f"127.0.0.1:{taken_port}"
    with pytest.raises(ConfigError) as caught:
        async with Gateway(_sandbox_settings(valkey, tmp_path, listen)):
            pass
    message = str(caught.value)
    assert listen in message and "in use" in message and "NOTIGATE_SANDBOX_LISTEN" in message

    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN",)}
    env.update(
        REDIS_URL=valkey.url,
        NOTIGATE_LISTEN="127.0.0.1:0",
        NOTIGATE_DATA_DIR=str(tmp_path),
        NOTIGATE_SANDBOX_LISTEN=listen,
        NOTIGATE_DASHBOARD_LISTEN="127.0.0.1:0",
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [NOTIGATE, "serve", "--sandbox"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"cannot listen on {listen}" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr


# -- notigate sandbox messages ---------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[BotApiSimulator]:
    sim = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig(enforce_limits=False))
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


async def _send(sim: BotApiSimulator, chat_id: str, text: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.base_url}/bot{TOKEN}/sendMessage", data={"chat_id": chat_id, "text": text}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def _cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        NOTIGATE, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_messages_lists_what_the_simulator_accepted(sim: BotApiSimulator) -> None:
    code, out, err = await _cli("sandbox", "messages", "--url", sim.base_url)
    assert (code, out) == (0, "") and "no messages" in err

    long_text = "Order #42\nshipped " + "x" * 200
    for chat, text in (("123456789", "first"), ("-100777", long_text), ("123456789", "third")):
        await _send(sim, chat, text)
    code, out, _ = await _cli("sandbox", "messages", "--url", sim.base_url)
    assert code == 0
    lines = out.splitlines()
    assert [LINE.match(line).groups()[:2] for line in lines] == [
        ("123456789", "1"),
        ("-100777", "1"),
        ("123456789", "2"),
    ]
    # Local wall-clock time of acceptance, as this process (same TZ) formats it.
    first = sim.messages[0]
    assert lines[0].startswith(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first.date)))
    assert lines[0] == format_message(dataclasses.asdict(first))
    shortened = LINE.match(lines[1])[3]
    assert shortened.startswith("Order #42 shipped xxx") and shortened.endswith("…")
    assert len(shortened) < len(long_text)

    code, out, _ = await _cli("sandbox", "messages", "--url", sim.base_url, "--chat", "123456789")
    assert [LINE.match(line)[3] for line in out.splitlines()] == ["first", "third"]

    code, out, _ = await _cli("sandbox", "messages", "--url", sim.base_url, "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == ["first", long_text, "third"]
    assert records == [dataclasses.asdict(m) for m in sim.messages]


async def test_commands_say_when_the_simulator_is_not_there() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    for argv in (["messages"], ["fail-chat", "1"]):
        code, out, err = await _cli("sandbox", *argv, "--url", url)
        assert code == 1 and out == ""
        assert f"sandbox simulator at {url}" in err and "notigate serve --sandbox" in err
        assert "Traceback" not in err
    code, _, err = await _cli("sandbox", "messages", "--url", "ftp://example")
    assert code == 2 and "http://" in err


async def test_fail_chat_fails_sends_until_cleared(sim: BotApiSimulator) -> None:
    code, out, _ = await _cli("sandbox", "fail-chat", "555", "--url", sim.base_url)
    assert code == 0 and "403" in out
    code, out, _ = await _cli(
        "sandbox", "fail-chat", "556", "--error", "not-found", "--url", sim.base_url
    )
    assert code == 0 and "400" in out
    async with aiohttp.ClientSession() as http:

        async def answer(chat: str) -> tuple[int, str]:
            url = f"{sim.base_url}/bot{TOKEN}/sendMessage"
            async with http.post(url, data={"chat_id": chat, "text": "x"}) as resp:
                return resp.status, (await resp.json()).get("description", "")

        assert await answer("555") == (403, "Forbidden: bot was blocked by the user")
        assert await answer("556") == (400, "Bad Request: chat not found")
        code, out, _ = await _cli("sandbox", "fail-chat", "555", "--clear", "--url", sim.base_url)
        assert code == 0 and "delivered again" in out
        assert (await answer("555"))[0] == 200
        assert (await answer("556"))[0] == 400


# -- notigate sandbox messages --follow ------------------------------------------------


def _sigint_default() -> None:
    # A shell that starts this test in the background ignores SIGINT in its children.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_follow_prints_each_message_once_across_reset_and_restart(
    sim: BotApiSimulator,
) -> None:
    await _send(sim, "1", "before")
    port = sim.port
    proc = await asyncio.create_subprocess_exec(
        NOTIGATE,
        "sandbox",
        "messages",
        "--follow",
        "--url",
        sim.base_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_sigint_default,
    )
    assert proc.stdout is not None and proc.stderr is not None

    async def next_text() -> str:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        match = LINE.match(line.decode().rstrip("\n"))
        assert match, line
        return match[3]

    restarted: BotApiSimulator | None = None
    try:
        assert await next_text() == "before"
        for i in range(5):
            await _send(sim, str(10 + i % 2), f"live {i}")
        assert [await next_text() for _ in range(5)] == [f"live {i}" for i in range(5)]
        sim.reset()  # the cursor stays valid: numbering continues
        await _send(sim, "1", "after reset")
        assert await next_text() == "after reset"

        # A new simulator on the same port numbers from 1 again: still nothing missed.
        await sim.stop()
        restarted = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig())
        await restarted.start(host="127.0.0.1", port=port)
        await _send(restarted, "1", "after restart")
        assert await next_text() == "after restart"

        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
        rest = await proc.stdout.read()
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if restarted is not None:
            await restarted.stop()
    assert proc.returncode == 0
    assert rest == b""  # no duplicates after the last expected line
    assert "Traceback" not in err and "restarted" in err


def test_the_standalone_simulator_says_when_its_port_is_taken(taken_port: int) -> None:
    result = subprocess.run(
        [NOTIGATE, "simulator", "--port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
