"""10. Idle bots: the same work for ``idle_bots_busy`` bots (``idle_bots_steady_s`` s
of backlog each at 30/s over 300 private chats of their own, simulator enforcing
Telegram's limits per token) from a gateway whose bots file names only those bots, and
from one that names ``idle_bots_total`` bots, the others with nothing to do. CPU seconds
per 1,000 delivered of the gateway and of Valkey between the first delivery and the
last, the work queued once the gateway has run SETTLE_S; startup is the time from
starting ``notigate serve`` to its health check answering SERVING (every bot's queue
loaded and its token checked)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.infra import Config, Env, Notigate, Simulator, running
from bench.load import bench_bots, fill_notigate
from bench.scenarios.bots import CHATS_PER_BOT, RATE, chat_base, drain, figures

NAME = "idle_bots"
# How long the gateway runs before the busy bots get their work.
SETTLE_S = 5.0
TITLE = "Idle bots: the same busy bots among many configured"


async def case(env: Env, cfg: Config, configured: int) -> dict[str, float]:
    bots = bench_bots(configured)
    busy = bots[: cfg.idle_bots_busy]
    per_bot = int(RATE * cfg.idle_bots_steady_s)
    await env.flush()
    sim = await Simulator(env, limits=True, tokens=[t for _, t, _ in bots]).start()
    gw = Notigate(env, sim, bots=[(b, t) for b, t, _ in bots], NOTIGATE_GLOBAL_RATE=RATE)
    async with running(sim, gw):
        t0 = time.monotonic()
        await gw.start(timeout=120)
        startup = time.monotonic() - t0
        # The steady state is measured, not the end of startup (its cost is startup_s):
        # the work arrives once the gateway has settled, its wake messages waking the bots.
        await asyncio.sleep(SETTLE_S)
        for k, (name, _, _) in enumerate(busy):
            await fill_notigate(env, per_bot, chats=CHATS_PER_BOT, chat_base=chat_base(k), bot=name)
        readings = await drain(
            env, sim, gw, per_bot * len(busy), cut_s=1.6 * cfg.idle_bots_steady_s + 5
        )
        stats = await sim.stats()
        messages = await sim.messages()
        requests = await sim.requests() if int(stats["by_status"].get("429", 0)) else None
    await env.flush()
    f = figures(readings, messages, requests, busy)
    return {
        "configured": configured,
        "busy": len(busy),
        "startup_s": startup,
        **{k: f[k] for k in ("delivered", "msg_per_s", "max_per_1s", "worst_bot_pct_of_30",
                             "http_429", "cpu_s_per_1000_gateway", "cpu_s_per_1000_valkey",
                             "gateway_cpu_pct", "valkey_cpu_pct", "machine_cpu_pct")},
    }  # fmt: skip


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    few = await case(env, cfg, cfg.idle_bots_busy)
    many = await case(env, cfg, cfg.idle_bots_total)
    busy = cfg.idle_bots_busy
    return {
        "systems": {
            f"{busy} configured, {busy} busy": few,
            f"{cfg.idle_bots_total:,} configured, {busy} busy": many,
        },
        "ratios": {
            "gateway_cpu_many_vs_few": many["cpu_s_per_1000_gateway"]
            / few["cpu_s_per_1000_gateway"],
            "valkey_cpu_many_vs_few": many["cpu_s_per_1000_valkey"] / few["cpu_s_per_1000_valkey"],
            "startup_many_vs_few": many["startup_s"] / few["startup_s"],
        },
    }
