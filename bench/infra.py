"""The bench's processes: one Valkey, Bot API simulators, notigate replicas, peers and load
generators, and the free ports they listen on.

Everything listens on 127.0.0.1 and is started and stopped by the bench itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey
from notigate.simulator.config import SANDBOX_TOKEN

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = sys.executable
NOTIGATE = str(Path(sys.executable).with_name("notigate"))
NODE = os.environ.get("NODE", "node")
TOKEN = SANDBOX_TOKEN
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class BenchError(RuntimeError):
    """A scenario could not run (as opposed to a missed target)."""


class PeerError(BenchError):
    """A peer (BullMQ, arq) failed or stalled: its figures are missing, notigate's are not."""


@dataclass
class Config:
    """Sizes and durations of one bench invocation."""

    smoke: bool = False
    runs: int = 3
    duration: float = 5.0  # measuring window of the closed-loop enqueue scenarios
    delivery_jobs: int = 50_000
    rate_jobs: int = 300
    rate_full: bool = False
    paid_jobs: int = 5_000
    priority_backlog: int = 100_000
    priority_repeats: int = 20
    hol_backlog: int = 1_000
    hol_repeats: int = 10
    idle_repeats: int = 50
    growth_levels: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    memory_jobs: int = 100_000
    media_upload_bytes: int = 20_000_000
    media_upload_repeats: int = 5
    media_memory_bytes: int = 3_000_000
    media_memory_chats: int = 1_000
    media_delivery_jobs: int = 20_000
    py_procs: int = 2  # Python producer processes (64 in flight in total)
    events_idle_repeats: int = 50
    events_load_rate: int = 3_000  # msg/s offered through SendBatch
    events_load_s: float = 10.0
    webhook_jobs: int = 20_000
    bots_count: int = 100  # bots of the many-bots case, each at 30/s
    bots_steady_s: float = 25.0  # each bot's backlog lasts this long at 30/s
    idle_bots_total: int = 1_000  # bots configured, of which idle_bots_busy have work
    idle_bots_busy: int = 10
    idle_bots_steady_s: float = 15.0
    cluster_bots: int = 6  # bots whose queues spread over the cluster's shards
    dashboard_levels: tuple[int, int] = (1_000, 1_000_000)  # retained jobs: small, big store
    dashboard_requests: int = 50  # measured requests of each kind

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            smoke=True,
            runs=1,
            duration=0.7,
            delivery_jobs=600,
            rate_jobs=45,
            paid_jobs=300,
            priority_backlog=1_000,
            priority_repeats=3,
            hol_backlog=30,
            hol_repeats=2,
            idle_repeats=5,
            growth_levels=(100, 1_000),
            memory_jobs=2_000,
            media_upload_bytes=3_000_000,
            media_upload_repeats=2,
            media_delivery_jobs=300,
            events_idle_repeats=5,
            events_load_rate=1_000,
            events_load_s=1.0,
            webhook_jobs=300,
            bots_count=4,
            bots_steady_s=2.0,
            idle_bots_total=40,
            idle_bots_busy=2,
            idle_bots_steady_s=2.0,
            cluster_bots=3,
            dashboard_levels=(200, 2_000),
            dashboard_requests=5,
        )


@dataclass
class Env:
    """The bench's own Valkey (fresh, on a free TCP port) and helpers around it."""

    cfg: Config
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="notigate-bench-")))
    valkey: EmbeddedValkey | None = None
    redis: Redis | None = None
    port: int = 0

    async def start(self) -> None:
        self.port = free_port()
        # appendfsync everysec, as notigate's embedded server runs; same for every peer.
        self.valkey = EmbeddedValkey(self.workdir / "valkey", port=self.port)
        await self.valkey.start()
        self.redis = Redis(host=HOST, port=self.port)

    async def stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        if self.valkey is not None:
            await self.valkey.stop()

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def r(self) -> Redis:
        assert self.redis is not None
        return self.redis

    async def flush(self) -> None:
        """Empty the server synchronously (no lazy free running on afterwards)."""
        # flushall() cannot say SYNC, and Valkey 8 flushes lazily by default.
        await self.r().execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]

    async def settle(self) -> None:
        """Wait until no AOF rewrite or lazy free is running (before a memory reading)."""
        for _ in range(300):
            info = await self.r().info()
            if not int(info.get("aof_rewrite_in_progress", 0)) and not int(
                info.get("lazyfree_pending_objects", 0)
            ):
                return
            await asyncio.sleep(0.1)

    async def used_memory(self) -> int:
        info = await self.r().info("memory")
        return int(info["used_memory"])

    def valkey_cpu(self) -> float:
        assert self.valkey is not None
        pid = self.valkey.pid
        assert pid is not None
        return cpu_seconds([pid])


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


# -- child processes ---------------------------------------------------------------


class Proc:
    """A long-running child with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log = log.open("wb")
        self.p = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def stop(self, timeout: float = 10.0) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.p.wait, timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                await asyncio.to_thread(self.p.wait)
        self._log.close()


class Simulator:
    """``notigate simulator`` in its own process (its CPU is not the bench's)."""

    def __init__(
        self, env: Env, *, limits: bool, name: str = "sim", tokens: Sequence[str] = (TOKEN,)
    ) -> None:
        self.env = env
        self.port = free_port()
        argv = [NOTIGATE, "simulator", "--port", str(self.port), "--log-level", "warning"]
        for token in tokens:
            argv += ["--token", token]
        if not limits:
            argv.append("--no-limits")
        self.proc = Proc(name, argv, dict(os.environ), env.workdir / f"{name}-{self.port}.log")
        self.session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self, **config: Any) -> Simulator:
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 15
        while True:
            if not self.proc.alive():
                raise BenchError(f"simulator exited: {self.proc.tail()}")
            try:
                async with self.session.get(f"{self.url}/_sim/stats") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("simulator did not start")
            await asyncio.sleep(0.05)
        if config:
            await self.configure(**config)
        return self

    async def configure(self, **config: Any) -> None:
        assert self.session is not None
        async with self.session.post(f"{self.url}/_sim/configure", json=config) as r:
            if r.status != 200:
                raise BenchError(f"simulator configure: {await r.text()}")

    async def reset(self) -> None:
        assert self.session is not None
        async with self.session.post(f"{self.url}/_sim/reset") as r:
            r.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(f"{self.url}/_sim/stats") as r:
            return dict(await r.json())

    async def messages(self) -> list[dict[str, Any]]:
        """Accepted sends: chat_id, text, bot_id (the token's number), received_at
        (time.monotonic(): CLOCK_MONOTONIC, the same clock in every process of this
        machine)."""
        assert self.session is not None
        async with self.session.get(f"{self.url}/_sim/messages") as r:
            data = await r.json()
        return [{k: m[k] for k in ("chat_id", "text", "bot_id", "received_at")} for m in data]

    async def requests(self) -> list[dict[str, Any]]:
        """Every Bot API request: method, chat_id, status, received_at, retry_after."""
        assert self.session is not None
        async with self.session.get(f"{self.url}/_sim/requests") as r:
            return list(await r.json())

    async def wait_accepted(self, n: int, timeout: float, procs: Sequence[Proc] = ()) -> int:
        deadline = time.monotonic() + timeout
        while True:
            accepted = int((await self.stats())["accepted"])
            if accepted >= n or time.monotonic() > deadline:
                return accepted
            for p in procs:
                if not p.alive():
                    raise BenchError(f"{p.name} exited: {p.tail()}")
            await asyncio.sleep(0.1)

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid])

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.proc.stop()


class Notigate:
    """One ``notigate serve`` replica on the bench's Valkey (or ``redis_url``'s server);
    with ``bots``, serving those bots (name, token) from a bots file instead of TOKEN."""

    def __init__(
        self,
        env: Env,
        sim: Simulator,
        name: str = "notigate",
        *,
        bots: Sequence[tuple[str, str]] = (),
        redis_url: str | None = None,
        **settings: Any,
    ) -> None:
        self.env = env
        self.port = free_port()
        self.target = f"{HOST}:{self.port}"
        e = dict(os.environ)
        if bots:
            path = env.workdir / f"{name}-{self.port}-bots.toml"
            path.write_text("".join(f'[bots.{bot}]\ntoken = "{token}"\n\n' for bot, token in bots))
            e["NOTIGATE_BOTS_FILE"] = str(path)
            e.pop("BOT_TOKEN", None)
        else:
            e["BOT_TOKEN"] = TOKEN
        e.update(
            REDIS_URL=redis_url or env.redis_url,
            TELEGRAM_API_URL=sim.url,
            NOTIGATE_LISTEN=self.target,
            NOTIGATE_SHUTDOWN_GRACE_S="2",
        )
        e.update({k: str(v) for k, v in settings.items()})
        # Per-delivery INFO lines would be most of the log; warnings and errors are kept.
        argv = [NOTIGATE, "serve", "--log-level", "warning"]
        self.proc = Proc(name, argv, e, env.workdir / f"{name}-{self.port}.log")

    async def start(self, timeout: float = 20.0) -> Notigate:
        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.target) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                if not self.proc.alive():
                    raise BenchError(f"notigate exited: {self.proc.tail()}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                if time.monotonic() > deadline:
                    raise BenchError(f"notigate not SERVING in time: {self.proc.tail()}")
                await asyncio.sleep(0.1)

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid])

    async def stop(self) -> None:
        await self.proc.stop()


@contextlib.asynccontextmanager
async def running(*things: Any) -> AsyncIterator[None]:
    """Stop what was started, in reverse order, whatever happens."""
    try:
        yield
    finally:
        for t in reversed(things):
            with contextlib.suppress(Exception):
                await t.stop()


async def run_json(argv: list[str], timeout: float, cwd: Path = ROOT) -> dict[str, Any]:
    """Run a peer / load generator to completion and parse its last JSON line.

    Failures of a script under ``peers/`` raise PeerError, of notigate's own tools BenchError.
    """
    error = PeerError if "peers/" in argv[1] else BenchError
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=str(cwd), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise error(f"{Path(argv[1]).name} timed out after {timeout:.0f} s") from None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise error(
            f"{' '.join(Path(a).name for a in argv[:2])} failed ({proc.returncode}): "
            f"{err.decode()[-1500:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("errors"):
        raise error(f"{Path(argv[1]).name}: {result['errors']} errors: {result['first_error']}")
    if result.get("refused"):
        print(f"  {Path(argv[1]).name}: {result['refused']} refused streams sent again", flush=True)
    return result


def node(script: str, **opts: Any) -> list[str]:
    """The argv of a Node script under bench/ with its options as one JSON argument."""
    return [NODE, str(BENCH / script), json.dumps(opts)]


def py(script: str, **opts: Any) -> list[str]:
    """The argv of a Python script under bench/ with its options as one JSON argument."""
    return [PYTHON, str(BENCH / script), json.dumps(opts)]


# -- Redis Cluster ---------------------------------------------------------------------

SLOTS = 16_384


class ValkeyCluster:
    """A local Valkey Cluster of ``primaries`` primaries and no replicas, each on free
    ports (client and cluster bus), persisted like the bench's standalone server
    (appendonly everysec, noeviction). Slots are split evenly with CLUSTER ADDSLOTSRANGE
    and the nodes joined with CLUSTER MEET, as ``valkey-cli --cluster create`` would."""

    def __init__(self, env: Env, primaries: int = 3) -> None:
        self.env = env
        self.ports = [free_port() for _ in range(primaries)]
        self.bus_ports = [free_port() for _ in range(primaries)]
        self.procs: list[Proc] = []
        # Slot ranges (first, last) of each primary, in the order of self.ports.
        step = SLOTS // primaries
        self.ranges = [
            (k * step, SLOTS - 1 if k == primaries - 1 else (k + 1) * step - 1)
            for k in range(primaries)
        ]

    @property
    def url(self) -> str:
        """Any node names the cluster: the first."""
        return f"redis://{HOST}:{self.ports[0]}/0"

    def _node(self, port: int) -> Redis:
        return Redis(host=HOST, port=port)

    async def start(self) -> ValkeyCluster:
        from notigate.embedded import valkey_binary

        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            d = self.env.workdir / f"cluster-{port}"
            d.mkdir(parents=True, exist_ok=True)
            argv = [
                str(valkey_binary()), "--port", str(port), "--bind", HOST,
                "--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--maxmemory-policy", "noeviction", "--daemonize", "no",
            ]  # fmt: skip
            self.procs.append(Proc(f"cluster-{port}", argv, dict(os.environ), d / "log"))
        nodes = [self._node(p) for p in self.ports]
        try:
            for node, proc in zip(nodes, self.procs, strict=True):
                await _until(lambda n=node: n.ping(), f"cluster node {proc.name}", proc)
            for node, (first, last) in zip(nodes, self.ranges, strict=True):
                await node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
            # The bus ports are not port + 10000, so MEET names them.
            for port, bus in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                await nodes[0].execute_command("CLUSTER", "MEET", HOST, port, bus)  # type: ignore[no-untyped-call]

            async def formed() -> bool:
                for node in nodes:
                    info = await node.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    if "cluster_state:ok" not in text or (
                        f"cluster_known_nodes:{len(nodes)}" not in text
                    ):
                        return False
                return True

            await _until(formed, "cluster_state:ok on every node", self.procs[0])
        finally:
            for node in nodes:
                await node.aclose()
        return self

    def shard_of(self, slot: int) -> int:
        """The index (in self.ports) of the primary serving ``slot``."""
        return next(k for k, (a, b) in enumerate(self.ranges) if a <= slot <= b)

    async def flush(self) -> None:
        for port in self.ports:
            node = self._node(port)
            try:
                await node.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
            finally:
                await node.aclose()

    def cpu(self) -> float:
        return cpu_seconds([p.pid for p in self.procs])

    async def stop(self) -> None:
        for p in self.procs:
            await p.stop()


async def _until(check: Any, what: str, proc: Proc, timeout: float = 15.0) -> None:
    """Wait until ``await check()`` is truthy (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited: {proc.tail()}")
        with contextlib.suppress(Exception):
            if await check():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} in {timeout:.0f} s: {proc.tail()}")
        await asyncio.sleep(0.05)
