"""The webhook's two loops on one gateway: intake (stream -> outbox) and delivery
(outbox -> POSTs), both on the state in Redis, so replicas share the work and a
gateway that dies loses nothing.

Intake wakes on the gateway's :class:`~notigate.events.stream.EventTail` (or once a
second) and calls the intake script until a call reads less than a batch. Delivery
leases due jobs' first pending events, keeps up to ``webhook_concurrency`` POSTs in
flight, and records each answer (ack or retry) in one script. Both loops log a run of
Redis errors once (:class:`~notigate.supervisor.Spell`), back off and go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from redis.asyncio import Redis

from notigate.backoff import exponential_backoff
from notigate.config import DEFAULT_BOT, Settings
from notigate.errors import StoreError
from notigate.events.entries import event_of_entry
from notigate.events.stream import BEGINNING, EventTail
from notigate.metrics import Metrics
from notigate.queue.keys import QueueKeys
from notigate.supervisor import Spell, Supervisor, bot_loop_name
from notigate.webhooks.delivery import Outcome, WebhookPoster
from notigate.webhooks.keys import WebhookKeys
from notigate.webhooks.policy import WebhookPolicy
from notigate.webhooks.scripts import Leased, WebhookCode, WebhookScripts
from notigate.webhooks.stats import WebhookStats, read_stats

log = logging.getLogger("notigate.webhooks")

__all__ = ["BACKOFF_S", "WebhookWorker"]

# Retry waits after failed POSTs: doubled per failure from the first, up to the second
# (seconds), each drawn between half and all of that (jitter: a receiver back from an
# outage is not hit by every event at once).
BACKOFF_S = (1.0, 600.0)
# Entries read per intake call.
INTAKE_BATCH = 500
# The longest either loop sleeps without looking again (another replica's intake, a
# missed tail wake-up, a retry coming due).
IDLE_S = 1.0
# How long an answer's recording is retried through Redis errors: past the lease the
# event is sent again anyway.
_RECORD_ATTEMPTS = 5


class WebhookWorker:
    """Delivers one queue's events to ``settings.webhook_url``."""

    def __init__(
        self,
        redis: Redis,
        queue_keys: QueueKeys,
        settings: Settings,
        *,
        tail: EventTail,
        metrics: Metrics | None = None,
        bot: str = DEFAULT_BOT,
        poster: WebhookPoster | None = None,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        if not settings.webhook_url or not settings.webhook_secret:
            raise ValueError("a webhook needs webhook_url and webhook_secret")
        self.redis = redis
        self.keys = WebhookKeys.of(queue_keys)
        self.policy = WebhookPolicy.from_settings(settings)
        self.scripts = WebhookScripts.register(redis, self.keys, self.policy)
        self.tail = tail
        self.metrics = (metrics or Metrics()).for_bot(bot)
        self.poster = poster or WebhookPoster(
            settings.webhook_url,
            settings.webhook_secret,
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
        )
        self.concurrency = settings.webhook_concurrency
        self.backoff_s = backoff_s
        self._woken = asyncio.Event()
        self._stopping = False
        self._joined = False
        self._inflight: dict[asyncio.Task[None], str] = {}

    # -- lifecycle ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Send the scripts to Redis (a syntax error shows at startup) and join the event
        stream: events from then on are posted. The intake loop joins when this could not
        (Redis unavailable at startup)."""
        await self.scripts.load()
        await self._join()

    async def _join(self) -> None:
        if await self.scripts.join() is WebhookCode.JOINED:
            log.info("webhook: posting events from now on to %s", self.poster.url)
        self._joined = True

    def start(self, tasks: Supervisor) -> None:
        bot = self.metrics.bot
        tasks.start(bot_loop_name("notigate-webhook-intake", bot), self.intake_forever)
        tasks.start(bot_loop_name("notigate-webhook-delivery", bot), self.deliver_forever)

    async def stop(self, grace_s: float) -> None:
        """Lease nothing more; POSTs in flight get ``grace_s`` to be answered, the others
        are cancelled and their jobs made due now (another replica, or the next start,
        sends them again)."""
        self._stopping = True
        self._woken.set()
        tasks = list(self._inflight)
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        cut = {task: job for task, job in self._inflight.items() if not task.done()}
        for task in cut:
            task.cancel()
        if cut:
            await asyncio.gather(*cut, return_exceptions=True)
            with contextlib.suppress(StoreError):
                await self.scripts.release(job_ids=list(cut.values()))
        await self.poster.close()

    async def stats(self) -> WebhookStats:
        """Pending, delivered and undeliverable events (GetStats)."""
        return await read_stats(self.redis, self.keys)

    # -- intake ---------------------------------------------------------------------

    async def intake_forever(self) -> None:
        spell = Spell("reading events for the webhook", logger=log, count=self.metrics.redis_error)
        position = BEGINNING
        while True:
            try:
                if not self._joined:
                    await self._join()
                position = await self.intake_all() or position
                spell.succeeded()
            except StoreError as exc:
                spell.failed(exc)
                await asyncio.sleep(spell.delay_s(0.1, 5.0))
                continue
            await self.tail.wait_after(position, IDLE_S)

    async def intake_all(self) -> str:
        """Intake until the stream is read to its end; the stream's newest cursor."""
        while True:
            took = await self.scripts.intake(count=INTAKE_BATCH)
            if took.trimmed:
                self.metrics.webhook_undeliverable.inc(took.trimmed)
                log.error(
                    "webhook: %d events after %s%s were trimmed from the event stream before "
                    "they were read: undeliverable (raise NOTIGATE_EVENTS_MAX or "
                    "NOTIGATE_EVENTS_MAX_AGE if the webhook falls behind)",
                    took.trimmed,
                    took.after,
                    f" and before {took.before}" if took.before else "",
                )
            self.metrics.webhook_pending.set(took.pending)
            if took.stored:
                self._woken.set()
            if took.read < INTAKE_BATCH:
                return took.last

    # -- delivery -------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        spell = Spell("leasing webhook events", logger=log, count=self.metrics.redis_error)
        try:
            while not self._stopping:
                self._woken.clear()
                wait_s = IDLE_S
                free = self.concurrency - len(self._inflight)
                if free > 0:
                    try:
                        lease = await self.scripts.lease(count=free)
                        spell.succeeded()
                    except StoreError as exc:
                        spell.failed(exc)
                        await asyncio.sleep(spell.delay_s(0.1, 5.0))
                        continue
                    if self._stopping:  # stop() came during the lease: give it back
                        if lease.items:
                            with contextlib.suppress(StoreError):
                                jobs = [item.job_id for item in lease.items]
                                await self.scripts.release(job_ids=jobs)
                        break
                    for item in lease.items:
                        self._spawn(item)
                    if len(lease.items) == free:
                        continue  # more may be due: lease again once a slot frees
                    if lease.wait_ms is not None:
                        wait_s = min(IDLE_S, lease.wait_ms / 1000)
                if wait_s > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait_s):
                            await self._woken.wait()
        finally:
            if not self._stopping:  # cancelled: their leases run out and they go again
                for task in list(self._inflight):
                    task.cancel()

    def _spawn(self, item: Leased) -> None:
        task = asyncio.create_task(self._deliver(item), name=f"notigate-webhook-{item.cursor}")
        self._inflight[task] = item.job_id
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._woken.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook: delivery task failed", exc_info=task.exception())

    async def _deliver(self, item: Leased) -> None:
        event = event_of_entry(item.cursor, item.fields)
        outcome = await self.poster.post(event)
        if outcome.acknowledged:
            self.metrics.webhook_delivered.inc()
        else:
            self.metrics.webhook_failures.inc()
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                await self._record(item, outcome)
                return
            except StoreError as exc:
                self.metrics.redis_error(exc.kind)
                if attempt == _RECORD_ATTEMPTS:
                    log.warning(
                        "webhook: could not record the answer to event %s (%s); it is sent "
                        "again when its lease ends",
                        item.cursor,
                        exc,
                    )
                    return
                await asyncio.sleep(exponential_backoff(attempt, 0.2, 2.0))

    async def _record(self, item: Leased, outcome: Outcome) -> None:
        if outcome.acknowledged:
            await self.scripts.ack(job_id=item.job_id, cursor=item.cursor)
            return
        delay_s = self.retry_delay_s(item.tries + 1)
        retried = await self.scripts.retry(
            job_id=item.job_id,
            cursor=item.cursor,
            delay_ms=round(delay_s * 1000),
            error=outcome.detail,
        )
        if retried.code is WebhookCode.GAVE_UP:
            self.metrics.webhook_undeliverable.inc()
            log.error(
                "webhook: event %s of job %s is undeliverable: not acknowledged within "
                "%d s (%d attempts, the last: %s)",
                item.cursor,
                item.job_id,
                self.policy.max_age_ms // 1000,
                retried.tries,
                outcome.detail,
            )
        elif retried.code is WebhookCode.RETRY:
            level = logging.WARNING if retried.tries == 1 else logging.DEBUG
            log.log(
                level,
                "webhook: POST of event %s (job %s) failed: %s; attempt %d in %.1f s",
                item.cursor,
                item.job_id,
                outcome.detail,
                retried.tries + 1,
                delay_s,
            )

    def retry_delay_s(self, failures: int) -> float:
        """The wait after an event's ``failures``-th failed POST, jittered."""
        full = exponential_backoff(failures, *self.backoff_s)
        return full / 2 + random.uniform(0, full / 2)
