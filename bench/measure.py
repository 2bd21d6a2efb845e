"""The bench's statistics: percentiles and medians, delivery rate and CPU from samples
taken while a queue drains, and per-window send counts of what the simulator saw."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.infra import BenchError, Env, Proc, Simulator, cpu_seconds


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return float(ordered[k])


def median(values: Sequence[float]) -> float:
    """Median of the values that are not None or NaN; NaN for none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(vals)) if vals else math.nan


@dataclass
class Sample:
    """One reading while a queue drains: when, sends accepted, CPU seconds of the
    workers and of Valkey so far."""

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
