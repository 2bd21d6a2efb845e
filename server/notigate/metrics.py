"""Prometheus metrics: counters and histograms kept by the gateway, queue gauges, /metrics.

Every :class:`Metrics` has its own ``CollectorRegistry``, so several gateways can run in one
process (the tests do). Queue depths are read from Redis by a background task once a second
and served from that snapshot: a scrape never waits on Redis nor blocks the event loop.
No metric is labelled by chat: chat ids are unbounded and would explode the series count.
Job and Telegram metrics are labelled by ``bot``: bots are configured, so they are few.
gRPC calls are counted under go-grpc-prometheus's names and labels (``grpc_server_*``,
``grpc_service``/``grpc_method``/``grpc_code``/``grpc_type``), so the dashboards and alerts
written for it apply unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notigate import __version__
from notigate.alerts import AlertKind
from notigate.errors import RedisErrorKind, StoreError
from notigate.health import HealthReason, HealthState, TokenState
from notigate.http_listen import serve
from notigate.method_handlers import Behavior, rewrap
from notigate.queue import Queue, QueueStats
from notigate.supervisor import Spell
from notigate_client import pb

log = logging.getLogger(__name__)

# Telegram answers in tens to hundreds of ms; a slow send is capped by the read timeout.
_TELEGRAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Lease to recorded outcome: includes Redis round trips and a possible migration resend.
_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]


def _go_code_name(code: grpc.StatusCode) -> str:
    # grpc-go's codes.Code.String(), which go-grpc-prometheus puts in grpc_code.
    if code is grpc.StatusCode.OK:
        return "OK"
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(word.capitalize() for word in code.name.split("_"))


GRPC_CODE_NAMES: dict[grpc.StatusCode, str] = {c: _go_code_name(c) for c in grpc.StatusCode}
"""``grpc_code`` label values: the status codes as grpc-go spells them (``InvalidArgument``)."""


class _QueueCollector(Collector):
    """Serves the last snapshot of each bot's queue as gauges (nothing for a bot whose
    queue could not be read)."""

    def __init__(self) -> None:
        # Bot -> its queue's stats; the refresher replaces the dict whole.
        self.snapshot: dict[str, QueueStats] = {}

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot  # one read
        if not snap:
            return
        jobs = GaugeMetricFamily(
            "notigate_queue_jobs", "Jobs in the queue by state.", labels=["bot", "state"]
        )
        age = GaugeMetricFamily(
            "notigate_queue_oldest_waiting_age_seconds",
            "Age of the oldest due message still waiting (0 when none waits).",
            labels=["bot"],
        )
        left = GaugeMetricFamily(
            "notigate_queue_bot_paused_seconds",
            "Time left in a bot-wide pause after 429s (0 when not paused).",
            labels=["bot"],
        )
        paused = GaugeMetricFamily(
            "notigate_bot_paused",
            "1 while the whole bot is paused after 429s from several chats (GetStats says why).",
            labels=["bot"],
        )
        until = GaugeMetricFamily(
            "notigate_bot_paused_until_seconds",
            "Unix time the bot-wide pause ends (0 when not paused).",
            labels=["bot"],
        )
        for bot, stats in snap.items():
            for state, count in stats.counts.items():
                jobs.add_metric([bot, state.value], count)
            oldest = stats.oldest_waiting_ms
            age.add_metric([bot], 0.0 if oldest is None else max(0, stats.now_ms - oldest) / 1000)
            left.add_metric([bot], max(0, stats.paused_until_ms - stats.now_ms) / 1000)
            is_paused = stats.paused_until_ms > stats.now_ms
            paused.add_metric([bot], int(is_paused))
            until.add_metric([bot], stats.paused_until_ms / 1000 if is_paused else 0.0)
        yield from (jobs, age, left, paused, until)


class _HealthCollector(Collector):
    """Serves the health monitor's current readings (nothing before one is attached)."""

    def __init__(self) -> None:
        self.source: Callable[[], HealthState] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.source is None:
            return
        state = self.source()
        yield GaugeMetricFamily(
            "notigate_health_serving",
            "1 while grpc.health.v1 reports SERVING (Redis accepts writes, the dispatcher "
            "runs, Telegram accepts the token); why not: notigate_health_reason.",
            value=int(state.serving),
        )
        reasons = GaugeMetricFamily(
            "notigate_health_reason",
            "1 for each reason health is NOT_SERVING now, 0 for the others.",
            labels=["reason"],
        )
        for reason in HealthReason:
            reasons.add_metric([reason.value], int(reason in state.reasons))
        yield reasons
        yield GaugeMetricFamily(
            "notigate_redis_up",
            "1 while Redis answers (the health probe gets a reply, even an error).",
            value=int(state.redis_ok),
        )
        valid = GaugeMetricFamily(
            "notigate_bot_token_valid",
            "1 while Telegram accepts the bot's token, 0 once it answered 401.",
            labels=["bot"],
        )
        for bot, token in state.tokens.items():
            if token is not TokenState.UNKNOWN:  # no answer from Telegram yet: neither 0 nor 1
                valid.add_metric([bot], int(token is TokenState.ACCEPTED))
        yield valid


class Metrics:
    """The gateway's metrics, in a registry of their own (:attr:`registry`)."""

    def __init__(self) -> None:
        # Each counter and histogram would carry a `_created` twin per label set: series
        # nobody graphs. The switch is process-wide; the gateway owns its process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = r = CollectorRegistry()
        Info("notigate_build", "The running notigate's version.", registry=r).info(
            {"version": __version__}
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.jobs_enqueued = Counter(
            "notigate_jobs_enqueued",
            "Messages accepted (duplicates not counted).",
            ["bot"],
            registry=r,
        )
        self.jobs_delivered = Counter(
            "notigate_jobs_delivered", "Messages Telegram accepted.", ["bot"], registry=r
        )
        self.jobs_failed = Counter(
            "notigate_jobs_failed",
            "Jobs given up (permanent error or attempts used up).",
            ["bot"],
            registry=r,
        )
        self.jobs_suppressed = Counter(
            "notigate_jobs_suppressed",
            "Jobs failed without a request because their chat is suppressed (it blocked the "
            "bot or was not found); also counted in notigate_jobs_failed.",
            ["bot"],
            registry=r,
        )
        self.jobs_retried = Counter(
            "notigate_jobs_retried",
            "Transient failures scheduled for another attempt.",
            ["bot"],
            registry=r,
        )
        self.telegram_rate_limited = Counter(
            "notigate_telegram_rate_limited", "429 answers from Telegram.", ["bot"], registry=r
        )
        self.telegram_requests = Counter(
            "notigate_telegram_requests",
            "sendMessage calls by outcome.",
            ["bot", "outcome"],
            registry=r,
        )
        self.telegram_duration = Histogram(
            "notigate_telegram_request_duration_seconds",
            "Duration of one sendMessage call.",
            ["bot"],
            buckets=_TELEGRAM_BUCKETS,
            registry=r,
        )
        # The lease carries no enqueue time, so this measures lease -> recorded delivery;
        # time spent queued shows in notigate_queue_oldest_waiting_age_seconds.
        self.delivery_duration = Histogram(
            "notigate_delivery_duration_seconds",
            "From leasing a job to recording its delivery.",
            ["bot"],
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.store_data_loss = Counter(
            "notigate_store_data_loss",
            "Times the store was found to have lost data: reset = emptied (flushed, restarted"
            " without persistence), rollback = went back (failover to a replica behind).",
            ["kind"],
            registry=r,
        )
        self.outcomes_orphaned = Counter(
            "notigate_outcomes_orphaned",
            "Deliveries that could not be recorded: the job is gone (no_job), or its id now"
            " names another job (other_job); both follow a loss of the store's data.",
            ["bot", "reason"],
            registry=r,
        )
        self.late_completions = Counter(
            "notigate_jobs_late_completion",
            "Deliveries recorded after their lease was lost (a slow send, a paused"
            " process): the job had gone back to the queue and may have been sent twice.",
            ["bot"],
            registry=r,
        )
        for kind in ("reset", "rollback"):
            self.store_data_loss.labels(kind=kind)
        self.grpc_started = Counter(
            "grpc_server_started",
            "RPCs started on the server.",
            _GRPC_LABELS,
            registry=r,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure.",
            [*_GRPC_LABELS, "grpc_code"],
            registry=r,
        )
        self.grpc_handling = Histogram(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server.",
            _GRPC_LABELS,
            buckets=_GRPC_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "notigate_redis_errors",
            "Redis errors met by the gateway's background work and its calls, by kind.",
            ["kind"],
            registry=r,
        )
        for kind in RedisErrorKind:
            self.redis_errors.labels(kind=kind.value)
        self.task_restarts = Counter(
            "notigate_task_restarts",
            "Background loops started again after they failed or ended unexpectedly.",
            ["task"],
            registry=r,
        )
        # Webhook delivery (counted by the gateway that did it; GetStats has the totals).
        self.webhook_delivered = Counter(
            "notigate_webhook_delivered",
            "Events the webhook receiver acknowledged.",
            ["bot"],
            registry=r,
        )
        self.webhook_undeliverable = Counter(
            "notigate_webhook_undeliverable",
            "Events given up: not acknowledged within NOTIGATE_WEBHOOK_MAX_AGE, or trimmed"
            " from the event stream before they were read.",
            ["bot"],
            registry=r,
        )
        self.webhook_failures = Counter(
            "notigate_webhook_failures",
            "Webhook POSTs that failed (a status other than 2xx, a timeout, no connection).",
            ["bot"],
            registry=r,
        )
        self.webhook_pending = Gauge(
            "notigate_webhook_pending",
            "Events waiting for the webhook receiver's acknowledgement (all replicas').",
            ["bot"],
            registry=r,
        )
        # Refreshed by the throughput sampler, once per interval (notigate.sampler).
        self.alert_firing = Gauge(
            "notigate_alert_firing",
            "1 while the alert fires for the bot (GetStats.alerts says why), 0 while not.",
            ["bot", "alert"],
            registry=r,
        )
        self.dispatchers = Gauge(
            "notigate_dispatchers",
            "Gateways whose dispatcher for the bot reported in within the last 30 s.",
            ["bot"],
            registry=r,
        )
        self._queue = _QueueCollector()
        r.register(self._queue)
        self._health = _HealthCollector()
        r.register(self._health)

    def watch_health(self, source: Callable[[], HealthState]) -> None:
        """Serve ``source()``'s readings as the health gauges at every scrape."""
        self._health.source = source

    def for_bot(self, bot: str) -> BotMetrics:
        """The metrics one bot's work counts in."""
        return BotMetrics(self, bot)

    def set_queue_stats(self, stats: dict[str, QueueStats]) -> None:
        """Replace the queue snapshot served at scrape time, by bot (a bot left out: its
        queue could not be read, and is not served)."""
        self._queue.snapshot = stats

    def set_alerts(self, bot: str, firing: Iterable[AlertKind], dispatchers: int) -> None:
        """Set the bot's alert gauges: 1 for each kind in ``firing``, 0 for the others."""
        on = set(firing)
        for kind in AlertKind:
            self.alert_firing.labels(bot=bot, alert=kind.label).set(int(kind in on))
        self.dispatchers.labels(bot=bot).set(dispatchers)

    def forget_alerts(self, bot: str) -> None:
        """Drop the bot's alert gauges (its status could not be read)."""
        for kind in AlertKind:
            with contextlib.suppress(KeyError):
                self.alert_firing.remove(bot, kind.label)
        with contextlib.suppress(KeyError):
            self.dispatchers.remove(bot)

    def redis_error(self, kind: RedisErrorKind) -> None:
        """Count one Redis error of ``kind``."""
        self.redis_errors.labels(kind=kind.value).inc()

    async def refresh_queue(self, queues: Sequence[Queue], interval_s: float = 1.0) -> None:
        """Read each bot's queue stats every ``interval_s`` (with many bots, every
        ``len(queues) / QUEUES_PER_S`` s: the gauges of a thousand bots may be 10 s old)
        until cancelled."""
        spell = Spell("reading queue metrics", logger=log, count=self.redis_error)
        period = max(interval_s, len(queues) / QUEUES_PER_S)
        gate = asyncio.Semaphore(16)

        async def read(queue: Queue) -> QueueStats | None:
            async with gate:
                try:
                    return await queue.stats()
                except StoreError as exc:
                    spell.failed(exc)
                    return None

        while True:
            read_at = asyncio.get_running_loop().time()
            stats = await asyncio.gather(*(read(q) for q in queues))
            # Stale depths would look healthy; better no gauge than a wrong one.
            self.set_queue_stats({q.bot: s for q, s in zip(queues, stats, strict=True) if s})
            if all(s is not None for s in stats):
                spell.succeeded()
            spent = asyncio.get_running_loop().time() - read_at
            await asyncio.sleep(max(0.0, period - spent))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


# How many queues' stats the metrics refresher reads per second at most.
QUEUES_PER_S = 100


class BotMetrics:
    """One bot's share of :class:`Metrics`: the bot-labelled metrics, by the same names,
    with the bot's label applied (and the gateway's others passed through)."""

    def __init__(self, metrics: Metrics, bot: str) -> None:
        self.gateway = metrics
        self.bot = bot
        self.jobs_enqueued = metrics.jobs_enqueued.labels(bot=bot)
        self.jobs_delivered = metrics.jobs_delivered.labels(bot=bot)
        self.jobs_failed = metrics.jobs_failed.labels(bot=bot)
        self.jobs_suppressed = metrics.jobs_suppressed.labels(bot=bot)
        self.jobs_retried = metrics.jobs_retried.labels(bot=bot)
        self.telegram_rate_limited = metrics.telegram_rate_limited.labels(bot=bot)
        self.telegram_duration = metrics.telegram_duration.labels(bot=bot)
        self.delivery_duration = metrics.delivery_duration.labels(bot=bot)
        self.late_completions = metrics.late_completions.labels(bot=bot)
        self.webhook_delivered = metrics.webhook_delivered.labels(bot=bot)
        self.webhook_undeliverable = metrics.webhook_undeliverable.labels(bot=bot)
        self.webhook_failures = metrics.webhook_failures.labels(bot=bot)
        self.webhook_pending = metrics.webhook_pending.labels(bot=bot)
        self.task_restarts = metrics.task_restarts
        self.redis_error = metrics.redis_error
        for reason in ("no_job", "other_job"):
            metrics.outcomes_orphaned.labels(bot=bot, reason=reason)

    def orphaned(self, reason: str) -> None:
        """Count a delivery that could not be recorded (``no_job``, ``other_job``)."""
        self.gateway.outcomes_orphaned.labels(bot=self.bot, reason=reason).inc()

    def observe_telegram(self, outcome: str, duration_s: float) -> None:
        """Record one sendMessage call (``outcome``: delivered, rate_limited, ...)."""
        self.gateway.telegram_requests.labels(bot=self.bot, outcome=outcome).inc()
        self.telegram_duration.observe(duration_s)
        if outcome == "rate_limited":
            self.telegram_rate_limited.inc()


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
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = runner = await serve(app, listen)
        self.port = int(runner.addresses[0][1])
        log.info("metrics on http://%s:%d/metrics", listen.rpartition(":")[0], self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


_Labels = tuple[str, str, str]

UNKNOWN_METHOD: _Labels = ("unknown", "unknown", "unknown")
"""``grpc_type``/``grpc_service``/``grpc_method`` of a call to a method the gateway does not
serve: its path is the caller's choice and would make unbounded series."""


def _grpc_type(method: MethodDescriptor) -> str:
    if method.client_streaming:
        return "bidi_stream" if method.server_streaming else "client_stream"
    return "server_stream" if method.server_streaming else "unary"


_API = pb.DESCRIPTOR.services_by_name["NotificationService"]


def _served_services() -> list[ServiceDescriptor]:
    return [
        _API,
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    ]


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,unused-ignore]
    """Counts and times every call by type, service, method and status code.

    Put it first in the interceptor list so that calls rejected by later interceptors
    (auth) are counted. A call to a method outside ``services`` (default: the ones the
    gateway serves) is counted under :data:`UNKNOWN_METHOD`, whatever it was answered
    (UNIMPLEMENTED, or UNAUTHENTICATED before the lookup). Streams are counted when they end.
    """

    def __init__(
        self, metrics: Metrics, services: Iterable[ServiceDescriptor] | None = None
    ) -> None:
        self.metrics = metrics
        self._labels: dict[str, _Labels] = {}
        for service in _served_services() if services is None else services:
            for method in service.methods:
                labels = (_grpc_type(method), service.full_name, method.name)
                self._labels[f"/{service.full_name}/{method.name}"] = labels
                # As go-grpc-prometheus does: the gateway's unary series exist from the
                # start at 0, so rate() and absent() work before the first call.
                if service.full_name == _API.full_name:
                    metrics.grpc_started.labels(*labels)
                    metrics.grpc_handled.labels(*labels, "OK")
                    metrics.grpc_handling.labels(*labels)

    def _record(self, labels: _Labels, code: Any, started: float) -> None:
        name = GRPC_CODE_NAMES.get(code, str(code))
        self.metrics.grpc_handled.labels(*labels, name).inc()
        self.metrics.grpc_handling.labels(*labels).observe(time.perf_counter() - started)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        labels = self._labels.get(handler_call_details.method or "", UNKNOWN_METHOD)
        handler = await continuation(handler_call_details)
        if handler is None:  # grpc answers UNIMPLEMENTED itself
            self.metrics.grpc_started.labels(*labels).inc()
            self._record(labels, grpc.StatusCode.UNIMPLEMENTED, time.perf_counter())
            return None
        return rewrap(handler, lambda behavior, _streaming: self._observed(behavior, labels))

    def _observed(self, behavior: Behavior, labels: _Labels) -> Behavior:
        """``behavior`` counted and timed, in its own shape (coroutine or async generator)."""
        metrics = self.metrics
        record = self._record

        def outcome(context: grpc.aio.ServicerContext, exc: BaseException | None) -> Any:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                return grpc.StatusCode.CANCELLED
            # abort() raises after setting the code; any other exception is UNKNOWN.
            fallback = grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
            return context.code() or fallback

        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                metrics.grpc_started.labels(*labels).inc()
                failure: BaseException | None = None
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    record(labels, outcome(context, failure), started)

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            metrics.grpc_started.labels(*labels).inc()
            failure: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                record(labels, outcome(context, failure), started)

        return call
