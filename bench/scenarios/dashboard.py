"""12. Dashboard: the server-side cost of the web dashboard's JSON endpoints with a small
and a big store (``dashboard_levels``: 1,000 and 1,000,000 retained jobs), against
bull-board (@bull-board/express over BullMQ's adapter), the dashboard BullMQ users run.
Each level starts from an emptied Valkey filled through notigate's own enqueue script (as
the growth scenario does, 1,000 jobs a script call) with 100 jobs per chat (10,000 chats
at 1M), texts of five kinds, every 1,000th job's text holding the rare word ``refund``
and every 10th job an idempotency key; a BullMQ queue of as many jobs goes into the same
Valkey (bench/peers/bullmq_node/fill.mjs). The gateway runs with the dashboard on
(NOTIGATE_DASHBOARD_LISTEN on loopback, no API token: an anonymous admin) and a bot-wide
rate of 1/s, so the jobs stay waiting: waiting jobs are retained, listed and searched
like finished ones. One aiohttp client per dashboard (keep-alive; for notigate the session
cookie of one GET /api/session) makes ``dashboard_requests`` requests of each kind one
after another, after 3 unmeasured ones: median and p95 ms from sending a request to
having its whole body. *refresh* is what the page fetches on a refresh, /api/overview +
/api/throughput + /api/jobs?state=waiting&page_size=50 (each, and their sum per refresh),
in turn with bull-board's overview, GET /api/queues?activeQueue=bench&page=1&jobsPerPage=50
(what its page polls every 5 s: the counts and the newest 50 of each state). The
*gRPC* rows are GetStats and ListJobs (50 waiting) called straight, the floor under the
HTTP layer. *search* is /api/search?q=... as the page's search box sends it, each request
another chat, key or job: a chat id (that chat's index; with it GetJob and the key
lookup), the rare word (a bounded scan of the newest jobs; ``examined`` and ``found`` are
its first page's), an idempotency key (its lookup, and the same bounded text scan, as a
key is no chat id) and a job id (GetJob, and a chat and a key lookup). *job page* is
/api/jobs/<id>, the job and its timeline, of each chat's newest job (whose events the
stream, 100,000 long, still holds). ``growth`` is the median at the big level over the
median at the small one. bull-board has no search."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.infra import (
    HOST,
    BenchError,
    Config,
    Env,
    Notigate,
    PeerError,
    Proc,
    Simulator,
    free_port,
    node,
    run_json,
    running,
)
from bench.load import fill_notigate, grpc_stub
from bench.measure import median, pct

NAME = "dashboard"
TITLE = "Dashboard: server-side cost of its endpoints, small and big store"
JOBS_PER_CHAT = 100
CHAT_BASE = 1_000_000
RARE_WORD = "refund"
RARE_EVERY = 1_000
KEY_EVERY = 10
WARMUP = 3
_TEXTS = (
    "your order #{i} has shipped",
    "your parcel #{i} is out for delivery",
    "payment #{i} received, thank you",
    "reminder #{i}: your appointment is tomorrow at 10:00",
    "{i:07d} is your login code",
)
# The parts of the page's refresh, in the order the page asks for them.
_REFRESH = {
    "overview": "/api/overview",
    "throughput": "/api/throughput",
    "waiting page": "/api/jobs?state=waiting&page_size=50",
}
_BOARD = "/api/queues?activeQueue=bench&page=1&jobsPerPage=50"


def text_of(i: int) -> str:
    if i % RARE_EVERY == 0:
        return f"{RARE_WORD} #{i} was issued to your card"
    return _TEXTS[i % len(_TEXTS)].format(i=i)


def key_of(i: int) -> str:
    return f"order-{i:07d}" if i % KEY_EVERY == 0 else ""


def chats_of(jobs: int) -> int:
    return max(1, jobs // JOBS_PER_CHAT)


def label(n: int) -> str:
    """1,000 -> 1k, 1,000,000 -> 1M (column names)."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


class Client:
    """One browser's worth of HTTP: keep-alive, one cookie jar, timed GETs."""

    def __init__(self, base: str, error: type[BenchError] = BenchError) -> None:
        self.base = base
        self.error = error
        # The default jar keeps no cookies of an IP address host.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str) -> tuple[float, Any]:
        """ms from sending the request to its whole body, and the decoded body."""
        t0 = time.perf_counter()
        async with self.http.get(self.base + path) as r:
            body = await r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise self.error(f"GET {path}: {r.status} {body[:500]!r}")
        return dt, json.loads(body)

    async def timed(self, paths: Sequence[str]) -> tuple[list[float], list[Any]]:
        """Each path in turn (after WARMUP unmeasured ones): times and bodies."""
        for path in paths[:WARMUP]:
            await self.get(path)
        times, bodies = [], []
        for path in paths:
            dt, body = await self.get(path)
            times.append(dt)
            bodies.append(body)
        return times, bodies

    async def until_up(self, path: str, proc: Proc, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not proc.alive():
                raise self.error(f"{proc.name} exited: {proc.tail()}")
            try:
                async with self.http.get(self.base + path) as r:
                    if r.status == 200:
                        await r.read()
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise self.error(f"{proc.name}: {path} did not answer 200 in time")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.http.close()


def _figures(times: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": median(times), "p95_ms": pct(times, 95)}


def _spread(values: Sequence[Any], n: int) -> list[Any]:
    """``n`` items spread over ``values``, cycling when there are fewer."""
    step = max(1, len(values) // n)
    return [values[(k * step) % len(values)] for k in range(n)]


async def _grpc_floor(target: str, n: int) -> dict[str, dict[str, float]]:
    """The same reads as the refresh's overview and waiting page, straight over gRPC: what
    the dashboard's HTTP layer (session, rendering to JSON) adds is the difference."""
    from notigate_client import pb

    channel, stub = await grpc_stub(target)
    calls = {
        "gRPC GetStats (under overview)": (stub.GetStats, pb.GetStatsRequest()),
        "gRPC ListJobs (under waiting page)": (
            stub.ListJobs,
            pb.ListJobsRequest(state=pb.JOB_STATE_WAITING, page_size=50),
        ),
    }
    out = {}
    async with channel:
        for name, (method, request) in calls.items():
            times = []
            for k in range(WARMUP + n):
                t0 = time.perf_counter()
                await method(request, timeout=30)
                if k >= WARMUP:
                    times.append((time.perf_counter() - t0) * 1000)
            out[name] = _figures(times)
    return out


async def _start_board(env: Env) -> tuple[Proc, Client]:
    port = free_port()
    argv = node("peers/bullmq_node/board.mjs", listen=port, host=HOST, port=env.port)
    proc = Proc("bull-board", argv, dict(os.environ), env.workdir / f"board-{port}.log")
    client = Client(f"http://{HOST}:{port}", PeerError)
    await client.until_up(_BOARD, proc)
    return proc, client


async def _refresh(
    client: Client, board: Client, n: int, jobs: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The page's refresh and bull-board's overview in turn, so both meet the machine in
    the same state."""
    parts: dict[str, list[float]] = {part: [] for part in _REFRESH}
    sums, theirs = [], []
    for _ in range(WARMUP + n):
        total = 0.0
        for part, path in _REFRESH.items():
            dt, _ = await client.get(path)
            parts[part].append(dt)
            total += dt
        dt, body = await board.get(_BOARD)
        sums.append(total)
        theirs.append(dt)
    counts = body["queues"][0]["counts"]
    if int(counts.get("waiting", 0)) < jobs:
        raise PeerError(f"bull-board counts {counts}, not {jobs} waiting")
    out = {f"refresh: {part}": _figures(times[WARMUP:]) for part, times in parts.items()}
    out["refresh: the three (sum)"] = _figures(sums[WARMUP:])
    return out, _figures(theirs[WARMUP:])


async def _level(
    env: Env, cfg: Config, jobs: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Every endpoint's figures with ``jobs`` retained, and bull-board's overview over a
    BullMQ queue of as many jobs in the same Valkey."""
    await env.flush()
    chats = chats_of(jobs)
    await fill_notigate(env, jobs, chats=chats, chat_base=CHAT_BASE, text=text_of, key=key_of)
    fill = node("peers/bullmq_node/fill.mjs", count=jobs, chats=chats, host=HOST, port=env.port)
    await run_json(fill, 600)
    n = cfg.dashboard_requests
    port = free_port()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim, NOTIGATE_GLOBAL_RATE=1, NOTIGATE_DASHBOARD_LISTEN=f"{HOST}:{port}")
    client = Client(f"http://{HOST}:{port}")
    async with running(sim, gw, client):
        await gw.start()
        await client.until_up("/api/session", gw.proc)
        board_proc, board = await _start_board(env)
        async with running(board_proc, board):
            out, theirs = await _refresh(client, board, n, jobs)
        out.update(await _grpc_floor(gw.target, n))
        chat_ids = _spread([str(CHAT_BASE + c) for c in range(chats)], n)
        times, bodies = await client.timed([f"/api/search?q={c}" for c in chat_ids])
        out["search: chat id"] = _figures(times)
        if any(not b["results"]["jobs"] for b in bodies):
            raise BenchError("a search by chat found no jobs")
        found = [j["job_id"] for b in bodies for j in b["results"]["jobs"]]
        # Each chat's newest job: the event stream (the newest 100,000 events) still holds
        # its whole timeline.
        newest = [b["results"]["jobs"][0]["job_id"] for b in bodies]
        times, bodies = await client.timed([f"/api/search?q={RARE_WORD}"] * n)
        first = bodies[-1]["results"]
        out["search: text (rare word)"] = {
            **_figures(times),
            "examined": float(first["examined_jobs"]),
            "found": float(len(first["jobs"])),
        }
        keys = _spread([key_of(i) for i in range(0, jobs, KEY_EVERY)], n)
        times, bodies = await client.timed([f"/api/search?q={k}" for k in keys])
        if any(b["by_key"] is None for b in bodies):
            raise BenchError("a search by idempotency key did not find its job")
        out["search: idempotency key"] = {
            **_figures(times),
            "examined": float(bodies[-1]["results"]["examined_jobs"]),
        }
        ids = _spread(found, n)
        times, bodies = await client.timed([f"/api/search?q={i}" for i in ids])
        if any(b["job"] is None for b in bodies):
            raise BenchError("a search by job id did not find its job")
        out["search: job id"] = _figures(times)
        times, bodies = await client.timed([f"/api/jobs/{i}" for i in newest])
        if any(not b["events"] for b in bodies):
            raise BenchError("a job page had no events")
        out["job page"] = _figures(times)
    await env.flush()
    return out, theirs


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    small, big = cfg.dashboard_levels
    measured = {level: await _level(env, cfg, level) for level in (small, big)}
    ours = {level: m[0] for level, m in measured.items()}
    board = {level: m[1] for level, m in measured.items()}
    systems: dict[str, dict[str, float]] = {}
    rows = [*((f"notigate {k}", ours[small][k], ours[big][k]) for k in ours[small])]
    rows.append(("bull-board: overview (GET /api/queues)", board[small], board[big]))
    for name, at_small, at_big in rows:
        row: dict[str, float] = {}
        for level, figures in ((small, at_small), (big, at_big)):
            row.update({f"{k}@{label(level)}": v for k, v in figures.items()})
        row["growth"] = at_big["p50_ms"] / at_small["p50_ms"]
        systems[name] = row
    refresh = "refresh: the three (sum)"

    def growth(k: str) -> float:
        return ours[big][k]["p50_ms"] / ours[small][k]["p50_ms"]

    return {
        "systems": systems,
        "ratios": {
            "refresh_vs_bullboard": ours[big][refresh]["p50_ms"] / board[big]["p50_ms"],
            "refresh_vs_bullboard_small": ours[small][refresh]["p50_ms"] / board[small]["p50_ms"],
            "refresh_growth": growth(refresh),
            "search_chat_growth": growth("search: chat id"),
            "search_text_growth": growth("search: text (rare word)"),
            "search_key_growth": growth("search: idempotency key"),
            "job_page_growth": growth("job page"),
            "bullboard_growth": board[big]["p50_ms"] / board[small]["p50_ms"],
        },
    }
