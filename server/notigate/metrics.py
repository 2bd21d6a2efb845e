"""Prometheus metrics: counters and histograms kept by the gateway, queue gauges, /metrics.

Every :class:`Metrics` has its own ``CollectorRegistry``, so several gateways can run in one
process (the tests do). Queue depths are read from Redis by a background task once a second
and served from that snapshot: a scrape never waits on Redis nor blocks the event loop.
No metric is labelled by chat: chat ids are unbounded and would explode the series count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notigate.errors import QueueUnavailable
from notigate.queue import Queue, QueueStats

log = logging.getLogger(__name__)

# Telegram answers in tens to hundreds of ms; a slow send is capped by the read timeout.
_TELEGRAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Lease to recorded outcome: includes Redis round trips and a possible migration resend.
_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stats: QueueStats


class _QueueCollector(Collector):
    """Serves the last queue snapshot as gauges (nothing while none was read)."""

    def __init__(self) -> None:
        self.snapshot: _Snapshot | None = None

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot  # one read: the refresher replaces it whole
        if snap is None:
            return
        jobs = GaugeMetricFamily(
            "notigate_queue_jobs", "Jobs in the queue by state.", labels=["state"]
        )
        for state, count in snap.stats.counts.items():
            jobs.add_metric([state.value], count)
        yield jobs
        oldest = snap.stats.oldest_waiting_ms
        age_s = 0.0 if oldest is None else max(0, snap.stats.now_ms - oldest) / 1000
        yield GaugeMetricFamily(
            "notigate_queue_oldest_waiting_age_seconds",
            "Age of the oldest due message still waiting (0 when none waits).",
            value=age_s,
        )
        paused_s = max(0, snap.stats.paused_until_ms - snap.stats.now_ms) / 1000
        yield GaugeMetricFamily(
            "notigate_queue_bot_paused_seconds",
            "Time left in a bot-wide pause after 429s (0 when not paused).",
            value=paused_s,
        )


class Metrics:
    """The gateway's metrics, in a registry of their own (:attr:`registry`)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.jobs_enqueued = Counter(
            "notigate_jobs_enqueued", "Messages accepted (duplicates not counted).", registry=r
        )
        self.jobs_delivered = Counter(
            "notigate_jobs_delivered", "Messages Telegram accepted.", registry=r
        )
        self.jobs_failed = Counter(
            "notigate_jobs_failed",
            "Jobs given up (permanent error or attempts used up).",
            registry=r,
        )
        self.jobs_retried = Counter(
            "notigate_jobs_retried", "Transient failures scheduled for another attempt.", registry=r
        )
        self.telegram_rate_limited = Counter(
            "notigate_telegram_rate_limited", "429 answers from Telegram.", registry=r
        )
        self.telegram_requests = Counter(
            "notigate_telegram_requests",
            "sendMessage calls by outcome.",
            ["outcome"],
            registry=r,
        )
        self.telegram_duration = Histogram(
            "notigate_telegram_request_duration_seconds",
            "Duration of one sendMessage call.",
            buckets=_TELEGRAM_BUCKETS,
            registry=r,
        )
        # The lease carries no enqueue time, so this measures lease -> recorded delivery;
        # time spent queued shows in notigate_queue_oldest_waiting_age_seconds.
        self.delivery_duration = Histogram(
            "notigate_delivery_duration_seconds",
            "From leasing a job to recording its delivery.",
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.grpc_requests = Counter(
            "notigate_grpc_requests",
            "Unary gRPC calls by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.grpc_duration = Histogram(
            "notigate_grpc_request_duration_seconds",
            "Duration of unary gRPC calls.",
            ["method"],
            buckets=_GRPC_BUCKETS,
            registry=r,
        )
        self._queue = _QueueCollector()
        r.register(self._queue)

    def observe_telegram(self, outcome: str, duration_s: float) -> None:
        """Record one sendMessage call (``outcome``: delivered, rate_limited, ...)."""
        self.telegram_requests.labels(outcome=outcome).inc()
        self.telegram_duration.observe(duration_s)
        if outcome == "rate_limited":
            self.telegram_rate_limited.inc()

    def set_queue_stats(self, stats: QueueStats | None) -> None:
        """Replace the queue snapshot served at scrape time (None: unknown, not served)."""
        self._queue.snapshot = None if stats is None else _Snapshot(stats)

    async def refresh_queue(self, queue: Queue, interval_s: float = 1.0) -> None:
        """Read the queue's stats every ``interval_s`` until cancelled."""
        while True:
            try:
                self.set_queue_stats(await queue.stats())
            except QueueUnavailable:
                # Stale depths would look healthy; better no gauge than a wrong one.
                self.set_queue_stats(None)
            await asyncio.sleep(interval_s)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` over HTTP on the event loop (aiohttp; the body is a few kB)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, listen: str) -> None:
        """Bind ``host:port`` (port 0 picks a free one, see :attr:`port`) and serve."""
        host, _, port = listen.rpartition(":")
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


_Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,unused-ignore]
    """Counts and times unary calls by method and status code.

    Streaming methods (reflection, health Watch) pass through uncounted. Put it first in
    the interceptor list so that calls rejected by later interceptors (auth) are counted.
    Unknown methods are not counted either: their names would be attacker-chosen labels.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        behavior: _Behavior = handler.unary_unary
        metrics = self.metrics

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code: Any = grpc.StatusCode.UNKNOWN
            try:
                response = await behavior(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                # abort() raises after setting the code; any other exception is UNKNOWN.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                metrics.grpc_requests.labels(method=method, code=name).inc()
                metrics.grpc_duration.labels(method=method).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
