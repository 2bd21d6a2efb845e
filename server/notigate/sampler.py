"""The throughput sampler: once per interval, each bot's lifetime totals go into its
throughput ring (``sample.lua``) with this gateway's dispatcher heartbeat, and the alert
gauges are refreshed from the bot's status.

Every gateway samples every bot it serves; the first sample of an interval is kept, so
replicas neither double the figures nor leave a gap while one of them runs. The samples
follow Redis's clock (the interval is Redis time // INTERVAL_MS): each bot samples at a
phase of its own within the interval, away from its edges, so a clock read a little late
still lands in the interval meant. Phases and first samples are spread at
SAMPLES_PER_S bots a second, so a thousand bots do not sample at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from notigate.bot_status import read_status
from notigate.bots import Bot
from notigate.errors import StoreError
from notigate.metrics import Metrics
from notigate.queue.monitor import INTERVAL_MS
from notigate.supervisor import Spell

log = logging.getLogger(__name__)

# How many bots' samples a gateway spreads over a second.
SAMPLES_PER_S = 100
# A sample is taken this far from an interval's edges at least.
_EDGE_MS = 1_000
# Retry delays after a Redis error (the next interval's sample is the real retry).
_RETRY_S = (1.0, INTERVAL_MS / 1000)
# Its own generator: drawing the process's shared random state would upset code that
# inspects it (as the dispatcher's jitter does).
_random = random.Random()


def spread_ms(bots: int) -> float:
    """Over how long the samples of ``bots`` bots are spread (ms)."""
    return min(INTERVAL_MS - 2 * _EDGE_MS, 1000 * bots / SAMPLES_PER_S)


async def sample_forever(
    bot: Bot,
    dispatcher_live: Callable[[], bool],
    *,
    bots: int = 1,
    metrics: Metrics | None = None,
) -> None:
    """Sample ``bot`` once per interval until cancelled (``bots``: how many the gateway
    samples; ``metrics``: refresh its alert gauges too)."""
    spell = Spell(
        f"sampling bot {bot.name}'s throughput",
        logger=log,
        count=metrics.redis_error if metrics else lambda _kind: None,
    )
    spread = spread_ms(bots)
    phase_ms = _EDGE_MS + _random.uniform(0, spread)
    await asyncio.sleep(_random.uniform(0, spread) / 1000)
    while True:
        try:
            now_ms = await bot.queue.sample(live=dispatcher_live())
            if metrics is not None:
                await _refresh_gauges(bot, metrics)
        except StoreError as exc:
            spell.failed(exc)
            if metrics is not None:
                metrics.forget_alerts(bot.name)  # no gauge rather than a stale one
            await asyncio.sleep(spell.delay_s(*_RETRY_S))
            continue
        spell.succeeded()
        next_ms = (now_ms // INTERVAL_MS + 1) * INTERVAL_MS + phase_ms
        await asyncio.sleep((next_ms - now_ms) / 1000)


async def _refresh_gauges(bot: Bot, metrics: Metrics) -> None:
    status = await read_status(bot)
    metrics.set_alerts(bot.name, [a.kind for a in status.alerts], status.monitor.dispatchers)
