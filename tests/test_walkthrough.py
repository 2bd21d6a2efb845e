"""The README's walkthroughs, run as written against a live sandbox gateway.

The ``sh`` blocks of the "Sandbox" and "Sending with grpcurl" sections (with "With buf
curl") run command by command through bash from the repository root, with the real
binaries: notigate and grpcurl from the virtualenv, buf from node_modules, curl. Only
addresses change: ``localhost:50051`` and ``http://127.0.0.1:8081`` become the test
gateway's and its simulator's, and the ``notigate`` commands get them from
NOTIGATE_TARGET and NOTIGATE_SANDBOX_LISTEN, as a user who set those would. Setup lines
(``source .venv/bin/activate``, ``npm ci``) are what the test environment already is. A
``NAME=$(...)`` line keeps its output for later lines, as the shell would. Before each
command the gateway settles (nothing waiting, delayed or in flight), the pace of someone
typing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate_client import pb
from tests.conftest import Stub, running_gateway, wait_for

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
BUF = ROOT / "node_modules" / ".bin" / "buf"
# What these lines set up, the test environment already is (PATH, node_modules).
SETUP = {"source .venv/bin/activate", "npm ci"}
GRPC_ADDRESS = "localhost:50051"
SIM_URL = "http://127.0.0.1:8081"
# The job id the README's grpcurl lines show; the test puts its first job's id there.
EXAMPLE_JOB = "290012345678"
_CAPTURE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)$")


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level
    (lines in code blocks are not headings, even when they start with ``#``)."""
    level = len(heading.split(" ", 1)[0])
    lines: list[str] = []
    inside = in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (marks := re.match(r"^(#+) ", line)):
            if line == heading:
                inside = True
            elif inside and len(marks[1]) <= level:
                break
        if inside:
            lines.append(line)
    assert lines, f"README has no {heading!r}"
    return "\n".join(lines) + "\n"


def sh_commands(text: str) -> list[str]:
    """Commands of the ``sh`` blocks in ``text``: continuation lines joined, comments out."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            if pending.strip() and not pending.lstrip().startswith("#"):
                commands.append(pending.strip())
            pending = ""
    return commands


def sandbox_commands() -> list[str]:
    return sh_commands(section(README.read_text(), "### Sandbox"))


def grpcurl_commands() -> list[str]:
    # The "With buf curl" subsection belongs to the section.
    return sh_commands(section(README.read_text(), "## Sending with grpcurl"))


def test_the_walkthroughs_are_found() -> None:
    sandbox = sandbox_commands()
    assert sandbox[0] == "source .venv/bin/activate"
    for step in ("sandbox messages", "sandbox fail-chat", "jobs --state failed", "retry"):
        assert any(f"notigate {step}" in c for c in sandbox), step
    assert sum(c.startswith("curl ") for c in sandbox) >= 2
    grpc = grpcurl_commands()
    assert sum(c.startswith("grpcurl ") for c in grpc) >= 7
    assert sum(c.startswith("node_modules/.bin/buf curl ") for c in grpc) >= 1
    # A continuation line was joined into its command, not lost.
    assert any("NotificationService/Send" in c and '"chat_id"' in c for c in grpc)


@dataclass
class Shell:
    """Runs README lines as a user's shell would, against one test gateway."""

    gateway: Gateway
    stub: Stub
    variables: dict[str, str] = field(default_factory=dict)
    # The id of the first job sent, standing in for the README's example id.
    first_job: str = ""

    @property
    def env(self) -> dict[str, str]:
        sim_port = self.gateway.sandbox_url.rpartition(":")[2]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIGATE_")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(VENV_BIN.parent),
            NOTIGATE_TARGET=f"127.0.0.1:{self.gateway.port}",
            NOTIGATE_SANDBOX_LISTEN=f"127.0.0.1:{sim_port}",
        )
        env.update(self.variables)
        return env

    async def settle(self) -> None:
        async def idle() -> bool:
            s = await self.stub.GetStats(pb.GetStatsRequest(), timeout=10)
            # Delayed jobs may wait for days (send_at): only what is due must be done.
            return s.waiting + s.active == 0

        await wait_for(idle)

    async def run(self, command: str) -> str:
        """Run one line; its stdout (stderr too, on failure, in the assertion)."""
        await self.settle()
        line = command.replace(GRPC_ADDRESS, f"127.0.0.1:{self.gateway.port}")
        line = line.replace(SIM_URL, self.gateway.sandbox_url)
        if self.first_job:
            line = line.replace(EXAMPLE_JOB, self.first_job)
        capture = _CAPTURE.match(line)
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            capture[2] if capture else line,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, f"{command}\nstdout: {out.decode()}\nstderr: {err.decode()}"
        if capture:
            self.variables[capture[1]] = out.decode().strip()
        return out.decode()


@pytest.fixture
async def sandbox_gateway(
    redis: Redis, valkey: EmbeddedValkey, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Stub]]:
    """`notigate serve --sandbox` in process, on free ports."""
    settings = Settings(
        redis_url=valkey.url,
        sandbox=True,
        sandbox_listen="127.0.0.1:0",
        dashboard_listen="127.0.0.1:0",
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        shutdown_grace_s=2.0,
        health_interval_s=0.2,
    )
    async with running_gateway(settings) as pair:
        yield pair


async def test_sandbox_walkthrough_runs_as_written(
    sandbox_gateway: tuple[Gateway, Stub],
) -> None:
    gw, stub = sandbox_gateway
    shell = Shell(gw, stub)
    outputs: dict[str, str] = {}
    for command in sandbox_commands():
        if command in SETUP:
            continue
        if command.startswith("curl ") and shutil.which("curl") is None:
            continue  # test_sandbox_curl_lines says so
        # Keyed by the words, without the line's comment.
        outputs[shlex.join(shlex.split(command, comments=True))] = await shell.run(command)

    readme = README.read_text()
    first_send = next(c for c in outputs if c.startswith("notigate send "))
    assert outputs[first_send].strip().isdigit()
    # The README shows the line `notigate sandbox messages` prints; only the time differs.
    [example] = re.findall(r"^# (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  chat .*)$", readme, re.M)
    shape = re.escape(example[19:])
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d{shape}$", outputs["notigate sandbox messages"], re.M
    ), outputs["notigate sandbox messages"]

    job = shell.variables["JOB"]
    failed = outputs["notigate jobs --state failed"]
    assert re.search(rf"^{job}\s+failed\s.*Forbidden: bot was blocked by the user", failed, re.M)
    reply = await stub.GetJob(pb.GetJobRequest(job_id=job))
    assert reply.job.state == pb.JOB_STATE_COMPLETED  # the RetryJob delivered it
    assert "Order #43 shipped" in outputs["notigate sandbox messages --chat 123456789"]


async def test_sandbox_curl_lines(sandbox_gateway: tuple[Gateway, Stub]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the README's curl lines were not run")
    gw, stub = sandbox_gateway
    shell = Shell(gw, stub)
    await shell.run("notigate send --chat 123456789 --text 'via curl'")
    for command in sandbox_commands():
        if command.startswith("curl "):
            out = await shell.run(command)
            if "/_sim/messages" in command:
                assert '"via curl"' in out


async def test_grpcurl_walkthrough_runs_as_written(
    sandbox_gateway: tuple[Gateway, Stub],
) -> None:
    gw, stub = sandbox_gateway
    assert BUF.exists(), f"{BUF} is missing: run `npm ci`"
    shell = Shell(gw, stub)
    # As the section says: a failing chat, so that RetryJob finds a failed job.
    await shell.run("notigate sandbox fail-chat 123456789")
    sent: list[int] = []
    for command in grpcurl_commands():
        if command in SETUP:
            continue
        out = await shell.run(command)
        if command.startswith("grpcurl ") and command.endswith("/Send"):
            sent.append(int(json.loads(out)["job_id"]))
            assert sent == sorted(set(sent))  # ids only grow
            shell.first_job = str(sent[0])
        if command.endswith("/RetryJob"):
            assert f'"job_id": "{sent[0]}"' in out
        if command.endswith("/RetryJobs") or command.endswith("/CancelJobs"):
            assert '"count": "1"' in out  # the first job failed again; the send_at job cancelled
        if command.endswith("/SendBatch"):
            assert json.loads(out) == {}
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 3  # two Sends through grpcurl, one through buf curl
    assert stats.cancelled == 1  # the send_at job, by CancelJobs
    assert stats.failed == 2  # the first job (after RetryJob and RetryJobs) and buf curl's
    assert stats.total_failed == 4


def media_commands() -> list[str]:
    return sh_commands(section(README.read_text(), "## Media, albums, edits and deletes"))


async def test_media_walkthrough_runs_as_written(
    sandbox_gateway: tuple[Gateway, Stub],
) -> None:
    gw, stub = sandbox_gateway
    shell = Shell(gw, stub)
    commands = media_commands()
    assert sum("UploadFile" in c for c in commands) == 1
    sent: list[str] = []
    for command in commands:
        out = await shell.run(command)
        if command.startswith("grpcurl ") and command.endswith("/Send"):
            sent.append(json.loads(out)["job_id"])
    await shell.settle()
    assert shell.variables["UPLOAD"]
    for job_id in sent:
        reply = await stub.GetJob(pb.GetJobRequest(job_id=job_id))
        assert reply.job.state == pb.JOB_STATE_COMPLETED, reply.job
    album = await stub.GetJob(pb.GetJobRequest(job_id=sent[2]))
    assert len(album.job.telegram_message_ids) == 2
    original = await stub.GetJob(pb.GetJobRequest(job_id=shell.variables["JOB"]))
    assert original.job.request.text == "Order #44 delivered"
    stats = await stub.GetStats(pb.GetStatsRequest())
    # Three Sends, the CLI's two, two edit jobs and one delete job, all delivered.
    assert (stats.total_enqueued, stats.total_sent, stats.failed) == (8, 8, 0)
    received = await shell.run("notigate sandbox messages --json")
    kinds = {json.loads(line)["kind"] for line in received.splitlines()}
    assert {"photo", "document", "text"} <= kinds
