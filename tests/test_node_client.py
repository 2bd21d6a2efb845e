"""The Node.js example client against a live gateway, and the freshness of its stubs.

Needs node and `npm ci` (node_modules: buf, protoc-gen-es, @connectrpc/*); like
test_proto.py these fail rather than skip without them, so CI cannot silently stop
checking the polyglot path.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from notigate.app import Gateway
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, wait_for, wait_state

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "node" / "send.mjs"
PHOTO_EXAMPLE = ROOT / "examples" / "node" / "send-photo.mjs"
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
