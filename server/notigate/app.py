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
from contextlib import AsyncExitStack
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from notigate import connection_limits, registration, security, wakeups
from notigate.config import ConfigError, Settings
from notigate.decoding import GuardedRegistrar
from notigate.dispatcher import Dispatcher
from notigate.embedded import EmbeddedValkey
from notigate.errors import QueueUnavailable, StartupRefused
from notigate.events.stream import EventTail
from notigate.exclusive import DataDirLock, check_listen_free
from notigate.health import HealthMonitor
from notigate.metrics import Metrics, MetricsInterceptor, MetricsServer
from notigate.queue import Queue, redis_client
from notigate.sender import TelegramSender
from notigate.service import NotificationService
from notigate.simulator.config import SANDBOX_TOKEN
from notigate.store_watch import StoreWatch
from notigate.supervisor import Supervisor
from notigate.upload_files import UploadFiles, bot_id
from notigate.uploads import UploadLimits, UploadStore
from notigate.webhooks import WebhookWorker
from notigate_client import pb

log = logging.getLogger(__name__)

# How long stopped background tasks (health, wakeups, metrics) get to end at shutdown.
_TASK_STOP_S = 5.0
# How often expired uploads are trimmed when nothing else trims them.
_UPLOAD_SWEEP_S = 60.0


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
        self.dispatcher: Dispatcher | None = None
        self.queue: Queue | None = None
        # Posts the event stream to settings.webhook_url (None: no webhook).
        self.webhooks: WebhookWorker | None = None
        self.metrics = Metrics()
        # Bound port of the /metrics endpoint (0: metrics_listen not set).
        self.metrics_port = 0
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
        token = s.bot_token
        # Refused before anything starts: a second gateway on the port would take a share
        # of the connections, one on the data dir a second Valkey on the same files.
        check_listen_free(s.listen)
        if s.sandbox:
            # Next: a taken port is the likeliest startup failure and costs nothing to find.
            token = await self._start_sandbox(token or SANDBOX_TOKEN)
        if not self.redis_url and not s.redis_sentinels:
            # Only the embedded store is local: replicas on one REDIS_URL share no files.
            lock = DataDirLock(s.data_dir)
            lock.acquire()
            self._stack.callback(lock.release)
            valkey = EmbeddedValkey(s.data_dir / "valkey", appendfsync=s.embedded_fsync)
            await valkey.start()
            self._stack.push_async_callback(valkey.stop)
            self.redis_url = valkey.url
        if not token:
            raise RuntimeError("no bot token")

        redis = redis_client(self.redis_url or None, s)
        self._stack.push_async_callback(redis.aclose)
        pubsub_redis = redis_client(self.redis_url or None, s, for_pubsub=True)
        self._stack.push_async_callback(pubsub_redis.aclose)
        self.queue = queue = Queue(redis, s)
        uploads = UploadStore(
            redis,
            queue.keys.prefix,
            UploadLimits(
                max_file_bytes=s.upload_max_bytes,
                budget_bytes=max(s.upload_budget_bytes, s.upload_max_bytes),
                ttl_s=s.upload_ttl_s,
            ),
        )
        try:
            await queue.load()
            await uploads.load()
        except QueueUnavailable as exc:
            log.warning("Redis cannot serve yet (%s); NOT_SERVING until it can", exc)

        sender = TelegramSender(
            token,
            self.api_url,
            pool_size=s.concurrency,
            connect_timeout_s=s.send_connect_timeout_s,
            read_timeout_s=s.send_read_timeout_s,
            paid_broadcast=s.paid_broadcast,
        )
        await sender.start()
        self._stack.push_async_callback(sender.close)

        health_servicer = health_aio.HealthServicer()
        files = UploadFiles(uploads, bot_id(token), claim_ms=s.lease_ms, ttl_s=s.upload_ttl_s)
        self.dispatcher = dispatcher = Dispatcher(
            queue, sender, s, metrics=self.metrics, files=files
        )
        self.health = health = HealthMonitor(
            health_servicer,
            redis,
            sender,
            interval_s=s.health_interval_s,
            on_token=lambda ok: dispatcher.resume() if ok else dispatcher.pause(),
            probe_key=queue.keys.health_probe,
            dispatcher_live=dispatcher.live,
            on_redis_error=self.metrics.redis_error,
        )
        dispatcher.on_token_rejected = health.token_rejected
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

        # Interceptors run in list order, the first outermost: one that observes calls
        # (metrics) belongs before auth, so it sees rejected calls too.
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if s.metrics_listen:  # per-call work nobody would scrape otherwise
            interceptors.append(MetricsInterceptor(self.metrics))
        auth = security.auth_interceptor(s)
        if auth is not None:
            interceptors.append(auth)
        connection_limits.ensure_descriptors(s)
        server = grpc.aio.server(
            interceptors=interceptors, options=connection_limits.server_options(s)
        )
        # WatchEvents' readers wait on one blocking read of the stream, on the client
        # whose reads may block.
        event_tail = EventTail(pubsub_redis, queue.keys.events)
        self._stack.push_async_callback(event_tail.stop)
        if s.webhook_url:
            self.webhooks = WebhookWorker(
                redis, queue.keys, s, tail=event_tail, metrics=self.metrics
            )
            self._stack.push_async_callback(self.webhooks.poster.close)
            # Before the server serves: every event of the jobs it accepts is posted.
            with contextlib.suppress(QueueUnavailable):  # then the intake loop joins
                await self.webhooks.prepare()
        service = NotificationService(
            queue,
            s,
            warnings=lambda: health.warnings,
            metrics=self.metrics,
            uploads=uploads,
            event_tail=event_tail,
            webhooks=self.webhooks,
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
        if plaintext := security.plaintext_token_warning(s):
            log.warning("%s", plaintext)
        await server.start()
        self._server = server

        if not health.token_ok:
            dispatcher.pause()
        tasks = self._tasks
        dispatcher.start(tasks)
        tasks.start("notigate-health", health.run)
        tasks.start(
            "notigate-wakeups",
            lambda: wakeups.listen(
                pubsub_redis,
                queue.keys.wake_channel,
                dispatcher.wake,
                origin=queue.origin,
                on_redis_error=self.metrics.redis_error,
            ),
        )
        if self.webhooks is not None:
            self.webhooks.start(tasks)
        tasks.start("notigate-upload-sweep", lambda: uploads.sweep_forever(_UPLOAD_SWEEP_S))
        watch = StoreWatch(queue, self.metrics)
        tasks.start("notigate-store-watch", lambda: watch.run(s.health_interval_s))
        if s.metrics_listen:
            tasks.start("notigate-metrics", lambda: self.metrics.refresh_queue(queue))
        host = s.listen.rpartition(":")[0]
        log.info(
            "notigate listening on %s:%d (%s%s)",
            host,
            self.port,
            "mutual TLS" if s.tls_client_ca_file else "TLS" if credentials else "plaintext",
            ", bearer tokens required" if auth is not None else "",
        )

    async def _start_sandbox(self, token: str) -> str:
        """Serve the Bot API simulator on ``sandbox_listen`` and deliver to it."""
        from notigate.sandbox_cli import command_hint, url_for
        from notigate.simulator import BotApiSimulator, SimulatorConfig

        listen = self.settings.sandbox_listen
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        sim = BotApiSimulator(tokens=[token], config=SimulatorConfig())
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
        return token

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
        drains = []
        if self.dispatcher is not None:
            drains.append(self.dispatcher.stop(grace))
        if self._server is not None:
            drains.append(self._server.stop(grace))
        if self.webhooks is not None:
            drains.append(self.webhooks.stop(grace))
        await asyncio.gather(*drains)
        # Bounded: a task whose cancellation a library swallowed must not hold the
        # process up forever (the stack below still closes what it would use).
        await self._tasks.stop(timeout_s=_TASK_STOP_S)
        await self._stack.aclose()
        log.info("notigate stopped")

    async def wait_stopped(self) -> None:
        """Block until :meth:`stop` has been called (e.g. by a signal handler)."""
        await self._stop_requested.wait()
