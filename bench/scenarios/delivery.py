"""3. Delivery throughput with the limits off.

A queue pre-filled with ``delivery_jobs`` messages over 5,000 chats is drained into the
simulator (``--no-limits``, no added latency) by one notigate process (global and private
rates 1,000,000/s, margins 0, 64 sends in flight) and by one BullMQ worker process per port
(concurrency 64, each job one sendMessage POST). Python BullMQ runs without a rate limiter
(3.4.4's limiter stalls after ``max`` jobs). jobs/s between the first and the last
accepted send; CPU seconds per 1,000 of the worker process and of Valkey.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.infra import (
    TOKEN,
    BenchError,
    Config,
    Env,
    Notigate,
    PeerError,
    Simulator,
    node,
    py,
    run_json,
    running,
)
from bench.load import fill_notigate
from bench.measure import delivery_figures, sample_delivery

NAME = "delivery"
TITLE = "Delivery throughput, limits off"
CHATS = 5_000
FAST = 1_000_000


# A gateway without limits: what every limit-free drain of the bench runs with.
UNLIMITED: dict[str, Any] = dict(
    NOTIGATE_GLOBAL_RATE=FAST, NOTIGATE_PRIVATE_RATE=FAST, NOTIGATE_GROUP_RATE=FAST,
    NOTIGATE_GLOBAL_MARGIN_MS=0, NOTIGATE_CHAT_MARGIN_MS=0, NOTIGATE_CONCURRENCY=64,
)  # fmt: skip


async def drain(env: Env, n: int, **settings: Any) -> dict[str, float]:
    """notigate's figures draining ``n`` pre-filled jobs, limits off; ``settings`` are
    further gateway settings (the events scenario turns the event stream off with them)."""
    await env.flush()
    await fill_notigate(env, n, chats=CHATS, private_rate=FAST)
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim, **{**UNLIMITED, **settings})
    async with running(sim, gw):
        await gw.start()
        samples = await sample_delivery(
            env, sim, [gw.proc.pid], n, timeout=60 + n / 200, procs=[gw.proc]
        )
        return delivery_figures(samples, await sim.messages())


async def _bullmq(env: Env, cfg: Config, which: str) -> dict[str, float]:
    import psutil

    n = cfg.delivery_jobs
    r = {"host": "127.0.0.1", "port": env.port}
    await env.flush()
    await run_json(node("peers/bullmq_node/fill.mjs", count=n, chats=CHATS, **r), 120)
    sim = await Simulator(env, limits=False).start()
    async with running(sim):
        opts = dict(api=sim.url, token=TOKEN, expect=n, concurrency=64, timeout=60 + n / 100, **r)
        argv = (
            node("peers/bullmq_node/worker.mjs", **opts)
            if which == "node"
            else py("peers/bullmq_py.py", mode="worker", **opts)
        )
        task = asyncio.create_task(run_json(argv, 90 + n / 100))
        # The worker is the child run_json started: find it by its command line.
        pid = None
        for _ in range(100):
            await asyncio.sleep(0.02)
            for p in psutil.Process().children():
                if argv[1] in p.cmdline():
                    pid = p.pid
            if pid:
                break
        try:
            samples = await sample_delivery(
                env,
                sim,
                [pid] if pid else [],
                n,
                timeout=60 + n / 100,
                alive=lambda: not task.done(),
            )
        except BenchError as exc:
            task.cancel()
            raise PeerError(f"BullMQ {which} worker: {exc}") from exc
        result = await task
        if result["failed"]:
            raise PeerError(f"BullMQ {which} worker: {result['failed']} jobs failed")
        return delivery_figures(samples, await sim.messages())


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems = {
        "notigate": await drain(env, cfg.delivery_jobs),
        "BullMQ Node worker": await _bullmq(env, cfg, "node"),
        "BullMQ Python worker (no limiter)": await _bullmq(env, cfg, "py"),
    }
    await env.flush()
    ng = systems["notigate"]
    return {
        "systems": systems,
        "ratios": {
            "delivery_vs_bullmq_py": ng["jobs_per_s"]
            / systems["BullMQ Python worker (no limiter)"]["jobs_per_s"],
            "delivery_vs_bullmq_node": ng["jobs_per_s"]
            / systems["BullMQ Node worker"]["jobs_per_s"],
            "cpu_vs_bullmq_node": ng["cpu_s_per_1000_total"]
            / systems["BullMQ Node worker"]["cpu_s_per_1000_total"],
        },
    }
