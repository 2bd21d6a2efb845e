"""The Node.js example client against a live gateway, and the freshness of its stubs.

Needs node and `npm ci` (node_modules: buf, protoc-gen-es, @connectrpc/*); like
test_proto.py these fail rather than skip without them, so CI cannot silently stop
checking the polyglot path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for, wait_state

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "node" / "send.mjs"
PHOTO_EXAMPLE = ROOT / "examples" / "node" / "send-photo.mjs"
WATCH_EXAMPLE = ROOT / "examples" / "node" / "watch.mjs"
COMMITTED = ROOT / "examples" / "node" / "gen"
BUF = ROOT / "node_modules" / ".bin" / "buf"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is not on PATH"
    assert (ROOT / "node_modules" / "@connectrpc" / "connect-node").exists(), "run `npm ci`"
    return node


async def test_node_example_sends_and_reads_stats(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(EXAMPLE),
        f"127.0.0.1:{gw.port}",
        "777001",
        "Hello from Node.js",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    # No warnings either (examples/node/package.json declares gen/'s ES modules).
    assert err.decode().strip() == ""
    sent, stats = (json.loads(line) for line in out.decode().splitlines())
    assert sent["duplicate"] is False
    assert stats["totalEnqueued"] >= 1

    job = await wait_state(stub, sent["jobId"], pb.JOB_STATE_COMPLETED)
    assert job.request.priority == 5

    async def delivered() -> bool:
        return any(
            (m.chat_id, m.text) == ("777001", "Hello from Node.js") for m in simulator.messages
        )

    await wait_for(delivered)


async def test_node_example_sends_a_photo_by_url(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    url = "https://example.com/cat.jpg"
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(PHOTO_EXAMPLE),
        f"127.0.0.1:{gw.port}",
        "777002",
        url,
        "A cat",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err.decode().strip() == ""
    sent = json.loads(out.decode())
    job = await wait_state(stub, sent["jobId"], pb.JOB_STATE_COMPLETED)
    assert job.request.media.kind == pb.MEDIA_KIND_PHOTO
    assert job.request.media.url == url
    [message] = simulator.messages_after(chat_id="777002")
    assert message.params["photo"] == url
    assert message.text == "A cat"
    assert message.message_id == job.telegram_message_id


async def test_node_example_reports_invalid_argument(gateway: tuple[Gateway, Stub]) -> None:
    gw, _ = gateway
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(EXAMPLE),
        f"127.0.0.1:{gw.port}",
        "not a chat",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "invalid_argument" in err.decode().lower() or "code 3" in err.decode()


async def _watching(address: str, *args: str) -> asyncio.subprocess.Process:
    """watch.mjs started, and connected: it announced where its stream starts."""
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(WATCH_EXAMPLE),
        address,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(30):  # a hang guard
        line = (await proc.stderr.readline()).decode()
    assert line.startswith("watching events after "), line
    return proc


async def _printed(proc: asyncio.subprocess.Process) -> list[dict[str, object]]:
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_node_watch_example_prints_a_jobs_events(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    proc = await _watching(f"127.0.0.1:{gw.port}", "--chat", "777003", "--count", "3")
    await stub.Send(pb.SendRequest(chat_id="777004", text="another chat"))
    job_id = (await stub.Send(pb.SendRequest(chat_id="777003", text="watched"))).job_id
    events = await _printed(proc)
    assert [(e["jobId"], e["state"]) for e in events] == [
        (job_id, "waiting"),
        (job_id, "active"),
        (job_id, "completed"),
    ]
    job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    assert events[-1]["telegramMessageId"] == job.telegram_message_id
    assert not any(e["gap"] for e in events)


async def test_node_watch_example_resumes_after_a_gateway_restart(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, shutdown_grace_s=0.5)
    async with running_gateway(settings) as (gw, stub):
        address = f"127.0.0.1:{gw.port}"
        proc = await _watching(address, "--chat", "777005", "--count", "6")
        before = (await stub.Send(pb.SendRequest(chat_id="777005", text="1"))).job_id
        await wait_state(stub, before, pb.JOB_STATE_COMPLETED)
    # Delivered while watch.mjs may still be waiting to connect again: it asks for the
    # events after the last it printed, so it sees them either way.
    async with running_gateway(dataclasses.replace(settings, listen=address)) as (_, stub):
        after = (await stub.Send(pb.SendRequest(chat_id="777005", text="2"))).job_id
        events = await _printed(proc)
    states = ["waiting", "active", "completed"]
    assert [(e["jobId"], e["state"]) for e in events] == [
        (job_id, state) for job_id in (before, after) for state in states
    ]
    assert len({e["cursor"] for e in events}) == 6


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_committed_node_stubs_are_fresh(tmp_path: Path) -> None:
    assert BUF.exists(), f"{BUF} is missing: run `npm ci`"
    # Same template, another root: --output is prefixed to the template's `out`.
    result = subprocess.run(
        [str(BUF), "generate", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fresh = _files(tmp_path / "examples" / "node" / "gen")
    committed = _files(COMMITTED)
    assert fresh, "buf generate wrote nothing"
    assert fresh == committed, "stale Node stubs: run `node_modules/.bin/buf generate`"
