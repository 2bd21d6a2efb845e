"""One gateway per port and per data dir, with real `notigate serve` processes.

A second gateway on a port or a data dir that is in use must refuse at once (exit 1,
one line naming the address or dir and the pid holding it) and leave the first one
untouched; the embedded Valkey must die with its gateway, and a restart must stop an
orphan left on its files before opening them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notigate.app import Gateway
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.errors import StartupRefused
from notigate.exclusive import DataDirLock, check_listen_free
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, free_port, gateway_settings, running_gateway, wait_for

NOTIGATE = str(Path(sys.executable).parent / "notigate")


class Serve:
    """`notigate serve --sandbox` with the embedded Valkey, as a child process."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("BOT_TOKEN", "REDIS_URL") and not k.startswith("NOTIGATE_")
        }
        env["NOTIGATE_SHUTDOWN_GRACE_S"] = "2"
        env["NOTIGATE_SANDBOX_LISTEN"] = "127.0.0.1:0"  # never the shared default port
        env["NOTIGATE_DASHBOARD_LISTEN"] = "127.0.0.1:0"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    NOTIGATE, "serve", "--sandbox",
                    "--listen", f"127.0.0.1:{self.port}",
                    "--data-dir", str(self.data_dir),
                ],
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        return self.proc

    async def start(self) -> None:
        proc = self.spawn()

        async def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gateway exited {proc.returncode}: {self.log.read_text()}")
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                    await Stub(ch).GetStats(pb.GetStatsRequest(), timeout=1)
                return True
            except grpc.aio.AioRpcError:
                return False

        await wait_for(up, timeout_s=30)

    async def refused(self) -> str:
        """Run a gateway that must refuse to start; its output."""
        proc = self.spawn()
        code = await asyncio.to_thread(proc.wait, 30)
        out = self.log.read_text()
        assert code == 1, out
        return out

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return await asyncio.to_thread(self.proc.wait, 30)


@pytest.fixture
async def gateways() -> AsyncIterator[list[Serve]]:
    """Every gateway a test starts, killed at the end whatever happened."""
    started: list[Serve] = []
    yield started
    for gw in started:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.kill()


def valkeys_on(data_dir: Path) -> list[int]:
    """Pids of the valkey-server processes working in ``data_dir`` (Valkey chdirs there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if Path(exe).name == "valkey-server" and Path(cwd) == data_dir and state != "Z":
            found.append(int(entry.name))
    return found


async def until(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await wait_for(check, timeout_s=20)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def send(port: int, n: int, tag: str, **fields: object) -> list[str]:
    """``n`` Sends, each on a new connection (a port shared by two gateways would split
    new connections between them)."""
    ids = []
    for i in range(n):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = await Stub(ch).Send(
                pb.SendRequest(chat_id=str(7000 + i), text=f"{tag}{i}", **fields), timeout=10
            )
            ids.append(reply.job_id)
    return ids


async def states(port: int, ids: list[str]) -> list[int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = Stub(ch)
        return [int((await stub.GetJob(pb.GetJobRequest(job_id=j))).job.state) for j in ids]


async def all_completed(port: int, ids: list[str]) -> None:
    async def done() -> bool:
        return all(s == pb.JOB_STATE_COMPLETED for s in await states(port, ids))

    await wait_for(done, timeout_s=30)


def one_line_refusal(out: str) -> str:
    assert "Traceback" not in out, out
    line = out.strip().splitlines()[-1]
    assert line.startswith("notigate: "), out
    return line


async def test_second_gateway_on_a_port_in_use_refuses(
    tmp_path: Path, gateways: list[Serve]
) -> None:
    port = free_port()
    first = Serve(tmp_path / "a", port, tmp_path / "a.log")
    gateways.append(first)
    await first.start()
    before = await send(port, 8, "before")

    second = Serve(tmp_path / "b", port, tmp_path / "b.log")
    gateways.append(second)
    line = one_line_refusal(await second.refused())
    assert f"address 127.0.0.1:{port} is already in use" in line
    assert f"pid {first.pid}" in line
    # It refused before starting anything: no Valkey on its data dir.
    assert valkeys_on((tmp_path / "b" / "valkey").resolve()) == []

    after = await send(port, 8, "after")
    assert len(set(before + after)) == 16
    await all_completed(port, before + after)
    assert first.proc is not None and first.proc.poll() is None


async def test_second_gateway_on_a_data_dir_in_use_refuses(
    tmp_path: Path, gateways: list[Serve]
) -> None:
    data = tmp_path / "data"
    first = Serve(data, free_port(), tmp_path / "a.log")
    gateways.append(first)
    await first.start()
    before = await send(first.port, 5, "before")
    [valkey] = valkeys_on((data / "valkey").resolve())

    second = Serve(data, free_port(), tmp_path / "b.log")
    gateways.append(second)
    line = one_line_refusal(await second.refused())
    assert str(data.resolve()) in line
    assert f"pid {first.pid}" in line

    assert valkeys_on((data / "valkey").resolve()) == [valkey]
    after = await send(first.port, 5, "after")
    await all_completed(first.port, before + after)
    assert await first.terminate() == 0


@pytest.mark.faults
async def test_kill_9_takes_the_valkey_along_and_a_restart_keeps_the_jobs(
    tmp_path: Path, gateways: list[Serve]
) -> None:
    data = tmp_path / "data"
    valkey_dir = (data / "valkey").resolve()
    gw = Serve(data, free_port(), tmp_path / "gw.log")
    gateways.append(gw)
    await gw.start()
    ids = await send(gw.port, 10, "delayed", delay={"seconds": 3600})
    [valkey] = valkeys_on(valkey_dir)

    gw.kill()
    await until(lambda: not alive(valkey))

    await gw.start()
    assert len(valkeys_on(valkey_dir)) == 1
    assert await states(gw.port, ids) == [pb.JOB_STATE_DELAYED] * 10
    assert await gw.terminate() == 0
    assert valkeys_on(valkey_dir) == []


def older_command(server: EmbeddedValkey) -> list[str]:
    """The command line of a version that wrote no pid file and let Valkey rewrite its
    process title."""
    cmd = server.command()
    for flag in ("--pidfile", "--set-proc-title"):
        i = cmd.index(flag)
        del cmd[i : i + 2]
    return cmd


@pytest.mark.faults
@pytest.mark.parametrize("older", [False, True], ids=["current", "older-version"])
async def test_a_restart_stops_an_orphan_valkey_on_its_data_dir(
    tmp_path: Path, gateways: list[Serve], older: bool
) -> None:
    data = tmp_path / "data"
    valkey_dir = (data / "valkey").resolve()
    gw = Serve(data, free_port(), tmp_path / "gw.log")
    gateways.append(gw)
    await gw.start()
    ids = await send(gw.port, 5, "delayed", delay={"seconds": 3600})
    assert await gw.terminate() == 0

    # What an older gateway killed with -9 left behind: its Valkey, still on the files,
    # with no tie to any gateway (own session, no death signal).
    orphan_server = EmbeddedValkey(valkey_dir)
    orphan = subprocess.Popen(
        older_command(orphan_server) if older else orphan_server.command(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await until(lambda: valkeys_on(valkey_dir) == [orphan.pid])

        async def answers() -> bool:
            client = Redis.from_url(orphan_server.url)
            try:
                return bool(await client.ping())
            except RedisError:
                return False
            finally:
                await client.aclose()

        await wait_for(answers)

        await gw.start()
        assert await asyncio.to_thread(orphan.wait, 30) == 0  # stopped with SIGTERM
        assert f"pid {orphan.pid}" in gw.log.read_text()
        [current] = valkeys_on(valkey_dir)
        assert current != orphan.pid
        assert await states(gw.port, ids) == [pb.JOB_STATE_DELAYED] * 5
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
    assert await gw.terminate() == 0


async def test_a_stale_pidfile_never_kills_an_unrelated_process(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    server.data_dir.mkdir()
    # A pid recycled by some other process since the Valkey that wrote the file died.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        server.pidfile.write_text(f"{bystander.pid}\n")
        await server.start()
        try:
            assert bystander.poll() is None
            assert server.pid is not None and alive(server.pid)
        finally:
            await server.stop()
    finally:
        bystander.kill()
        bystander.wait()


def test_data_dir_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "data")
    first.acquire()
    second = DataDirLock(tmp_path / "data")
    with pytest.raises(StartupRefused) as refused:
        second.acquire()
    message = str(refused.value)
    assert str((tmp_path / "data").resolve()) in message
    assert f"pid {os.getpid()}" in message
    first.release()
    second.acquire()
    second.release()


def test_check_listen_free_refuses_a_listening_port() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        with pytest.raises(StartupRefused, match=f"pid {os.getpid()}"):
            check_listen_free(f"127.0.0.1:{port}")
        with pytest.raises(StartupRefused, match="already in use"):
            check_listen_free(f"localhost:{port}")
    check_listen_free(f"127.0.0.1:{port}")


async def test_replicas_on_one_external_redis_share_a_data_dir(
    valkey: EmbeddedValkey, simulator: BotApiSimulator, tmp_path: Path
) -> None:
    settings: Settings = gateway_settings(valkey, simulator, data_dir=tmp_path)
    async with running_gateway(settings) as (_, stub_a), running_gateway(settings) as (_, stub_b):
        a = await stub_a.Send(pb.SendRequest(chat_id="1", text="a"))
        b = await stub_b.Send(pb.SendRequest(chat_id="2", text="b"))
        assert a.job_id != b.job_id
    assert not (tmp_path / "notigate.lock").exists()


async def test_in_process_gateway_refuses_a_port_in_use(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (gw, stub):
        # An RPC first: a gateway that never served a call can hang in shutdown.
        await stub.GetStats(pb.GetStatsRequest())
        settings = gateway_settings(valkey, simulator, listen=f"127.0.0.1:{gw.port}")
        with pytest.raises(StartupRefused, match="already in use"):
            async with Gateway(settings):
                pass
