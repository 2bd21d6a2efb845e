"""4. Rate exactness: bot-wide limit 30/s (NOTIGATE_GLOBAL_RATE=30; the simulator enforces
Telegram's limits at 30/s), ``rate_jobs`` messages queued to as many different chats,
delivered by 1 and by 3 replicas. Per 1 s: the most sends in any sliding window (must be
<= 30), the mean over full fixed windows, and the 429s the simulator answered."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.infra import Config, Env, Notigate, Simulator, running
from bench.load import fill_notigate
from bench.measure import window_figures

NAME = "rate"
TITLE = "Rate exactness, limit 30/s"
RATE = 30


async def _replicas(env: Env, cfg: Config, replicas: int) -> tuple[dict[str, float], list[int]]:
    n = cfg.rate_jobs
    await env.flush()
    await fill_notigate(env, n, chats=n, chat_base=3_000_000)
    sim = await Simulator(env, limits=True).start()
    gws = [Notigate(env, sim, f"notigate{i}", NOTIGATE_GLOBAL_RATE=RATE) for i in range(replicas)]
    async with running(sim, *gws):
        await asyncio.gather(*(g.start() for g in gws))
        got = await sim.wait_accepted(n, timeout=30 + 2 * n / RATE, procs=[g.proc for g in gws])
        if got < n:
            raise RuntimeError(f"only {got} of {n} delivered")
        stats = await sim.stats()
        w = window_figures([m["received_at"] for m in await sim.messages()])
    return (
        {
            "max_per_1s": w["max_window"],
            "mean_per_1s": w["mean_window"],
            "mean_pct_of_limit": 100 * w["mean_window"] / RATE,
            "http_429": int(stats["by_status"].get("429", 0)),
        },
        w["bins"],
    )


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems: dict[str, dict[str, float]] = {}
    series: dict[str, list[int]] = {}
    for replicas in (1, 3):
        name = f"notigate, {replicas} replica{'s' if replicas > 1 else ''}"
        systems[name], series[name] = await _replicas(env, cfg, replicas)
    await env.flush()
    return {"systems": systems, "series": series}
