"""A bot's throughput from the samples of its lifetime totals (see
:mod:`notigate.queue.monitor`): each two samples of adjacent intervals give one
interval's counts.

Counters only grow, except when the store lost data (a reset, a failover to a replica
behind): a counter that went back yields 0 for its interval, never a negative count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration

from notigate.job_views import timestamp
from notigate.queue.monitor import INTERVAL_MS, RingSample
from notigate_client import pb

# GetThroughput reports the intervals that began within this span before now.
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Interval:
    """What the bot did in one interval."""

    start_ms: int
    delivered: int
    rate_limited: int
    failed: int
    accepted: int


def _grown(later: int, earlier: int) -> int:
    return max(0, later - earlier)


def intervals(samples: Sequence[RingSample], now_ms: int, span_ms: int = HOUR_MS) -> list[Interval]:
    """The intervals that reach into the ``span_ms`` before ``now_ms`` and whose next
    interval was sampled too, oldest first (``samples`` in interval order)."""
    by_number = {s.interval: s for s in samples}
    since = now_ms - span_ms
    found = []
    for n in sorted(by_number):
        after = by_number.get(n + 1)
        start = n * INTERVAL_MS
        if after is None or start + INTERVAL_MS <= since or start > now_ms:
            continue
        before = by_number[n]
        found.append(
            Interval(
                start_ms=start,
                delivered=_grown(after.sent, before.sent),
                rate_limited=_grown(after.rate_limited, before.rate_limited),
                failed=_grown(after.failed, before.failed),
                accepted=_grown(after.enqueued, before.enqueued),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Ended:
    """Deliveries that ended over a window: sent, and given up."""

    delivered: int
    failed: int


def ended_since(
    samples: Sequence[RingSample], totals: Mapping[str, int], now_ms: int, window_ms: int
) -> Ended | None:
    """What ended from the oldest sample of the last ``window_ms`` to ``totals`` (the
    lifetime totals now); None when no sample falls in the window (nothing measured)."""
    since = now_ms - window_ms
    first = next((s for s in samples if since <= s.start_ms <= now_ms), None)
    if first is None:
        return None
    return Ended(
        delivered=_grown(totals.get("sent", 0), first.sent),
        failed=_grown(totals.get("failed", 0), first.failed),
    )


def throughput_to_pb(found: Sequence[Interval]) -> pb.GetThroughputResponse:
    """GetThroughput's reply."""
    return pb.GetThroughputResponse(
        samples=[
            pb.ThroughputSample(
                start_time=timestamp(i.start_ms),
                delivered=i.delivered,
                rate_limited=i.rate_limited,
                failed=i.failed,
                accepted=i.accepted,
            )
            for i in found
        ],
        interval=Duration(seconds=INTERVAL_MS // 1000),
    )
