"""Delivery: lease due jobs from the queue and send them through the Bot API.

One dispatcher coroutine per bot leases as many jobs as there are free send
slots, then sleeps until the queue's next event (the script says when), a local
Send, or a wake message published by another replica. Each leased job is sent by
its own task; its outcome is one script call. A bot with nothing due costs nothing
but its timer: its dispatcher sleeps until it is woken (or, as a safety net, for
_NOTHING_DUE_WAIT_S), so a gateway's dispatch work grows with the bots that have work.

Both loops run under a :class:`~notigate.supervisor.Supervisor` and survive every Redis
error (logged once per spell, counted, retried with backoff); a job's task never raises.
The dispatcher's heartbeat (:meth:`Dispatcher.live`) tells health whether it still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from notigate import media
from notigate.backoff import exponential_backoff
from notigate.config import Settings
from notigate.errors import StoreError
from notigate.group_commit import GroupCommit
from notigate.metrics import Metrics
from notigate.outcomes import AlbumPartlySent, Postponed
from notigate.queue import CompletedSend, JobKind, JobState, Lease, Queue, Recorded, RetryOutcome
from notigate.sender import (
    Delivered,
    Migrated,
    Outcome,
    PermanentError,
    RateLimited,
    TelegramSender,
    TransientError,
    Unauthorized,
    Unreachable,
)
from notigate.supervisor import Spell, Supervisor, bot_loop_name
from notigate.telegram_media import Resolved
from notigate_client import pb

if TYPE_CHECKING:
    from notigate.upload_files import UploadFiles

log = logging.getLogger(__name__)

# Sleep at most this long without being woken: a safety net should a wake message be
# lost. (The wake listener wakes every dispatcher whenever it subscribes again, so a
# Redis reconnect loses none; with a thousand bots, a short net would cost a dequeue per
# bot every few seconds.)
_IDLE_WAIT_S = 30.0
# With nothing scheduled at all, a longer net still, jittered down to half of it: idle
# bots' safety dequeues never fall due together (a thousand of them at once would hold
# the event loop, and the sends of busy bots, for a fraction of a second), and a thousand
# idle bots cost about 11 dequeues a second.
_NOTHING_DUE_WAIT_S = 120.0
# The jitter's own generator: drawing on every idle wait, the dispatcher leaves the
# process's shared `random` state to the code that seeds or inspects it.
_JITTER = random.Random()
_REDIS_RETRY_S = (0.05, 1.0)
_MIN_BLOCKED_WAIT_MS = 5
# An outcome whose recording fails other than by a Redis error (a bug) is tried this often.
_RECORD_BUG_ATTEMPTS = 5
DISPATCH_TASK = "notigate-dispatch"
RENEW_TASK = "notigate-renew"
# How often an edit or delete looks again whether its original was delivered.
_CHANGE_WAIT_S = 1.0
# The `outcome` label of notigate_telegram_requests_total.
_OUTCOME_LABELS: dict[type, str] = {
    AlbumPartlySent: "album_partly_sent",
    Postponed: "postponed",
    Delivered: "delivered",
    RateLimited: "rate_limited",
    Migrated: "migrated",
    PermanentError: "permanent_error",
    TransientError: "transient_error",
    Unauthorized: "unauthorized",
    Unreachable: "unreachable",
}


def backoff_ms(settings: Settings, attempt: int) -> int:
    """Exponential backoff with jitter: base * 2^(attempt-1), scaled by 0.5..1."""
    raw = exponential_backoff(attempt, settings.backoff_base_ms, settings.backoff_max_ms)
    return int(raw * _JITTER.uniform(0.5, 1.0))


class Dispatcher:
    """Leases jobs and delivers them, at most ``settings.concurrency`` at a time."""

    def __init__(
        self,
        queue: Queue,
        sender: TelegramSender,
        settings: Settings,
        *,
        on_token_rejected: Callable[[str], None] = lambda _: None,
        metrics: Metrics | None = None,
        files: UploadFiles | None = None,
        look_at_start: bool = True,
    ) -> None:
        self.queue = queue
        # Uploaded files of media sends (None: the gateway stores no uploads).
        self.files = files
        # The queue wakes this gateway's workers when a change it made is due first.
        queue.on_wake = self.wake
        self.metrics = (metrics or Metrics()).for_bot(queue.bot)
        self.sender = sender
        self.settings = settings
        self.on_token_rejected = on_token_rejected
        # False: the first look at the queue waits for a wake (the gateway's wake listener
        # wakes every bot once it has subscribed), so a thousand bots starting do not each
        # look twice.
        self._look_at_start = look_at_start
        self._wake = asyncio.Event()
        self._quiet_until = 0.0
        self._enabled = asyncio.Event()
        self._enabled.set()
        self._stopping = False
        self._inflight: dict[str, tuple[Lease, asyncio.Task[None]]] = {}
        # Set when a job is leased (the lease renewer waits for it while none is in flight).
        self._leased = asyncio.Event()
        self._completions: GroupCommit[CompletedSend, Recorded] = GroupCommit(queue.complete_many)
        self._supervisor: Supervisor | None = None
        # Why the last dequeue failed (None: it succeeded). On a Redis Cluster the bot's
        # shard may be down while the gateway's probe, on another shard, goes through.
        self.store_error: StoreError | None = None
        # loop.time() of the dispatch loop's last turn (0: not started).
        self._heartbeat = 0.0
        # Longest a healthy turn takes past the end of its wait (a wait moves the heartbeat
        # to its own end): a dequeue that times out and is retried once (connect and read
        # timeouts each), and some slack for a busy event loop.
        self._stale_after_s = 4 * settings.redis_timeout_s + 5.0
        # Outcomes known but not recorded yet: at shutdown a sent message is not given back.
        self._outcomes: dict[str, tuple[Outcome, float]] = {}
        self._record_spell = Spell("recording outcomes", logger=log, count=self.metrics.redis_error)
        self._dispatch_task = bot_loop_name(DISPATCH_TASK, queue.bot)
        self._renew_task = bot_loop_name(RENEW_TASK, queue.bot)

    # -- control ---------------------------------------------------------------

    def wake(self) -> None:
        """Look at the queue now (a job may have become due).

        Ignored while the bot-wide limit is known to be closed: a new job could
        not be sent before the dispatcher's own timer fires anyway, and under
        load every Send would otherwise cost a useless dequeue.
        """
        if asyncio.get_running_loop().time() >= self._quiet_until:
            self._wake.set()

    def pause(self) -> None:
        """Stop leasing new jobs (e.g. the bot token was rejected)."""
        self._enabled.clear()

    def resume(self) -> None:
        """Lease again after :meth:`pause`."""
        self._enabled.set()
        self._wake.set()

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the dispatcher and the lease renewer under ``supervisor`` (default: one of
        their own)."""
        if supervisor is None:
            supervisor = Supervisor(
                on_restart=lambda name: self.metrics.task_restarts.labels(name).inc()
            )
        self._supervisor = supervisor
        self._beat()
        supervisor.start(self._dispatch_task, self._dispatch)
        supervisor.start(self._renew_task, self._renew_leases)

    def live(self) -> bool:
        """True while the dispatch loop runs and turned recently (its heartbeat is fresh)."""
        if self._supervisor is None or self._stopping:
            return False
        if not self._supervisor.running(self._dispatch_task):
            return False
        age = asyncio.get_running_loop().time() - self._heartbeat
        return age <= self._stale_after_s

    def _beat(self) -> None:
        self._heartbeat = asyncio.get_running_loop().time()

    async def stop(self, grace_s: float) -> None:
        """Stop leasing; let sends in flight finish for up to ``grace_s``.

        Sends still running after that are cancelled and their jobs given back
        to the queue (or, if Redis is gone, left to their leases' expiry).
        """
        self._stopping = True
        self._enabled.set()
        self._wake.set()
        if self._supervisor is not None:
            # Let a dequeue in progress return rather than cancel it: its script
            # runs anyway, and the jobs it leased would wait for their leases
            # to expire. What it returns is sent within the grace period.
            await self._supervisor.stop([self._dispatch_task], grace_s=grace_s)
        pending = [task for _, task in self._inflight.values()]
        if pending:
            log.info("waiting for %d sends in flight", len(pending))
            await asyncio.wait(pending, timeout=grace_s)
        if self._supervisor is not None:
            await self._supervisor.stop([self._renew_task])
        leftovers = list(self._inflight.values())
        outcomes = dict(self._outcomes)  # their tasks forget them when cancelled
        for _, task in leftovers:
            task.cancel()
        await asyncio.gather(*(t for _, t in leftovers), return_exceptions=True)
        given_back = 0
        for lease, _ in leftovers:
            known = outcomes.get(lease.job_id)
            with contextlib.suppress(StoreError):
                if known is None:
                    await self.queue.defer(lease)
                    given_back += 1
                else:
                    # Sent already: giving it back would send it again.
                    await self._apply(lease, *known)
        if given_back:
            log.warning("gave %d unfinished sends back to the queue", given_back)

    # -- loops -----------------------------------------------------------------

    async def _dispatch(self) -> None:
        spell = Spell("leasing jobs", logger=log, count=self.metrics.redis_error)
        if not self._look_at_start:
            self._look_at_start = True  # a restarted loop looks at once
            await self._wait(None)
        # The heartbeat beats where a turn shows progress (a dequeue answered or failed, a
        # wait ended), not at the top of the loop: a loop that fails every turn goes stale.
        while not self._stopping:
            if not self._enabled.is_set():
                # Paused (the token was rejected): still alive, so wait in turns.
                self._heartbeat = asyncio.get_running_loop().time() + _IDLE_WAIT_S
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_IDLE_WAIT_S):
                        await self._enabled.wait()
                self._beat()
                continue
            if self._stopping:
                return
            # Cleared before looking: a wake that comes meanwhile is not lost, and a
            # wake that came earlier cannot turn the waits below into a busy loop
            # (Event.wait on a set event returns without yielding to the loop).
            self._wake.clear()
            free = self.settings.concurrency - len(self._inflight)
            if free <= 0:
                await self._wait(None)  # a finished send sets the event
                continue
            try:
                leased = await self.queue.dequeue(free)
            except StoreError as exc:
                spell.failed(exc)
                self.store_error = exc
                self._beat()
                await asyncio.sleep(spell.delay_s(*_REDIS_RETRY_S))
                continue
            spell.succeeded()
            self.store_error = None
            self._beat()
            if leased.suppressed:
                # Failed by the script itself: their chats are suppressed.
                self.metrics.jobs_failed.inc(leased.suppressed)
                self.metrics.jobs_suppressed.inc(leased.suppressed)
            for lease in leased.leases:
                task = asyncio.create_task(self._deliver(lease))
                self._inflight[lease.job_id] = (lease, task)
                self._leased.set()
            self._quiet_until = (
                asyncio.get_running_loop().time() + leased.wait_ms / 1000
                if leased.blocked and leased.wait_ms
                else 0.0
            )
            if leased.blocked:
                # At high rates the next slot is a millisecond away: sleeping a
                # few ms lets several slots accrue (the spacing allows a short
                # burst) instead of running one dequeue per message.
                await self._wait(max(leased.wait_ms or 0, _MIN_BLOCKED_WAIT_MS))
                continue
            if leased.leases or leased.wait_ms == 0:
                # More may be due at once; yield so the sends get going first.
                await asyncio.sleep(0)
                continue
            await self._wait(leased.wait_ms)

    async def _wait(self, wait_ms: int | None) -> None:
        if wait_ms is None or wait_ms < 0:
            timeout = _NOTHING_DUE_WAIT_S * _JITTER.uniform(0.5, 1.0)
        else:
            timeout = min(wait_ms / 1000, _IDLE_WAIT_S)
        # A loop that waits is alive until its wait ends: the heartbeat is due then.
        self._heartbeat = asyncio.get_running_loop().time() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._beat()

    async def _renew_leases(self) -> None:
        period = self.settings.lease_ms / 3000
        spell = Spell("renewing leases", logger=log, count=self.metrics.redis_error)
        while True:
            if not self._inflight:
                # Nothing to renew: an idle bot's renewer sleeps until a job is leased.
                self._leased.clear()
                await self._leased.wait()
            await asyncio.sleep(period)
            leases = [lease for lease, _ in self._inflight.values()]
            try:
                await self.queue.extend(leases)
            except StoreError as exc:
                spell.failed(exc)
            else:
                spell.succeeded()

    # -- one job ---------------------------------------------------------------

    async def _deliver(self, lease: Lease) -> None:
        """Send one job and record the outcome; never raises (but is cancellable)."""
        started = time.monotonic()
        try:
            outcome = await self._attempt(lease)
            self._outcomes[lease.job_id] = (outcome, started)
            await self._record(lease, outcome, started)
        except Exception:
            # _attempt and _record handle everything they expect; this is a last resort,
            # the job's lease then expires and the job is tried again.
            log.exception("job %s: delivery task failed", lease.job_id)
        finally:
            self._outcomes.pop(lease.job_id, None)
            self._inflight.pop(lease.job_id, None)
            self._wake.set()

    async def _attempt(self, lease: Lease) -> Outcome:
        """Send the job; an unexpected failure is a transient error (the job is retried)."""
        try:
            request = pb.SendRequest.FromString(lease.payload)
        except DecodeError:
            # Stored by enqueue from a parsed request: only a damaged store gets here.
            log.error("job %s: its stored message cannot be decoded", lease.job_id)
            return PermanentError(description="the stored message cannot be decoded")
        try:
            if lease.kind is not JobKind.SEND:
                return await self._change(lease, request)
            if not request.HasField("media") and not request.HasField("media_group"):
                return await self._timed(self.sender.send(request, lease.chat_id))
            return await self._send_files(lease, request)
        except Exception as exc:
            log.exception("job %s: unexpected error while sending", lease.job_id)
            return TransientError(description=f"unexpected error while sending: {exc!r}"[:500])

    async def _send_files(self, lease: Lease, request: pb.SendRequest) -> Outcome:
        """A media message or album, its uploads resolved first (see :meth:`_with_files`)."""
        return await self._with_files(
            lease,
            request,
            lambda files: self._timed(
                self.sender.send(request, lease.chat_id, files, lease.sent_items)
            ),
        )

    async def _with_files(
        self,
        lease: Lease,
        request: pb.SendRequest,
        send: Callable[[Resolved], Awaitable[Outcome]],
    ) -> Outcome:
        """``send`` with the uploads ``request`` references resolved: each to a file_id
        Telegram gave the same content before, or to its bytes (one worker at a time hands
        new bytes to Telegram, the others wait for its file_id)."""
        uploads = media.upload_kinds(request)
        if not uploads:
            return await send({})
        if self.files is None:
            return PermanentError("uploads are not available on this gateway")
        return await self.files.send_with(lease, uploads, send)

    async def _change(self, lease: Lease, request: pb.SendRequest) -> Outcome:
        """An edit or delete: only once the original's delivery is recorded."""
        target = lease.target_state
        if target in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE):
            return Postponed(_CHANGE_WAIT_S, "its original is not delivered yet")
        ids = lease.target_message_ids
        if target in (JobState.FAILED, JobState.CANCELLED):
            return PermanentError(f"the original was not delivered (it is {target})")
        if not ids:
            return PermanentError("the original job is gone (trimmed by retention)")
        if not ids[0] and lease.kind is JobKind.EDIT:
            return PermanentError("Telegram did not report the original's message id")
        if lease.kind is JobKind.DELETE:
            return await self._timed(self.sender.delete(lease.chat_id, ids))
        message_id = ids[0]
        return await self._with_files(
            lease,
            request,
            lambda files: self._timed(
                self.sender.edit(request, lease.chat_id, lease.edit_method, message_id, files)
            ),
        )

    async def _timed(self, call: Awaitable[Outcome]) -> Outcome:
        started = time.perf_counter()
        outcome = await call
        self.metrics.observe_telegram(_OUTCOME_LABELS[type(outcome)], time.perf_counter() - started)
        return outcome

    async def _record(self, lease: Lease, outcome: Outcome, started: float) -> None:
        """Store the outcome; while Redis fails (whatever the error) keep trying, so a
        delivered message is not sent a second time when its lease expires. The lease
        renewer keeps the lease meanwhile; at shutdown, stop() cancels this."""
        spell = self._record_spell
        bugs = 0
        # The next wait is the backoff after this many failures: the base at first, one
        # doubling more per retry, and after a Redis error the spell's own count.
        failures = 1
        while True:
            try:
                await self._apply(lease, outcome, started)
                spell.succeeded()
                return
            except StoreError as exc:
                spell.failed(exc)
                failures = spell.failures
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # A write this call waited for was cancelled, not this task: try again.
                failures += 1
            except Exception:
                bugs += 1
                if bugs >= _RECORD_BUG_ATTEMPTS:
                    log.exception(
                        "job %s: cannot record its outcome (%s); giving up, its lease will expire",
                        lease.job_id,
                        type(outcome).__name__,
                    )
                    return
                log.warning(
                    "job %s: recording its outcome failed; retrying", lease.job_id, exc_info=True
                )
                failures += 1
            await asyncio.sleep(exponential_backoff(failures, *_REDIS_RETRY_S))

    async def _apply(self, lease: Lease, outcome: Outcome, started: float) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        job = lease.job_id
        # Structured copies of what the messages say, for JSON logs.
        extra = {"job_id": job, "chat_id": lease.chat_id, "elapsed_ms": round(elapsed_ms)}
        match outcome:
            case Delivered(message_id=message_id, message_ids=message_ids):
                recorded = await self._completions.submit(
                    CompletedSend(lease, message_id, message_ids)
                )
                self.metrics.jobs_delivered.inc()
                self.metrics.delivery_duration.observe(elapsed_ms / 1000)
                if recorded in (Recorded.NO_SUCH_JOB, Recorded.OTHER_JOB):
                    self._orphaned(lease, message_id, recorded, extra)
                    return
                if recorded is Recorded.LEASE_LOST:
                    self._late(lease, message_id, elapsed_ms, extra)
                    return
                log.info(
                    "job %s delivered to %s in %.0f ms", job, lease.chat_id, elapsed_ms, extra=extra
                )
            case RateLimited(retry_after_s=retry_after):
                # The chat waits its retry_after in full; the queue decides whether the
                # 429s so far show a bot-wide limit, and pauses the bot (capped) if so.
                pause_ms = max(1, math.ceil(retry_after * 1000))
                bot_pause_ms = await self.queue.defer(lease, pause_ms)
                bot = (
                    f" and the whole bot for {bot_pause_ms} ms (429s from several chats)"
                    if bot_pause_ms
                    else ""
                )
                log.warning(
                    "job %s: 429 from Telegram, chat %s paused for %d ms%s",
                    job,
                    lease.chat_id,
                    pause_ms,
                    bot,
                    extra={**extra, "pause_ms": pause_ms},
                )
            case PermanentError(description=description):
                await self.queue.fail(lease, description)
                self.metrics.jobs_failed.inc()
                log.warning("job %s failed: %s", job, description, extra=extra)
            case Unreachable(description=description):
                # The job fails and its chat is suppressed in one call: the next job to
                # it fails without a request.
                await self.queue.fail(lease, description, suppress=True)
                self.metrics.jobs_failed.inc()
                log.warning(
                    "job %s failed: %s; chat %s suppressed",
                    job,
                    description,
                    lease.chat_id,
                    extra=extra,
                )
            case Unauthorized(description=description):
                await self.queue.defer(lease)
                self.on_token_rejected(description)
            case TransientError(description=description):
                await self._retry(lease, description, extra)
            case AlbumPartlySent(sent_items=sent, outcome=then):
                # Recorded first: whatever comes next, those items are not sent again.
                if await self.queue.record_progress(lease, sent):
                    log.warning(
                        "job %s: Telegram sent the album's first %d item(s), then refused one",
                        job,
                        sent,
                        extra={**extra, "sent_items": sent},
                    )
                    await self._apply(lease, then, started)
            case Postponed(delay_s=delay, reason=reason):
                await self.queue.postpone(lease, max(1, math.ceil(delay * 1000)))
                log.debug("job %s postponed %.1f s: %s", job, delay, reason, extra=extra)
            case Migrated(new_chat_id=new_chat):
                # Not resent at once: the new chat's pacing applies to it like to any other.
                moved = await self.queue.migrate(lease, new_chat)
                log.info(
                    "job %s: chat %s became %s; %d queued job(s) moved to it",
                    job,
                    lease.chat_id,
                    new_chat,
                    moved,
                    extra={**extra, "new_chat_id": new_chat},
                )

    def _orphaned(
        self, lease: Lease, message_id: int, recorded: Recorded, extra: dict[str, object]
    ) -> None:
        """A delivery the store has no job for any more: this log line is its only record."""
        other = recorded is Recorded.OTHER_JOB
        self.metrics.orphaned("other_job" if other else "no_job")
        log.error(
            "job %s was delivered to %s as Telegram message %d, but %s; the delivery is "
            "not recorded (did the store lose its data?)",
            lease.job_id,
            lease.chat_id,
            message_id,
            "its id now names another job, left untouched" if other else "the job is gone",
            extra={**extra, "message_id": message_id, "orphaned": recorded.value},
        )

    def _late(
        self, lease: Lease, message_id: int, elapsed_ms: float, extra: dict[str, object]
    ) -> None:
        """A delivery recorded after its lease was lost: the job had gone back to the
        queue meanwhile and may have been sent a second time by then."""
        self.metrics.late_completions.inc()
        log.warning(
            "job %s delivered to %s as Telegram message %d after its lease was lost "
            "(%.0f ms after leasing); recorded, but it may have been sent twice",
            lease.job_id,
            lease.chat_id,
            message_id,
            elapsed_ms,
            extra={**extra, "message_id": message_id},
        )

    async def _retry(self, lease: Lease, description: str, extra: dict[str, object]) -> None:
        attempt = lease.attempts + 1
        result = await self.queue.retry(lease, description, backoff_ms(self.settings, attempt))
        extra = {**extra, "attempt": attempt}
        if result is RetryOutcome.FAILED:
            self.metrics.jobs_failed.inc()
            log.warning(
                "job %s failed after %d attempts: %s",
                lease.job_id,
                attempt,
                description,
                extra=extra,
            )
        else:
            if result is RetryOutcome.SCHEDULED:
                self.metrics.jobs_retried.inc()
            log.info(
                "job %s attempt %d failed: %s; %s",
                lease.job_id,
                attempt,
                description,
                "next attempt scheduled" if result is RetryOutcome.SCHEDULED else "lease lost",
                extra=extra,
            )
