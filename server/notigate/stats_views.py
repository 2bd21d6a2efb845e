"""GetStats' views: one bot's queue figures, and their sum over several bots."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from notigate.alerts import Alert
from notigate.config import Settings
from notigate.job_views import timestamp
from notigate.queue import JobState, QueueStats
from notigate.queue.monitor import MonitorReading
from notigate.webhooks import WebhookStats
from notigate_client import pb

# The GetStatsResponse fields a sum over bots adds up.
_ADDED = (
    "waiting",
    "active",
    "delayed",
    "completed",
    "failed",
    "cancelled",
    "total_enqueued",
    "total_sent",
    "total_failed",
    "total_retried",
    "total_rate_limited",
    "total_stalled",
    "total_cancelled",
    "total_duplicates",
    "global_rate",
    "suppressed_chats",
    "dispatchers",
)


def bot_pause_warning(stats: QueueStats) -> str | None:
    """What GetStats says while the whole bot is paused after 429s (None when it is not)."""
    if stats.paused_until_ms <= stats.now_ms:
        return None
    until = Timestamp()
    until.FromMilliseconds(stats.paused_until_ms)
    left_s = (stats.paused_until_ms - stats.now_ms) / 1000
    reason = stats.paused_reason or "429s from several chats"
    return (
        f"the whole bot is paused until {until.ToJsonString()} ({left_s:.1f} s left): "
        f"{reason}; queued messages wait and nothing is lost. If it keeps happening, lower "
        "NOTIGATE_GLOBAL_RATE"
    )


def stats_to_pb(
    stats: QueueStats,
    settings: Settings,
    warnings: Sequence[str],
    webhooks: WebhookStats | None,
    monitor: MonitorReading | None = None,
    alerts: Sequence[Alert] = (),
) -> pb.GetStatsResponse:
    """One bot's figures; ``settings`` as the bot sees them (its rate); ``monitor``: its
    limiter and dispatchers, with the ``alerts`` firing."""
    t = stats.totals
    reply = pb.GetStatsResponse(
        waiting=stats.counts[JobState.WAITING],
        active=stats.counts[JobState.ACTIVE],
        delayed=stats.counts[JobState.DELAYED],
        completed=stats.counts[JobState.COMPLETED],
        failed=stats.counts[JobState.FAILED],
        cancelled=stats.counts[JobState.CANCELLED],
        total_enqueued=t.get("enqueued", 0),
        total_sent=t.get("sent", 0),
        total_failed=t.get("failed", 0),
        total_retried=t.get("retried", 0),
        total_rate_limited=t.get("rate_limited", 0),
        total_stalled=t.get("stalled", 0),
        total_cancelled=t.get("cancelled", 0),
        total_duplicates=t.get("duplicates", 0),
        suppressed_chats=stats.suppressed_chats,
        global_rate=settings.global_rate,
        warnings=warnings,
        retention=pb.Retention(
            keep_completed=settings.keep_completed,
            keep_failed=settings.keep_failed,
            keep_age=Duration(seconds=settings.keep_age_s),
        ),
    )
    if webhooks is not None:
        reply.webhooks.CopyFrom(webhooks.to_pb())
    if monitor is not None:
        reply.limiter.CopyFrom(limiter_to_pb(stats, monitor, settings))
        reply.dispatchers = monitor.dispatchers
    reply.alerts.extend(a.to_pb() for a in alerts)
    if stats.paused_until_ms > stats.now_ms:
        reply.paused_until.CopyFrom(timestamp(stats.paused_until_ms))
    if stats.oldest_waiting_ms is not None:
        age = Duration()
        age.FromMilliseconds(max(0, stats.now_ms - stats.oldest_waiting_ms))
        reply.oldest_waiting_age.CopyFrom(age)
    return reply


def limiter_to_pb(
    stats: QueueStats, monitor: MonitorReading, settings: Settings
) -> pb.LimiterState:
    """The bot-wide limiter and the chats pacing or a 429 holds back."""
    paused = stats.paused_until_ms > stats.now_ms
    return pb.LimiterState(
        rate=settings.global_rate,
        sent_last_second=monitor.sent_last_second,
        pause_reason=stats.paused_reason if paused else "",
        held_chats=monitor.held_chats,
        chat_pauses=[
            pb.ChatPause(chat_id=chat, until=timestamp(until_ms))
            for chat, until_ms in monitor.chat_pauses
        ],
    )


def sum_stats(bots: Sequence[tuple[str, pb.GetStatsResponse]]) -> pb.GetStatsResponse:
    """The gateway's figures: counts, totals, rates and dispatchers added up; the oldest
    waiting age and the latest pause of any bot; each bot's warnings, named, and alerts
    (one bot: its own, limiter included; several: no limiter, each bot's is its own)."""
    if len(bots) == 1:
        reply = pb.GetStatsResponse()
        reply.CopyFrom(bots[0][1])
        return reply
    reply = pb.GetStatsResponse()
    for name, one in bots:
        for attr in _ADDED:
            setattr(reply, attr, getattr(reply, attr) + getattr(one, attr))
        reply.warnings.extend(f"bot {name}: {w}" for w in one.warnings)
        reply.alerts.extend(one.alerts)
        if one.HasField("oldest_waiting_age") and (
            not reply.HasField("oldest_waiting_age")
            or one.oldest_waiting_age.ToMilliseconds() > reply.oldest_waiting_age.ToMilliseconds()
        ):
            reply.oldest_waiting_age.CopyFrom(one.oldest_waiting_age)
        if one.HasField("paused_until") and (
            not reply.HasField("paused_until")
            or one.paused_until.ToMilliseconds() > reply.paused_until.ToMilliseconds()
        ):
            reply.paused_until.CopyFrom(one.paused_until)
        if one.HasField("webhooks"):
            _add_webhooks(reply.webhooks, one.webhooks)
        reply.retention.CopyFrom(one.retention)  # the gateway's: the same for every bot
    return reply


def _add_webhooks(total: pb.WebhookStats, one: pb.WebhookStats) -> None:
    total.pending += one.pending
    total.delivered += one.delivered
    total.undeliverable += one.undeliverable
    if one.HasField("oldest_pending_time") and (
        not total.HasField("oldest_pending_time")
        or one.oldest_pending_time.ToMilliseconds() < total.oldest_pending_time.ToMilliseconds()
    ):
        total.oldest_pending_time.CopyFrom(one.oldest_pending_time)
