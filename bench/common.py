"""The bench's infrastructure: one Valkey, Bot API simulators, notigate processes, peers.

Everything listens on 127.0.0.1 and is started and stopped by the bench itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
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

from notigate.app import SANDBOX_TOKEN
from notigate.embedded import EmbeddedValkey

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = sys.executable
NOTIGATE = str(Path(sys.executable).with_name("notigate"))
NODE = os.environ.get("NODE", "node")
TOKEN = SANDBOX_TOKEN
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return float(ordered[k])


def median(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(vals)) if vals else math.nan


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
    py_procs: int = 2  # Python producer processes (64 in flight in total)

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

    def __init__(self, env: Env, *, limits: bool, name: str = "sim") -> None:
        self.env = env
        self.port = free_port()
        argv = [NOTIGATE, "simulator", "--port", str(self.port), "--token", TOKEN,
                "--log-level", "warning"]  # fmt: skip
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
        """Accepted sends: chat_id, text, received_at (time.monotonic(): CLOCK_MONOTONIC,
        the same clock in every process of this machine)."""
        assert self.session is not None
        async with self.session.get(f"{self.url}/_sim/messages") as r:
            data = await r.json()
        return [{k: m[k] for k in ("chat_id", "text", "received_at")} for m in data]

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
    """One ``notigate serve`` replica on the bench's Valkey."""

    def __init__(self, env: Env, sim: Simulator, name: str = "notigate", **settings: Any) -> None:
        self.env = env
        self.port = free_port()
        self.target = f"{HOST}:{self.port}"
        e = dict(os.environ)
        e.update(
            REDIS_URL=env.redis_url,
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=sim.url,
            NOTIGATE_LISTEN=self.target,
            NOTIGATE_SHUTDOWN_GRACE_S="2",
        )
        e.update({k: str(v) for k, v in settings.items()})
        # Per-delivery INFO lines would be most of the log; warnings and errors are kept.
        argv = [NOTIGATE, "serve", "--log-level", "warning"]
        self.proc = Proc(name, argv, e, env.workdir / f"{name}-{self.port}.log")

    async def start(self) -> Notigate:
        deadline = time.monotonic() + 20
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
    return result


def node(script: str, **opts: Any) -> list[str]:
    return [NODE, str(BENCH / script), json.dumps(opts)]


def py(script: str, **opts: Any) -> list[str]:
    return [PYTHON, str(BENCH / script), json.dumps(opts)]


async def closed_loop(argvs: list[list[str]], timeout: float) -> dict[str, Any]:
    """Run several load processes side by side; merge their counts and latencies."""
    results = await asyncio.gather(*(run_json(a, timeout) for a in argvs))
    lat = [x for r in results for x in r["latencies_ms"]]
    ops = sum(r["ops"] for r in results)
    seconds = results[0]["seconds"]
    return {
        "ops_per_s": ops / seconds,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "n": len(lat),
    }


def start_at(delay_s: float = 1.5) -> int:
    """A common start time (ms since the epoch) for processes started together."""
    return int((time.time() + delay_s) * 1000)


# -- notigate's queue, filled directly (the same enqueue script Send runs) -------------


def bench_text(i: int) -> str:
    return f"benchmark message #{i}: your order has shipped"


async def fill_notigate(
    env: Env,
    count: int,
    *,
    chats: int,
    priority: int = 0,
    chat_base: int = 1_000_000,
    private_rate: int = 1,
    batch: int = 1000,
) -> float:
    """Queue ``count`` messages over ``chats`` chats through notigate's own Queue.enqueue
    (no server: nothing is delivered meanwhile). Returns the seconds it took."""
    from notigate.config import Limits, Settings
    from notigate.queue import NewJob, Queue
    from notigate_client import pb

    settings = Settings(redis_url=env.redis_url, limits=Limits(private_rate=private_rate))
    queue = Queue(env.r(), settings)
    await queue.load()
    t0 = time.perf_counter()
    pending: list[asyncio.Task[Any]] = []
    for start in range(0, count, batch):
        jobs = []
        for i in range(start, min(count, start + batch)):
            chat = str(chat_base + i % chats)
            req = pb.SendRequest(chat_id=chat, text=bench_text(i), priority=priority)
            jobs.append(NewJob(chat, priority, 0, 0, "", req.SerializeToString(deterministic=True)))
        pending.append(asyncio.create_task(queue.enqueue(jobs)))
        if len(pending) >= 4:
            await pending.pop(0)
    await asyncio.gather(*pending)
    return time.perf_counter() - t0


@dataclass
class Sample:
    t: float
    accepted: int
    cpu: float
    redis_cpu: float


async def sample_delivery(
    env: Env, sim: Simulator, pids: Sequence[int], n: int, timeout: float,
    procs: Sequence[Proc] = (), alive: Any = None,
) -> list[Sample]:  # fmt: skip
    """Poll the simulator's accepted count and the processes' CPU until ``n`` arrived."""
    out: list[Sample] = []
    deadline = time.monotonic() + timeout
    while True:
        accepted = int((await sim.stats())["accepted"])
        # A process that has exited reads 0: keep its last reading.
        cpu = max(cpu_seconds(pids), out[-1].cpu if out else 0.0)
        out.append(Sample(time.monotonic(), accepted, cpu, env.valkey_cpu()))
        if accepted >= n:
            return out
        if time.monotonic() > deadline:
            raise BenchError(f"only {accepted} of {n} delivered in {timeout:.0f} s")
        for p in procs:
            if not p.alive():
                raise BenchError(f"{p.name} exited: {p.tail()}")
        if alive is not None and not alive():
            raise BenchError(f"worker exited after {accepted} of {n}")
        await asyncio.sleep(0.1)


def delivery_figures(samples: list[Sample], messages: list[dict[str, Any]]) -> dict[str, float]:
    """Rate between the first and the last accepted send; CPU per 1,000 between the first
    sample that saw a delivery and the last sample."""
    times = sorted(m["received_at"] for m in messages)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else math.nan
    first = next(s for s in samples if s.accepted > 0)
    last = samples[-1]
    done = last.accepted - first.accepted
    k = 1000 / done if done > 0 else math.nan
    worker = (last.cpu - first.cpu) * k
    redis = (last.redis_cpu - first.redis_cpu) * k
    return {
        "jobs_per_s": rate,
        "cpu_s_per_1000_worker": worker,
        "cpu_s_per_1000_redis": redis,
        "cpu_s_per_1000_total": worker + redis,
        "delivered": len(times),
    }


# -- what the simulator saw ----------------------------------------------------------


def window_figures(times: Sequence[float], window: float = 1.0) -> dict[str, Any]:
    """Max sends in any sliding ``window`` s, mean per full fixed window from the first
    send, and the per-window counts (for the rate-over-time plots)."""
    ts = sorted(times)
    if not ts:
        return {"max_window": 0, "mean_window": math.nan, "bins": []}
    j = 0
    best = 0
    for i, t in enumerate(ts):
        while j < len(ts) and ts[j] < t + window:
            j += 1
        best = max(best, j - i)
    full = int((ts[-1] - ts[0]) // window)
    bins = [0] * (full + 1)
    for t in ts:
        bins[min(full, int((t - ts[0]) // window))] += 1
    mean = sum(bins[:full]) / full if full else math.nan
    return {"max_window": best, "mean_window": mean, "bins": bins}


async def grpc_stub(target: str) -> tuple[Any, Any]:
    from notigate_client import pb_grpc

    channel = grpc.aio.insecure_channel(target)
    return channel, pb_grpc.NotificationServiceStub(channel)


async def timed_sends(
    stub: Any, sim: Simulator, chats: Sequence[str], *, priority: int, tag: str,
    gap: tuple[float, float] = (0.15, 0.3),
) -> list[float]:  # fmt: skip
    """Send one message to each chat, spaced by ``gap`` s; return each message's time from
    the Send call to the simulator accepting it, in ms (same CLOCK_MONOTONIC)."""
    import random

    from notigate_client import pb

    sent: dict[str, float] = {}
    for k, chat in enumerate(chats):
        text = f"{tag} probe {k}"
        t0 = time.monotonic()
        await stub.Send(pb.SendRequest(chat_id=chat, text=text, priority=priority), timeout=10)
        sent[text] = t0
        await asyncio.sleep(random.uniform(*gap))
    deadline = time.monotonic() + 10
    while True:
        got = {m["text"]: m["received_at"] for m in await sim.messages() if m["text"] in sent}
        if len(got) == len(sent):
            return [(got[t] - t0) * 1000 for t, t0 in sent.items()]
        if time.monotonic() > deadline:
            raise BenchError(f"{tag}: only {len(got)} of {len(sent)} probes delivered")
        await asyncio.sleep(0.2)
