"""The gateway's lifecycle: Redis (own or embedded), Bot API, gRPC server, workers.

Startup is an async context manager that cleans up whatever it started when a
later step fails. Every background loop runs under one :class:`Supervisor` (restarted
when it fails). Shutdown: health NOT_SERVING -> stop leasing -> in-flight
sends finish (or go back to the queue) while the gRPC server drains -> the other
loops cancelled -> Redis closed -> embedded services stopped.

Before starting anything, startup refuses a listen address or an embedded data
dir that another process holds (see :mod:`notigate.exclusive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from redis.asyncio import Redis

from notigate import connection_limits, registration, security, wakeups
from notigate.bots import Bot, Bots
from notigate.config import BotSettings, ConfigError, Settings
from notigate.dashboard.api import Backend
from notigate.dashboard.secret import shared_key
from notigate.dashboard.server import DashboardServer
from notigate.decoding import GuardedRegistrar
from notigate.dispatcher import Dispatcher
from notigate.embedded import EmbeddedValkey
from notigate.errors import QueueUnavailable, StartupRefused
from notigate.events.stream import EventStream, EventTail
from notigate.exclusive import DataDirLock, check_listen_free
from notigate.health import BotHealth, HealthMonitor
from notigate.metrics import Metrics, MetricsInterceptor, MetricsServer
from notigate.queue import Queue, redis_client
from notigate.queue.keys import QueueKeys
from notigate.sampler import sample_forever
from notigate.sender import TelegramSender
from notigate.service import NotificationService
from notigate.simulator.config import SANDBOX_TOKEN
from notigate.store_watch import StoreWatch
from notigate.supervisor import Supervisor, bot_loop_name
from notigate.upload_files import UploadFiles, bot_id
from notigate.uploads import UploadLimits, UploadStore
from notigate.uploads.store import sweep_forever as sweep_uploads_forever
from notigate.webhooks import WebhookWorker
from notigate_client import pb, pb_grpc

log = logging.getLogger(__name__)

# How long stopped background tasks (health, wakeups, metrics) get to end at shutdown.
_TASK_STOP_S = 5.0
# How often expired uploads are trimmed when nothing else trims them.
_UPLOAD_SWEEP_S = 60.0


# How many bots' stores the store watches look at per second at most.
STORE_WATCHES_PER_S = 20
# How often a bot's store watch looks by itself when another bot's watches the same store.
_UNWATCHED_S = 3600.0


@dataclass(frozen=True, slots=True)
class _BotRuntime:
    """One bot's parts as the gateway runs them."""

    bot: Bot
    dispatcher: Dispatcher
    health: BotHealth


def _watching(
    queue: Queue, metrics: Metrics, interval_s: float, look_now: bool
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The loop that watches ``queue``'s store for lost data (a supervised task)."""
    watch = StoreWatch(queue, metrics)
    return lambda: watch.run(interval_s, look_now=look_now)


def _sampling(
    r: _BotRuntime, bots: int, metrics: Metrics | None
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The loop that samples ``r``'s bot's throughput and heartbeat (a supervised task)."""
    return lambda: sample_forever(r.bot, r.dispatcher.live, bots=bots, metrics=metrics)


def sandbox_tokens(tokens: Mapping[str, str | None]) -> dict[str, str]:
    """Each bot's token, made up where the bots file gives none (sandbox mode only): the
    simulator knows each bot by its token."""
    made = {}
    for i, (name, token) in enumerate(tokens.items()):
        made[name] = token or (SANDBOX_TOKEN if i == 0 else f"{100000 + i}:notigate-sandbox-{name}")
    return made


class Gateway:
    """A running notigate: ``async with Gateway(settings) as gw: ...``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.redis_url = settings.redis_url or ""
        self.api_url = settings.telegram_api_url
        # Root URL of the sandbox's Bot API simulator ("" outside sandbox mode).
        self.sandbox_url = ""
        self.health: HealthMonitor | None = None
        # The bots served, and their dispatchers (once started).
        self.bots: Mapping[str, Bot] = {}
        self.dispatchers: list[Dispatcher] = []
        # The default bot's (or the first bot's) dispatcher, queue and webhook worker.
        self.dispatcher: Dispatcher | None = None
        self.queue: Queue | None = None
        self.webhooks: WebhookWorker | None = None
        self.metrics = Metrics()
        # Bound port of the /metrics endpoint (0: metrics_listen not set).
        self.metrics_port = 0
        # Bound port of the dashboard (0: it is off).
        self.dashboard_port = 0
        self._stack = AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        # Owns every background loop: add one with self._tasks.start(name, coroutine_fn).
        self._tasks = Supervisor(
            on_restart=lambda name: self.metrics.task_restarts.labels(name).inc()
        )
        self._stop_requested = asyncio.Event()
        self._stop_task: asyncio.Future[None] | None = None

    @property
    def tasks(self) -> Supervisor:
        """The supervisor of the gateway's background loops."""
        return self._tasks

    async def __aenter__(self) -> Gateway:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _start(self) -> None:
        s = self.settings
        configured = s.bot_list()
        # Refused before anything starts: a second gateway on the port would take a share
        # of the connections, one on the data dir a second Valkey on the same files.
        check_listen_free(s.listen)
        if (dashboard := s.dashboard_address()) is not None:
            check_listen_free(dashboard)
        tokens: Mapping[str, str | None] = {b.name: b.token for b in configured}
        if s.sandbox:
            # Next: a taken port is the likeliest startup failure and costs nothing to find.
            made = sandbox_tokens(tokens)
            await self._start_sandbox(list(made.values()))
            tokens = made
        if not self.redis_url and not s.redis_sentinels:
            # Only the embedded store is local: replicas on one REDIS_URL share no files.
            lock = DataDirLock(s.data_dir)
            lock.acquire()
            self._stack.callback(lock.release)
            valkey = EmbeddedValkey(s.data_dir / "valkey", appendfsync=s.embedded_fsync)
            await valkey.start()
            self._stack.push_async_callback(valkey.stop)
            self.redis_url = valkey.url
        missing = [name for name, token in tokens.items() if not token]
        if missing:
            raise RuntimeError(f"no bot token for {', '.join(missing)}")

        redis = redis_client(self.redis_url or None, s)
        self._stack.push_async_callback(redis.aclose)
        pubsub_redis = redis_client(self.redis_url or None, s, for_pubsub=True)
        self._stack.push_async_callback(pubsub_redis.aclose)
        # One origin for every bot's queue: the gateway's one wake listener skips its own.
        origin = secrets.token_hex(8)
        runtimes = [
            await self._bot(bot, tokens[bot.name] or "", redis, pubsub_redis, origin)
            for bot in configured
        ]
        self.bots = bots = Bots([r.bot for r in runtimes])
        self.dispatchers = [r.dispatcher for r in runtimes]
        first = next(r for r in runtimes if r.bot is bots.default)
        self.queue, self.dispatcher = first.bot.queue, first.dispatcher
        self.webhooks = first.bot.webhooks
        try:
            # Every bot's queue runs the same scripts (a bot's own settings travel as
            # arguments), so loading one bot's loads them for all.
            await runtimes[0].bot.queue.load()
            await runtimes[0].bot.uploads.load()
        except QueueUnavailable as exc:
            log.warning("Redis cannot serve yet (%s); NOT_SERVING until it can", exc)

        health_servicer = health_aio.HealthServicer()
        self.health = health = HealthMonitor(
            health_servicer,
            redis,
            [r.health for r in runtimes],
            interval_s=s.health_interval_s,
            probe_key=first.bot.queue.keys.health_probe,
            on_redis_error=self.metrics.redis_error,
        )
        self.metrics.watch_health(health.state)
        await health.check_redis()
        await health.check_token()
        await health.publish()

        if s.metrics_listen:
            # Before the gRPC server: a port conflict must fail startup with nothing serving.
            metrics_server = MetricsServer(self.metrics)
            await metrics_server.start(s.metrics_listen)
            self._stack.push_async_callback(metrics_server.stop)
            self.metrics_port = metrics_server.port

        # The dashboard calls the gateway's own API, on a socket only this host's users
        # reach, with a token of its own (what each login may do is checked before a call).
        api_socket, internal_token = "", secrets.token_urlsafe(32)
        dashboard_listen = s.dashboard_address()
        if dashboard_listen is not None:
            api_socket = self._api_socket()
            await self._start_dashboard(dashboard_listen, api_socket, internal_token, redis, bots)

        # Interceptors run in list order, the first outermost: one that observes calls
        # (metrics) belongs before auth, so it sees rejected calls too.
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if s.metrics_listen:  # per-call work nobody would scrape otherwise
            interceptors.append(MetricsInterceptor(self.metrics))
        auth = security.auth_interceptor(
            s.replace(api_tokens=(*s.api_tokens, internal_token))
            if api_socket and s.has_tokens
            else s
        )
        if auth is not None:
            interceptors.append(auth)
        connection_limits.ensure_descriptors(s)
        server = grpc.aio.server(
            interceptors=interceptors, options=connection_limits.server_options(s)
        )
        for r in runtimes:
            webhooks = r.bot.webhooks
            if webhooks is not None:
                # Before the server serves: every event of the jobs it accepts is posted.
                with contextlib.suppress(QueueUnavailable):  # then the intake loop joins
                    await webhooks.prepare()
        service = NotificationService(
            bots,
            s,
            warnings=lambda bot: health.warnings_of(bot.name),
            metrics=self.metrics,
            access=security.BotAccess(s.token_bindings),
        )
        registration.register(service, server)
        # Through a registrar that guards their request decoding (notigate.decoding).
        guarded = GuardedRegistrar(server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, guarded)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                [
                    pb.DESCRIPTOR.services_by_name["NotificationService"].full_name,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ]
            ),
            guarded,
        )
        credentials = security.server_credentials(s)
        try:
            if credentials is None:
                self.port = server.add_insecure_port(s.listen)
            else:
                self.port = server.add_secure_port(s.listen, credentials)
        except RuntimeError:
            self.port = 0  # recent grpcio raises where older versions returned 0
        if self.port == 0:
            check_listen_free(s.listen)  # names the process in the way, if that is why
            raise StartupRefused(f"cannot listen on {s.listen}")
        if api_socket and server.add_insecure_port(f"unix:{api_socket}") == 0:
            raise StartupRefused(f"cannot listen on {api_socket} (the dashboard's API socket)")
        if plaintext := security.plaintext_token_warning(s):
            log.warning("%s", plaintext)
        await server.start()
        self._server = server

        tasks = self._tasks
        # One store holds every bot's queue, unless it is a cluster (a shard each): there,
        # the watches of many bots take turns (STORE_WATCHES_PER_S); on one store the first
        # bot's watch looks for a reset of them all, and the others look only when an
        # enqueue of theirs saw the store go back.
        watch_s = max(s.health_interval_s, len(runtimes) / STORE_WATCHES_PER_S)
        for r in runtimes:
            if not r.health.token_ok:
                r.dispatcher.pause()
            r.dispatcher.start(tasks)
            if r.bot.webhooks is not None:
                r.bot.webhooks.start(tasks)
            watched = s.redis_cluster or r is runtimes[0]
            tasks.start(
                bot_loop_name("notigate-store-watch", r.bot.name),
                _watching(
                    r.bot.queue,
                    self.metrics,
                    watch_s if watched else _UNWATCHED_S,
                    look_now=watched,
                ),
            )
            tasks.start(
                bot_loop_name("notigate-sampler", r.bot.name),
                _sampling(r, len(runtimes), self.metrics if s.metrics_listen else None),
            )
        tasks.start("notigate-health", health.run)
        wakes = {r.bot.queue.keys.wake_channel: r.dispatcher.wake for r in runtimes}
        tasks.start(
            "notigate-wakeups",
            lambda: wakeups.listen(
                pubsub_redis, wakes, origin=origin, on_redis_error=self.metrics.redis_error
            ),
        )
        uploads = [r.bot.uploads for r in runtimes]
        tasks.start(
            "notigate-upload-sweep", lambda: sweep_uploads_forever(uploads, _UPLOAD_SWEEP_S)
        )
        if s.metrics_listen:
            queues = [r.bot.queue for r in runtimes]
            tasks.start("notigate-metrics", lambda: self.metrics.refresh_queue(queues))
        host = s.listen.rpartition(":")[0]
        log.info(
            "notigate listening on %s:%d (%s%s) for %s",
            host,
            self.port,
            "mutual TLS" if s.tls_client_ca_file else "TLS" if credentials else "plaintext",
            ", bearer tokens required" if auth is not None else "",
            f"bot {configured[0].name}" if len(configured) == 1 else f"{len(configured)} bots",
        )

    def _api_socket(self) -> str:
        """A Unix socket path for the dashboard's calls, in a directory only we may enter."""
        directory = tempfile.mkdtemp(prefix="notigate-")
        self._stack.callback(shutil.rmtree, directory, ignore_errors=True)
        return os.path.join(directory, "api.sock")

    async def _start_dashboard(
        self, listen: str, api_socket: str, internal_token: str, redis: Redis, bots: Bots
    ) -> None:
        """Serve the dashboard on ``listen``, calling the API on ``api_socket``."""
        s = self.settings
        channel = grpc.aio.insecure_channel(f"unix:{api_socket}")
        self._stack.push_async_callback(channel.close)
        http = aiohttp.ClientSession()
        self._stack.push_async_callback(http.close)
        backend = Backend(
            stub=pb_grpc.NotificationServiceStub(channel),
            metadata=(("authorization", f"Bearer {internal_token}"),),
            bots=tuple(bots),
            default_bot=bots.default.name,
            sandbox_url=self.sandbox_url,
            http=http,
        )
        key_name = QueueKeys.for_queue(s.queue_name).prefix + "dashboard-key"
        dashboard = DashboardServer(s, backend, lambda: shared_key(redis, key_name))
        try:
            await dashboard.start(listen)
        except OSError as exc:
            raise StartupRefused(
                f"the dashboard cannot listen on {listen}: {exc.strerror or exc}; choose "
                "another address with NOTIGATE_DASHBOARD_LISTEN or --dashboard-listen "
                "(off turns it off)"
            ) from exc
        self._stack.push_async_callback(dashboard.stop)
        self.dashboard_port = dashboard.port

    async def _bot(
        self, bot: BotSettings, token: str, redis: Redis, pubsub_redis: Redis, origin: str
    ) -> _BotRuntime:
        """One bot's queue, uploads, sender, dispatcher, events and health."""
        s = self.settings.for_bot(bot)
        queue = Queue(redis, s, bot.name, origin=origin)
        uploads = UploadStore(
            redis,
            queue.keys.prefix,
            UploadLimits(
                max_file_bytes=s.upload_max_bytes,
                budget_bytes=max(s.upload_budget_bytes, s.upload_max_bytes),
                ttl_s=s.upload_ttl_s,
            ),
        )
        sender = TelegramSender(
            token,
            self.api_url if self.sandbox_url else s.telegram_api_url,
            pool_size=s.concurrency,
            connect_timeout_s=s.send_connect_timeout_s,
            read_timeout_s=s.send_read_timeout_s,
            paid_broadcast=s.paid_broadcast,
        )
        await sender.start()
        self._stack.push_async_callback(sender.close)
        files = UploadFiles(uploads, bot_id(token), claim_ms=s.lease_ms, ttl_s=s.upload_ttl_s)
        # Its first look waits for the wake listener's, which wakes every bot once subscribed.
        dispatcher = Dispatcher(
            queue, sender, s, metrics=self.metrics, files=files, look_at_start=False
        )
        health = BotHealth(
            bot.name,
            sender,
            on_token=lambda ok: dispatcher.resume() if ok else dispatcher.pause(),
            dispatcher_live=dispatcher.live,
            # With one bot the gateway's own probe speaks for the bot's store.
            store_error=(lambda: dispatcher.store_error)
            if len(self.settings.bot_list()) > 1
            else (lambda: None),
        )
        dispatcher.on_token_rejected = health.token_rejected
        # WatchEvents' readers wait on one blocking read of the stream, on the client
        # whose reads may block (started by the first watcher that waits).
        event_tail = EventTail(pubsub_redis, queue.keys.events)
        self._stack.push_async_callback(event_tail.stop)
        webhooks = None
        if s.webhook_url:
            webhooks = WebhookWorker(
                redis, queue.keys, s, tail=event_tail, metrics=self.metrics, bot=bot.name
            )
            self._stack.push_async_callback(webhooks.poster.close)
        view = Bot(
            name=bot.name,
            settings=s,
            queue=queue,
            uploads=uploads,
            events=EventStream(redis, queue.keys.events),
            event_tail=event_tail,
            webhooks=webhooks,
            # GetStats reports the token as health last saw it.
            token_ok=lambda: health.token_ok,
        )
        return _BotRuntime(view, dispatcher, health)

    async def _start_sandbox(self, tokens: list[str]) -> None:
        """Serve the Bot API simulator on ``sandbox_listen``, for ``tokens``, and deliver
        to it."""
        from notigate.sandbox_cli import command_hint, url_for
        from notigate.simulator import BotApiSimulator, SimulatorConfig

        listen = self.settings.sandbox_listen
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        sim = BotApiSimulator(tokens=tokens, config=SimulatorConfig())
        try:
            await sim.start(host=host, port=int(port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "the port is in use (another sandbox gateway or `notigate simulator`?)"
            else:
                reason = str(exc)
            raise ConfigError(
                f"the sandbox's Bot API simulator cannot listen on {listen}: {reason}; "
                "choose another address with NOTIGATE_SANDBOX_LISTEN or --sandbox-listen "
                "(port 0 picks a free one)"
            ) from exc
        self._stack.push_async_callback(sim.stop)
        self.api_url = sim.base_url
        self.sandbox_url = url_for(host, sim.port)
        log.warning(
            "SANDBOX MODE: messages go to the built-in Bot API simulator at %s, not to "
            "Telegram; see what it received with `%s`, make a chat fail with `%s`",
            self.sandbox_url,
            command_hint("messages", self.sandbox_url),
            command_hint("fail-chat ID", self.sandbox_url),
        )

    async def stop(self) -> None:
        """Graceful shutdown; concurrent and repeated calls wait for the same one."""
        self._stop_requested.set()
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stop_task)

    async def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace_s
        # From here a loop that ends (health's, on shutting_down) is not started again.
        self._tasks.wind_down()
        if self.health is not None:
            await self.health.shutting_down()
        drains = [d.stop(grace) for d in self.dispatchers]
        if self._server is not None:
            drains.append(self._server.stop(grace))
        drains += [b.webhooks.stop(grace) for b in self.bots.values() if b.webhooks is not None]
        await asyncio.gather(*drains)
        # Bounded: a task whose cancellation a library swallowed must not hold the
        # process up forever (the stack below still closes what it would use).
        await self._tasks.stop(timeout_s=_TASK_STOP_S)
        await self._stack.aclose()
        log.info("notigate stopped")

    async def wait_stopped(self) -> None:
        """Block until :meth:`stop` has been called (e.g. by a signal handler)."""
        await self._stop_requested.wait()
