"""The data dir and the disk: a data dir that cannot be written is refused at startup with
one clean line (`notigate serve` as a real process), NOTIGATE_EMBEDDED_FSYNC reaches the
embedded Valkey, and with `always` no acknowledged Send is lost when the disk fills.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from redis.asyncio import Redis

from notigate.config import Settings
from notigate_client import pb
from tests.conftest import free_port, running_gateway

NOTIGATE = str(Path(sys.executable).parent / "notigate")


def unprivileged() -> list[str]:
    """A command prefix under which a mode of 0o500 makes a dir read-only, for root too:
    root's capabilities to ignore file modes are dropped (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a chmod cannot make a dir read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    """Make everything under tmp_path writable again, so it can be removed."""
    yield
    for root, dirs, _ in os.walk(tmp_path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
    os.chmod(tmp_path, 0o700)


def read_only(path: Path) -> None:
    path.chmod(0o500)


def fresh_read_only(tmp: Path) -> tuple[Path, Path]:
    data = tmp / "data"
    data.mkdir()
    read_only(data)
    return data, data


def read_only_after_a_run(tmp: Path) -> tuple[Path, Path]:
    """What a gateway leaves in its data dir, then made read-only (files keep their mode)."""
    data = tmp / "data"
    aof = data / "valkey" / "appendonlydir"
    aof.mkdir(parents=True)
    (data / "notigate.lock").write_text("1\n")
    (data / "valkey" / "valkey.log").write_text("")
    (aof / "appendonly.aof.1.incr.aof").write_text("")
    for d in (aof, data / "valkey", data):
        read_only(d)
    return data, data / "valkey"


def read_only_valkey_dir(tmp: Path) -> tuple[Path, Path]:
    data = tmp / "data"
    (data / "valkey").mkdir(parents=True)
    read_only(data / "valkey")
    return data, data / "valkey"


def a_file(tmp: Path) -> tuple[Path, Path]:
    data = tmp / "data"
    data.write_text("not a dir")
    return data, data


def under_a_file(tmp: Path) -> tuple[Path, Path]:
    (tmp / "file").write_text("not a dir")
    return tmp / "file" / "data", tmp / "file" / "data"


def valkey_dir_a_file(tmp: Path) -> tuple[Path, Path]:
    data = tmp / "data"
    data.mkdir()
    (data / "valkey").write_text("not a dir")
    return data, data / "valkey"


def missing_parent_without_permission(tmp: Path) -> tuple[Path, Path]:
    locked = tmp / "locked"
    locked.mkdir()
    read_only(locked)
    return locked / "a" / "data", locked / "a"


@pytest.mark.parametrize(
    "layout",
    [
        fresh_read_only,
        read_only_after_a_run,
        read_only_valkey_dir,
        a_file,
        under_a_file,
        valkey_dir_a_file,
        missing_parent_without_permission,
    ],
)
def test_serve_refuses_a_data_dir_it_cannot_write_in_one_line(
    tmp_path: Path,
    restore_modes: None,
    layout: Callable[[Path], tuple[Path, Path]],
) -> None:
    prefix = unprivileged()
    data, failing = layout(tmp_path)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BOT_TOKEN", "REDIS_URL") and not k.startswith("NOTIGATE_")
    }
    env |= {
        "NOTIGATE_DATA_DIR": str(data),
        "NOTIGATE_LISTEN": f"127.0.0.1:{free_port()}",
        "NOTIGATE_SANDBOX_LISTEN": "127.0.0.1:0",
        "NOTIGATE_DASHBOARD_LISTEN": "127.0.0.1:0",
    }
    done = subprocess.run(
        [*prefix, NOTIGATE, "serve", "--sandbox"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"notigate: cannot write to {failing.resolve()}"), out
    assert "--data-dir / NOTIGATE_DATA_DIR" in line
    # Nothing started on it: no Valkey log written, no socket.
    assert not (data / "valkey" / "valkey.sock").exists()


@pytest.mark.parametrize("fsync", ["everysec", "always", "no"])
async def test_embedded_fsync_reaches_the_embedded_valkey(tmp_path: Path, fsync: str) -> None:
    settings = embedded_settings(tmp_path, fsync)
    async with running_gateway(settings) as (gw, _):
        redis = Redis.from_url(gw.redis_url)
        try:
            assert await redis.config_get("appendfsync") == {"appendfsync": fsync}
            assert await redis.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            await redis.aclose()


def embedded_settings(tmp_path: Path, fsync: str) -> Settings:
    return Settings(
        sandbox=True,
        sandbox_listen="127.0.0.1:0",
        dashboard_listen="127.0.0.1:0",
        listen="127.0.0.1:0",
        data_dir=tmp_path / "data",
        embedded_fsync=fsync,
        shutdown_grace_s=2.0,
        health_interval_s=0.2,
    )


def fill_the_disk(valkey_dir: Path) -> None:
    """Leave the embedded Valkey 32 KiB of room: RLIMIT_FSIZE on its process makes
    every file it writes past that fail as a full disk would (no root, no loop mount)."""
    pid = int((valkey_dir / "valkey.pid").read_text())
    files = [*(valkey_dir / "appendonlydir").iterdir(), valkey_dir / "valkey.log"]
    room = max(f.stat().st_size for f in files) + 32768
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (room, room))


@pytest.mark.faults
async def test_with_fsync_always_no_acknowledged_send_is_lost_when_the_disk_fills(
    tmp_path: Path,
) -> None:
    settings = embedded_settings(tmp_path, "always")
    acked: list[str] = []
    refused = 0
    async with running_gateway(settings) as (_, stub):

        async def send(i: int) -> None:
            nonlocal refused
            request = pb.SendRequest(chat_id="42", text=f"m{i} " + "x" * 200)
            request.delay.seconds = 3600
            try:
                acked.append((await stub.Send(request, timeout=5)).job_id)
            except grpc.aio.AioRpcError:
                refused += 1

        await asyncio.gather(*(send(i) for i in range(20)))
        fill_the_disk((tmp_path / "data" / "valkey").resolve())
        for batch in range(1, 30):
            await asyncio.gather(*(send(batch * 20 + i) for i in range(20)))
            if refused >= 20:
                break
    assert refused >= 20, "the disk never filled"
    assert len(acked) > 20

    async with running_gateway(embedded_settings(tmp_path, "always")) as (_, stub):
        lost = []
        for job_id in acked:
            try:
                job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
                lost.append(job_id)
            else:
                assert job.state == pb.JOB_STATE_DELAYED
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged jobs lost"
