"""Closed-loop driver for the Python load generators (the peers run it in their own
processes): start barrier, warm-up, fixed measuring window, per-request latencies."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any


async def drive(
    op: Callable[[int], Awaitable[Any]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.5,
    start_at: float = 0.0,
    per_op: int = 1,
    seq_base: int = 0,
) -> dict[str, Any]:
    """Run ``concurrency`` loops of ``op(i)``; count what completes inside the window.

    ``start_at`` is a wall-clock time (``time.time()``) that lines several processes up.
    """
    if start_at:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    measure_to = measure_from + duration
    seq = seq_base
    done = 0
    errors = 0
    first_error: str | None = None
    lat: list[float] = []

    async def loop() -> None:
        nonlocal seq, done, errors, first_error
        while time.perf_counter() < measure_to:
            i = seq
            seq += 1
            s = time.perf_counter()
            try:
                await op(i)
            except Exception:
                errors += 1
                first_error = first_error or traceback.format_exc()
                if errors > 100:
                    raise
                continue
            e = time.perf_counter()
            if s >= measure_from and e <= measure_to:
                done += per_op
                lat.append(round((e - s) * 1000, 3))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return {
        "ops": done,
        "seconds": duration,
        "latencies_ms": lat,
        "errors": errors,
        "first_error": first_error,
    }


async def drive_peer(
    op: Callable[[int], Awaitable[Any]], o: dict[str, Any], *, per_op: int = 1
) -> dict[str, Any]:
    """:func:`drive` with the concurrency, window, warm-up, start time and sequence base
    from a peer's JSON options (``startAt`` in ms since the epoch, as the bench passes it)."""
    return await drive(
        op,
        concurrency=o.get("concurrency", 32),
        duration=o.get("duration", 5),
        warmup=o.get("warmup", 0.5),
        start_at=o.get("startAt", 0) / 1000,
        per_op=per_op,
        seq_base=o.get("seqBase", 0),
    )


def emit(result: dict[str, Any]) -> None:
    """One JSON line on stdout: what the orchestrator reads."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
