"""One bot's status as GetStats and the alert gauges see it: the queue's figures, the
limiter's state, the live dispatchers and the alerts they make fire (two round trips:
the queue's stats, then the rest as of the stats' clock)."""

from __future__ import annotations

from dataclasses import dataclass

from notigate import alerts
from notigate.bots import Bot
from notigate.queue import QueueStats
from notigate.queue.monitor import MonitorReading
from notigate.throughput import ended_since


@dataclass(frozen=True, slots=True)
class BotStatus:
    """A bot's figures at one moment, and the alerts firing on them."""

    stats: QueueStats
    monitor: MonitorReading
    alerts: list[alerts.Alert]


def alert_figures(bot: Bot, stats: QueueStats, monitor: MonitorReading) -> alerts.Figures:
    """What the alerts look at, from the bot's readings."""
    window_ms = bot.settings.alert_failure_window_s * 1000
    ended = ended_since(monitor.samples, stats.totals, stats.now_ms, window_ms)
    oldest = stats.oldest_waiting_ms
    return alerts.Figures(
        bot=bot.name,
        delivered=None if ended is None else ended.delivered,
        failed=None if ended is None else ended.failed,
        oldest_waiting_s=None if oldest is None else max(0, stats.now_ms - oldest) / 1000,
        dispatchers=monitor.dispatchers,
        token_ok=bot.token_ok(),
    )


async def read_status(bot: Bot) -> BotStatus:
    """The bot's status now."""
    stats = await bot.queue.stats()
    monitor = await bot.queue.monitor(stats.now_ms)
    firing = alerts.firing(alert_figures(bot, stats, monitor), bot.settings)
    return BotStatus(stats, monitor, firing)
