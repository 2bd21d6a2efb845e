"""11. Events and webhooks: how soon a WatchEvents reader hears of a state change, what the
event stream costs delivery, and how fast webhooks keep up.

*Event latency*: one notigate process with the delivery scenario's settings (rates
1,000,000/s, margins 0, 64 in flight) delivering into the simulator (``--no-limits``),
read by one WatchEvents reader (grpc.aio, a process of its own: loadgen/watch_events.py)
from the start: first one taking every event, then one filtered to completions. Latency
= the reader's clock at arrival minus Event.time, Redis's clock at the state change
(both this machine's CLOCK_REALTIME; Event.time has whole ms, floored, so a latency
reads 0-1 ms above the true one). *idle*: ``events_idle_repeats`` Sends, one at a time,
50-100 ms apart, each to a fresh chat; their waiting, active and completed events.
*offered load*: SendBatch of 1/100 of ``events_load_rate`` messages every 10 ms (over
5,000 chats, at most 8 calls in flight) for ``events_load_s`` s, delivered as they come;
the events whose time falls after the first fifth of that window. ``delivered_per_s``:
the completed events per second over the same part of the window, ``read_per_s`` the
events the reader received per second then; ``gateway_cpu_cores``: the gateway's CPU
seconds per second over the whole window.
*Delivery, events on vs off*: the delivery scenario's drain of ``delivery_jobs``
(NOTIGATE_EVENTS_MAX default, 100,000, against 0), in the order on off off on; each
mode's figures are the means of its two drains, the ratio is the run's (smoke: one
each).
*Webhooks*: a queue of ``webhook_jobs`` pre-filled as in the delivery scenario, drained
with NOTIGATE_WEBHOOK_STATES=completed (default concurrency 16) posting to an aiohttp
receiver in the bench's process that checks each signature and answers 204. events/s
between the first and the last POST; ``lag_end_s``: the last POST's arrival minus the
last job's completion (Event.time); ``pending_at_end``: the events not yet posted when
the last job completed; ``lag_p50_ms``: arrival minus Event.time of the median event.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import random
import time
from typing import Any

from bench.event_watch import ReaderProcess, Seen
from bench.infra import BenchError, Config, Env, Notigate, Simulator, running
from bench.load import bench_text, fill_notigate, grpc_stub
from bench.measure import delivery_figures, pct, sample_delivery
from bench.scenarios.delivery import CHATS, FAST, UNLIMITED, drain
from bench.webhook_receiver import WebhookReceiver
from notigate_client import pb

NAME = "events"
TITLE = "Events: WatchEvents latency, delivery with events on/off, webhooks"
TICK_S = 0.01
IN_FLIGHT = 8
IDLE_CHAT_BASE = 6_000_000
LOAD_CHAT_BASE = 1_000_000
SECRET = "bench-webhook-secret"
COMPLETED = pb.JOB_STATE_COMPLETED


def _latency_figures(seen: list[Seen]) -> dict[str, float]:
    lat = [s.latency_ms for s in seen]
    return {
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat, default=math.nan),
        "events": len(lat),
    }


async def _idle(stub: Any, repeats: int, chat_base: int) -> set[str]:
    """One Send at a time; the ids of the measured ones (one unmeasured send first: the
    connections and the gateway's tail are then warm)."""
    ids: set[str] = set()
    for k in range(repeats + 1):
        req = pb.SendRequest(chat_id=str(chat_base + k), text=f"events idle probe {k}")
        reply = await stub.Send(req, timeout=10)
        if k:
            ids.add(reply.job_id)
        await asyncio.sleep(random.uniform(0.05, 0.1))
    return ids


def _per_tick(rate: int) -> int:
    return max(1, round(rate * TICK_S))


def _ticks(seconds: float) -> int:
    return round(seconds / TICK_S)


async def _paced_batches(stub: Any, rate: int, seconds: float) -> int:
    """SendBatch of rate * TICK_S messages every TICK_S s (a tick whose call cannot start,
    IN_FLIGHT being busy, starts late and the ones after it catch up). Messages sent."""
    per_tick = _per_tick(rate)
    sem = asyncio.Semaphore(IN_FLIGHT)
    calls: list[asyncio.Task[Any]] = []

    async def batch(k: int) -> None:
        msgs = [
            pb.SendRequest(chat_id=str(LOAD_CHAT_BASE + i % CHATS), text=bench_text(i))
            for i in range(k * per_tick, (k + 1) * per_tick)
        ]
        try:
            await stub.SendBatch(pb.SendBatchRequest(messages=msgs), timeout=30)
        finally:
            sem.release()

    t0 = time.monotonic()
    for k in range(_ticks(seconds)):
        await asyncio.sleep(max(0.0, t0 + k * TICK_S - time.monotonic()))
        await sem.acquire()
        calls.append(asyncio.create_task(batch(k)))
    await asyncio.gather(*calls)
    return _ticks(seconds) * per_tick


# The readers measured: every event, and only completions (the gateway reads every entry
# either way, but sends a third of them).
READERS: dict[str, tuple[pb.JobState.ValueType, ...]] = {
    "all events": (),
    "completed only": (COMPLETED,),
}


async def _one_reader(
    gw: Notigate, stub: Any, states: tuple[pb.JobState.ValueType, ...], cfg: Config,
    chat_base: int,
) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """The idle and the offered-load figures of one reader."""
    rate, seconds = cfg.events_load_rate, cfg.events_load_s
    load_jobs = _ticks(seconds) * _per_tick(rate)
    completed = cfg.events_idle_repeats + 1 + load_jobs
    timeout = 60 + load_jobs / 200
    reader = await ReaderProcess.start(gw.target, states, completed, timeout)
    try:
        ids = await _idle(stub, cfg.events_idle_repeats, chat_base)
        start_ms = time.time() * 1000
        cpu0 = gw.cpu()
        sent = await _paced_batches(stub, rate, seconds)
        end_ms = time.time() * 1000
        cpu = (gw.cpu() - cpu0) / (end_ms - start_ms) * 1000
        seen = await reader.result(timeout + 10)
    finally:
        await reader.stop()
    # The first fifth of the window is the ramp (the queue and the reader reach their pace).
    from_ms = start_ms + (end_ms - start_ms) / 5
    window = [s for s in seen if from_ms <= s.event_ms <= end_ms]
    delivered = sum(1 for s in window if s.state == COMPLETED)
    read = sum(1 for s in seen if from_ms <= s.received_ms <= end_ms)
    load = {
        **_latency_figures(window),
        "offered_per_s": sent / (end_ms - start_ms) * 1000,
        "delivered_per_s": delivered / (end_ms - from_ms) * 1000,
        "read_per_s": read / (end_ms - from_ms) * 1000,
        "gateway_cpu_cores": cpu,
    }
    return _latency_figures([s for s in seen if s.job_id in ids]), load


async def _latency(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    await env.flush()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim, **UNLIMITED)
    out: dict[str, dict[str, float]] = {}
    async with running(sim, gw):
        await gw.start()
        channel, stub = await grpc_stub(gw.target)
        async with channel:
            for k, (reader, states) in enumerate(READERS.items()):
                chat_base = IDLE_CHAT_BASE + k * 10_000
                idle, load = await _one_reader(gw, stub, states, cfg, chat_base)
                out[f"event latency, {reader}: idle (single sends)"] = idle
                out[f"event latency, {reader}: {cfg.events_load_rate:,} msg/s offered"] = load
    return out


def _mean(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: (a[k] + b[k]) / 2 for k in a}


async def _on_off(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    n = cfg.delivery_jobs
    off = {"NOTIGATE_EVENTS_MAX": 0}
    # on off off on: a drift of the machine over the four drains weighs on both alike
    # (the smoke run, which checks only that it works, drains each once).
    on1 = await drain(env, n)
    off1 = await drain(env, n, **off)
    off2 = off1 if cfg.smoke else await drain(env, n, **off)
    on2 = on1 if cfg.smoke else await drain(env, n)
    keep = ("jobs_per_s", "cpu_s_per_1000_worker", "cpu_s_per_1000_redis", "cpu_s_per_1000_total")
    return {
        "delivery, events on": {k: v for k, v in _mean(on1, on2).items() if k in keep},
        "delivery, events off (NOTIGATE_EVENTS_MAX=0)": {
            k: v for k, v in _mean(off1, off2).items() if k in keep
        },
    }


def webhooks_built() -> bool:
    """Whether this notigate posts webhooks (the package that does it is installed)."""
    return importlib.util.find_spec("notigate.webhooks") is not None


async def _webhook_stats(target: str) -> tuple[float, float]:
    """GetStats' webhook delivered and undeliverable counts (NaN when it has none)."""
    channel, stub = await grpc_stub(target)
    async with channel:
        stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
    if not stats.HasField("webhooks"):
        return math.nan, math.nan
    return float(stats.webhooks.delivered), float(stats.webhooks.undeliverable)


async def _webhooks(env: Env, cfg: Config) -> dict[str, float]:
    n = cfg.webhook_jobs
    await env.flush()
    await fill_notigate(env, n, chats=CHATS, private_rate=FAST)
    receiver = await WebhookReceiver(SECRET).start()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(
        env, sim, **UNLIMITED,
        NOTIGATE_WEBHOOK_URL=receiver.url, NOTIGATE_WEBHOOK_SECRET=SECRET,
        NOTIGATE_WEBHOOK_STATES="completed",
    )  # fmt: skip
    async with running(receiver, sim, gw):
        await gw.start()
        samples = await sample_delivery(
            env, sim, [gw.proc.pid], n, timeout=60 + n / 200, procs=[gw.proc]
        )
        deadline = time.monotonic() + 60 + n / 100
        while receiver.distinct() < n:
            if time.monotonic() > deadline:
                raise BenchError(f"only {receiver.distinct()} of {n} webhook events arrived")
            if not gw.proc.alive():
                raise BenchError(f"notigate exited: {gw.proc.tail()}")
            await asyncio.sleep(0.1)
        delivered, undeliverable = await _webhook_stats(gw.target)
        drain_figures = delivery_figures(samples, await sim.messages())
    if receiver.bad_signatures:
        raise BenchError(f"{receiver.bad_signatures} webhook POSTs with a bad signature")
    hooks = receiver.hooks
    first = min(h.received_ms for h in hooks)
    last = max(h.received_ms for h in hooks)
    last_done = max(h.event_ms for h in hooks)
    return {
        "jobs_per_s": drain_figures["jobs_per_s"],
        "events_per_s": (len(hooks) - 1) / (last - first) * 1000 if last > first else math.nan,
        "lag_p50_ms": pct([h.received_ms - h.event_ms for h in hooks], 50),
        "lag_end_s": (last - last_done) / 1000,
        "pending_at_end": sum(1 for h in hooks if h.received_ms > last_done),
        "posts": len(hooks),
        "duplicates": len(hooks) - receiver.distinct(),
        "stats_delivered": delivered,
        "stats_undeliverable": undeliverable,
    }


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems: dict[str, dict[str, float]] = {}
    systems.update(await _latency(env, cfg))
    systems.update(await _on_off(env, cfg))
    name = f"webhooks, {cfg.webhook_jobs:,} jobs (states completed)"
    if webhooks_built():
        systems[name] = await _webhooks(env, cfg)
    else:
        print("(webhooks not in this build: skipped)", end=" ", flush=True)
        systems[name] = {"events_per_s": math.nan}
    await env.flush()
    on = systems["delivery, events on"]
    off = systems["delivery, events off (NOTIGATE_EVENTS_MAX=0)"]
    ratios = {
        "events_on_vs_off": on["jobs_per_s"] / off["jobs_per_s"],
        "events_cpu_on_vs_off": on["cpu_s_per_1000_total"] / off["cpu_s_per_1000_total"],
    }
    hooks = systems[name]
    if not math.isnan(hooks["events_per_s"]):
        ratios["webhook_events_vs_jobs"] = hooks["events_per_s"] / hooks["jobs_per_s"]
    return {"systems": systems, "ratios": ratios}
