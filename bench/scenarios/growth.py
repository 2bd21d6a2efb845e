"""9. Growth: Send p99 and the dequeue script's cost with 1k / 100k / 1M queued (over
1,000 chats; filled through notigate's own enqueue script), and Redis memory per queued
job (INFO used_memory delta / jobs) against BullMQ (Node addBulk) for the same messages."""

from __future__ import annotations

import time
from typing import Any

from bench.infra import Config, Env, Notigate, Simulator, node, run_json, running
from bench.load import closed_loop, fill_notigate
from bench.measure import median

NAME = "growth"
TITLE = "Growth with queue depth; memory per queued job"
CHATS = 1000


async def _dequeue_cost(env: Env, calls: int = 10, count: int = 50) -> float:
    """Median wall time of one dequeue call leasing ``count`` jobs, in µs per leased job."""
    from notigate.config import Limits, Settings
    from notigate.queue import Queue

    queue = Queue(env.r(), Settings(redis_url=env.redis_url, limits=Limits(global_rate=1_000_000)))
    await queue.load()
    per_job = []
    for _ in range(calls):
        t0 = time.perf_counter()
        leased = await queue.dequeue(count)
        dt = time.perf_counter() - t0
        if leased.leases:
            per_job.append(dt * 1e6 / len(leased.leases))
    return median(per_job)


async def _memory(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    n = cfg.memory_jobs
    out: dict[str, dict[str, float]] = {}
    r = {"host": "127.0.0.1", "port": env.port}
    for name in ("notigate", "BullMQ (plain jobs)", "BullMQ (with priority)"):
        await env.flush()
        await env.settle()
        before = await env.used_memory()
        if name == "notigate":
            await fill_notigate(env, n, chats=CHATS)
        else:
            prio = {"priority": 1} if "priority" in name else {}
            await run_json(
                node("peers/bullmq_node/fill.mjs", count=n, chats=CHATS, **r, **prio), 300
            )
        await env.settle()
        after = await env.used_memory()
        out[f"memory: {name}"] = {"bytes_per_job": (after - before) / n, "jobs": n}
    await env.flush()
    return out


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems: dict[str, dict[str, float]] = {}
    await env.flush()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim, NOTIGATE_GLOBAL_RATE=30)
    queued = 0
    async with running(sim, gw):
        await gw.start()
        for level in cfg.growth_levels:
            t0 = time.perf_counter()
            added = level - queued
            await fill_notigate(env, added, chats=CHATS, batch=1000)
            fill_s = time.perf_counter() - t0
            queued = level
            send = await closed_loop(
                [node("loadgen/grpc_load.mjs", method="send", target=gw.target,
                      duration=max(1.0, cfg.duration / 2), concurrency=64, chats=CHATS)],
                120,
            )  # fmt: skip
            systems[f"{level:,} queued"] = {
                "send_p50_ms": send["p50_ms"],
                "send_p99_ms": send["p99_ms"],
                "send_per_s": send["ops_per_s"],
                "dequeue_us_per_job": await _dequeue_cost(env),
                "fill_jobs_per_s": added / fill_s if fill_s else 0.0,
            }
    systems.update(await _memory(env, cfg))
    first = systems[f"{cfg.growth_levels[0]:,} queued"]
    last = systems[f"{cfg.growth_levels[-1]:,} queued"]
    mem = systems["memory: notigate"]["bytes_per_job"]
    return {
        "systems": systems,
        "ratios": {
            "send_p99_growth": last["send_p99_ms"] / first["send_p99_ms"],
            "dequeue_growth": last["dequeue_us_per_job"] / first["dequeue_us_per_job"],
            "memory_vs_bullmq": mem / systems["memory: BullMQ (plain jobs)"]["bytes_per_job"],
            "memory_vs_bullmq_prio": mem
            / systems["memory: BullMQ (with priority)"]["bytes_per_job"],
        },
    }
