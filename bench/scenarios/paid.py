"""5. Paid broadcast: NOTIGATE_PAID_BROADCAST=1 (bot-wide 1000/s), simulator enforcing its
paid-broadcast limit (1000/s), ``paid_jobs`` messages to as many chats. Sustained rate =
mean over full 1 s windows from the first send; also the sliding-window max and 429s."""

from __future__ import annotations

from typing import Any

from bench.infra import Config, Env, Notigate, Simulator, running
from bench.load import fill_notigate
from bench.measure import window_figures

NAME = "paid"
TITLE = "Paid broadcast, 1000/s"
RATE = 1000


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    n = cfg.paid_jobs
    await env.flush()
    await fill_notigate(env, n, chats=n, chat_base=4_000_000)
    sim = await Simulator(env, limits=True).start()
    gw = Notigate(env, sim, NOTIGATE_PAID_BROADCAST=1)
    async with running(sim, gw):
        await gw.start()
        got = await sim.wait_accepted(n, timeout=60 + 2 * n / RATE, procs=[gw.proc])
        if got < n:
            raise RuntimeError(f"only {got} of {n} delivered")
        stats = await sim.stats()
        times = [m["received_at"] for m in await sim.messages()]
    await env.flush()
    w = window_figures(times)
    overall = (len(times) - 1) / (max(times) - min(times))
    return {
        "systems": {
            "notigate paid broadcast": {
                "sustained_per_s": w["mean_window"] if w["bins"][:-1] else overall,
                "first_to_last_per_s": overall,
                "max_per_1s": w["max_window"],
                "pct_of_1000": 100 * (w["mean_window"] if w["bins"][:-1] else overall) / RATE,
                "http_429": int(stats["by_status"].get("429", 0)),
            }
        },
        "series": {"notigate paid broadcast": w["bins"]},
    }
