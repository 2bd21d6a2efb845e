"""6-8. Latency from a Send to the Bot API request, under the default bot-wide limit of
30/s (NOTIGATE_GLOBAL_RATE=30; the simulator enforces Telegram's limits):

* priority: ``priority_backlog`` messages at priority 0 over 1,000 chats queued with
  SendBatch (500 a call), then priority-10 messages, one at a time, each to a fresh chat;
* head-of-line: chat A has ``hol_backlog`` queued; one message at a time to a fresh chat B;
* idle: an empty queue; one message at a time, each to a fresh chat.

Times are the simulator's ``received_at`` minus the bench's clock just before the Send
call (both CLOCK_MONOTONIC), so they include the Send RPC.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.infra import Config, Env, Notigate, Simulator, running
from bench.load import grpc_stub, timed_sends
from bench.measure import pct
from notigate_client import pb

NAME = "latency"
TITLE = "Latency: Send to Bot API request (limit 30/s)"
RATE = 30


async def _send_batches(stub: Any, n: int, chats: int, chat_base: int, priority: int) -> None:
    sem = asyncio.Semaphore(4)

    async def one(start: int) -> None:
        async with sem:
            msgs = [
                pb.SendRequest(
                    chat_id=str(chat_base + i % chats), text=f"backlog #{i}", priority=priority
                )
                for i in range(start, min(n, start + 500))
            ]
            await stub.SendBatch(pb.SendBatchRequest(messages=msgs), timeout=60)

    await asyncio.gather(*(one(s) for s in range(0, n, 500)))


def _figures(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat), "n": len(lat)}


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems: dict[str, dict[str, float]] = {}
    samples: dict[str, list[float]] = {}
    for case in ("idle", "head-of-line", "priority"):
        await env.flush()
        sim = await Simulator(env, limits=True).start()
        gw = Notigate(env, sim, NOTIGATE_GLOBAL_RATE=RATE)
        async with running(sim, gw):
            await gw.start()
            channel, stub = await grpc_stub(gw.target)
            async with channel:
                if case == "idle":
                    chats = [str(6_000_000 + k) for k in range(cfg.idle_repeats)]
                    lat = await timed_sends(stub, sim, chats, priority=0, tag="idle",
                                            gap=(0.05, 0.1))  # fmt: skip
                    name = "idle (empty queue)"
                elif case == "head-of-line":
                    await _send_batches(stub, cfg.hol_backlog, 1, 7_000_000, 0)
                    chats = [str(7_100_000 + k) for k in range(cfg.hol_repeats)]
                    lat = await timed_sends(stub, sim, chats, priority=0, tag="hol")
                    name = f"chat B behind chat A's {cfg.hol_backlog:,}"
                else:
                    await _send_batches(stub, cfg.priority_backlog, 1000, 8_000_000, 0)
                    chats = [str(8_100_000 + k) for k in range(cfg.priority_repeats)]
                    lat = await timed_sends(stub, sim, chats, priority=10, tag="prio")
                    name = f"priority 10 behind {cfg.priority_backlog:,} at priority 0"
        systems[name] = _figures(lat)
        samples[name] = lat
    await env.flush()
    return {"systems": systems, "samples": samples}
