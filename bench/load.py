"""The bench's load: closed loops of load processes, notigate's queue filled directly, and
timed probe sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from bench.infra import BenchError, Env, Notigate, Simulator, node, run_json, running
from bench.measure import pct


async def closed_loop(argvs: list[list[str]], timeout: float) -> dict[str, Any]:
    """Run several load processes side by side; merge their counts and latencies."""
    results = await asyncio.gather(*(run_json(a, timeout) for a in argvs))
    lat = [x for r in results for x in r["latencies_ms"]]
    ops = sum(r["ops"] for r in results)
    seconds = results[0]["seconds"]
    return {
        "ops_per_s": ops / seconds,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "n": len(lat),
    }


async def grpc_loops(
    env: Env, methods: Sequence[str], timeout: float, **opts: Any
) -> dict[str, dict[str, Any]]:
    """One closed loop per gRPC method (by ``loadgen/grpc_load.mjs`` name), in turn, each
    from one Node process, against one notigate (bot-wide 30/s) delivering into a
    limit-free simulator. The figures by method."""
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim, NOTIGATE_GLOBAL_RATE=30)
    async with running(sim, gw):
        await gw.start()
        return {
            m: await closed_loop(
                [node("loadgen/grpc_load.mjs", method=m, target=gw.target, **opts)], timeout
            )
            for m in methods
        }


def start_at(delay_s: float = 1.5) -> int:
    """A common start time (ms since the epoch) for processes started together."""
    return int((time.time() + delay_s) * 1000)


# -- notigate's queue, filled directly (the same enqueue script Send runs) -------------


def bench_text(i: int) -> str:
    """The text of the bench's ``i``-th message (the same length for every system)."""
    return f"benchmark message #{i}: your order has shipped"


async def fill_notigate(
    env: Env,
    count: int,
    *,
    chats: int,
    priority: int = 0,
    chat_base: int = 1_000_000,
    private_rate: int = 1,
    batch: int = 1000,
    bot: str | None = None,
    text: Callable[[int], str] = bench_text,
    key: Callable[[int], str] | None = None,
) -> float:
    """Queue ``count`` messages over ``chats`` chats through notigate's own Queue.enqueue
    (no server: nothing is delivered meanwhile), into ``bot``'s queue (None: the default
    bot's). The ``i``-th message's text is ``text(i)`` and its idempotency key ``key(i)``
    ('' or no ``key``: none). Returns the seconds it took."""
    from notigate.config import DEFAULT_BOT, Limits, Settings
    from notigate.job_views import new_job
    from notigate.queue import Queue
    from notigate_client import pb

    settings = Settings(redis_url=env.redis_url, limits=Limits(private_rate=private_rate))
    queue = Queue(env.r(), settings, bot or DEFAULT_BOT)
    await queue.load()
    t0 = time.perf_counter()
    pending: list[asyncio.Task[Any]] = []
    for start in range(0, count, batch):
        jobs = []
        for i in range(start, min(count, start + batch)):
            chat = str(chat_base + i % chats)
            request = pb.SendRequest(chat_id=chat, text=text(i), priority=priority)
            if key is not None:
                request.idempotency_key = key(i)
            jobs.append(new_job(request))
        pending.append(asyncio.create_task(queue.enqueue(jobs)))
        if len(pending) >= 4:
            await pending.pop(0)
    await asyncio.gather(*pending)
    return time.perf_counter() - t0


# -- probes through notigate's API ------------------------------------------------------


async def grpc_stub(target: str) -> tuple[Any, Any]:
    """A channel to notigate at ``target`` and a NotificationService stub on it."""
    from notigate_client import pb_grpc

    channel = grpc.aio.insecure_channel(target)
    return channel, pb_grpc.NotificationServiceStub(channel)


async def timed_sends(
    stub: Any, sim: Simulator, chats: Sequence[str], *, priority: int, tag: str,
    gap: tuple[float, float] = (0.15, 0.3),
) -> list[float]:  # fmt: skip
    """Send one message to each chat, spaced by ``gap`` s; return each message's time from
    the Send call to the simulator accepting it, in ms (same CLOCK_MONOTONIC)."""
    import random

    from notigate_client import pb

    sent: dict[str, float] = {}
    for k, chat in enumerate(chats):
        text = f"{tag} probe {k}"
        t0 = time.monotonic()
        await stub.Send(pb.SendRequest(chat_id=chat, text=text, priority=priority), timeout=10)
        sent[text] = t0
        await asyncio.sleep(random.uniform(*gap))
    deadline = time.monotonic() + 10
    while True:
        got = {m["text"]: m["received_at"] for m in await sim.messages() if m["text"] in sent}
        if len(got) == len(sent):
            return [(got[t] - t0) * 1000 for t, t0 in sent.items()]
        if time.monotonic() > deadline:
            raise BenchError(f"{tag}: only {len(got)} of {len(sent)} probes delivered")
        await asyncio.sleep(0.2)


# -- several bots -----------------------------------------------------------------------


def bench_bots(n: int, *, first_id: int = 500_000) -> list[tuple[str, str, int]]:
    """``n`` bots for a bots file and the simulator: (name, token, bot id)."""
    return [(f"b{k:04d}", f"{first_id + k}:bench-bot-{k}", first_id + k) for k in range(n)]
