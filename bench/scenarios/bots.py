"""9. Several bots from one gateway: ``bots_count`` bots in one bots file, each with its
own token (the simulator, in its own process, enforces Telegram's limits per token:
30/s bot-wide, 1/s per private chat), and, in the same run, the same gateway serving
one bot. Each bot's queue is filled beforehand with ``bots_steady_s`` s of work at
30/s (NOTIGATE_GLOBAL_RATE=30) over 300 private chats of its own, so the per-chat limit
never binds; the run is cut 1.6x that long after the first delivery, should the machine
fall behind. Per bot: the most sends in any sliding 1 s window, the mean over full 1 s
windows as % of 30/s (worst bot and median bot), the 429s. CPU seconds per 1,000
delivered of the gateway, Valkey and the simulator process between the first delivery
and the end; ``*_cpu_pct`` is each process's CPU over that span (100 = one core), and
``machine_cpu_pct`` the whole machine's (200 = both cores busy, the bench and anything
else running included)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psutil

from bench.infra import BenchError, Config, Env, Notigate, Simulator, running
from bench.load import bench_bots, fill_notigate
from bench.measure import window_figures

NAME = "bots"
TITLE = "Several bots, 30/s each, one gateway"
RATE = 30
CHATS_PER_BOT = 10 * RATE
CHAT_BASE = 10_000_000


def chat_base(k: int) -> int:
    """The first chat of the ``k``-th bot (every bot has chats of its own)."""
    return CHAT_BASE + k * 100_000


@dataclass
class Reading:
    """One reading while the bots drain: when, sends accepted, CPU seconds so far of the
    gateway, Valkey, the simulator, and the whole machine (every process, every core)."""

    t: float
    accepted: int
    gateway: float
    valkey: float
    simulator: float
    machine: float


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, all processes)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


async def drain(env: Env, sim: Simulator, gw: Notigate, n: int, cut_s: float) -> list[Reading]:
    """Readings every 0.25 s until ``n`` were accepted or ``cut_s`` s after the first
    delivery."""
    out: list[Reading] = []
    first: float | None = None
    deadline = time.monotonic() + 60
    while True:
        accepted = int((await sim.stats())["accepted"])
        now = time.monotonic()
        out.append(Reading(now, accepted, gw.cpu(), env.valkey_cpu(), sim.cpu(), machine_cpu()))
        if accepted and first is None:
            first = now
            deadline = now + cut_s
        if accepted >= n or now > deadline:
            if first is None:
                raise BenchError(f"nothing delivered in 60 s: {gw.proc.tail()}")
            return out
        if not gw.proc.alive():
            raise BenchError(
                f"notigate exited ({gw.proc.p.returncode}) after {accepted} of {n}: "
                f"{gw.proc.tail()}"
            )
        await asyncio.sleep(0.25)


def figures(
    readings: list[Reading],
    messages: list[dict[str, Any]],
    requests: list[dict[str, Any]] | None,
    bots: list[tuple[str, str, int]],
) -> dict[str, float]:
    """The case's figures (see the module's doc) from the readings and what the
    simulator saw; ``requests`` only when there were 429s (to name their bots)."""
    first = next(r for r in readings if r.accepted > 0)
    last = readings[-1]
    done = last.accepted - first.accepted
    span = last.t - first.t
    k = 1000 / done if done > 0 else math.nan
    by_bot: dict[int, list[float]] = defaultdict(list)
    for m in messages:
        by_bot[int(m["bot_id"])].append(float(m["received_at"]))
    per_bot = [window_figures(by_bot.get(bot_id, [])) for _, _, bot_id in bots]
    pcts = [100 * w["mean_window"] / RATE for w in per_bot]
    throttled: dict[int, int] = defaultdict(int)
    for r in requests or []:
        if r["status"] == 429 and r["chat_id"]:
            throttled[(int(r["chat_id"]) - CHAT_BASE) // 100_000] += 1
    times = sorted(float(m["received_at"]) for m in messages)
    return {
        "bots": len(bots),
        "delivered": len(messages),
        "msg_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else math.nan,
        "max_per_1s": max(w["max_window"] for w in per_bot),
        "worst_bot_pct_of_30": min(pcts),
        "median_bot_pct_of_30": statistics.median(pcts),
        "http_429": sum(throttled.values()),
        "bots_with_429": len(throttled),
        "cpu_s_per_1000_gateway": (last.gateway - first.gateway) * k,
        "cpu_s_per_1000_valkey": (last.valkey - first.valkey) * k,
        "cpu_s_per_1000_simulator": (last.simulator - first.simulator) * k,
        "gateway_cpu_pct": 100 * (last.gateway - first.gateway) / span,
        "valkey_cpu_pct": 100 * (last.valkey - first.valkey) / span,
        "simulator_cpu_pct": 100 * (last.simulator - first.simulator) / span,
        # Of the machine's 2 cores (200 = both busy): what else the machine ran counts too.
        "machine_cpu_pct": 100 * (last.machine - first.machine) / span,
    }


async def case(env: Env, cfg: Config, count: int) -> dict[str, float]:
    bots = bench_bots(count)
    per_bot = int(RATE * cfg.bots_steady_s)
    await env.flush()
    for k, (name, _, _) in enumerate(bots):
        await fill_notigate(env, per_bot, chats=CHATS_PER_BOT, chat_base=chat_base(k), bot=name)
    sim = await Simulator(env, limits=True, tokens=[t for _, t, _ in bots]).start()
    gw = Notigate(env, sim, bots=[(b, t) for b, t, _ in bots], NOTIGATE_GLOBAL_RATE=RATE)
    async with running(sim, gw):
        await gw.start(timeout=60)
        readings = await drain(env, sim, gw, per_bot * count, cut_s=1.6 * cfg.bots_steady_s)
        stats = await sim.stats()
        messages = await sim.messages()
        requests = await sim.requests() if int(stats["by_status"].get("429", 0)) else None
    await env.flush()
    return figures(readings, messages, requests, bots)


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    one = await case(env, cfg, 1)
    many = await case(env, cfg, cfg.bots_count)
    return {
        "systems": {"notigate, 1 bot": one, f"notigate, {cfg.bots_count} bots": many},
        "ratios": {
            "cpu_per_1000_many_vs_one": many["cpu_s_per_1000_gateway"]
            / one["cpu_s_per_1000_gateway"],
        },
    }
