"""Sampling the bot's totals for its throughput, and the dispatcher heartbeat:
``sample.lua``."""

from __future__ import annotations

from notigate.queue.monitor import HEARTBEAT_KEEP_MS, INTERVAL_MS, RING_SLOTS
from notigate.queue.scripts.base import ScriptBase, as_int


class Sample(ScriptBase[int]):
    """Record this interval's totals (unless another gateway did) and this gateway's
    heartbeat (``live``: its dispatcher runs); returns the Redis time (ms)."""

    name = "sample"
    keys = ("stats", "throughput", "dispatchers")
    argv = ("origin", "live", "interval_ms", "slots", "keep_ms")

    async def __call__(self, *, origin: str, live: bool) -> int:
        return as_int(
            await self._run(origin, int(live), INTERVAL_MS, RING_SLOTS, HEARTBEAT_KEEP_MS)
        )
