"""The Redis queue of one bot: one call into a script wrapper per state change, plus
read-only views.

Every state change is one script call (see :mod:`notigate.queue.scripts`); reads
(GetJob, GetStats) are plain commands. The queue wakes its own gateway's workers
directly when a script reports that it woke the others (a job became due earlier than
anything before), and the wake listener skips the gateway's own messages: one wake per
change, not two.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import Redis

from notigate.config import DEFAULT_BOT, Settings
from notigate.errors import (
    ChatNotSuppressed,
    IdempotencyKeyReused,
    QueueUnavailable,
    RedisErrorKind,
)
from notigate.queue.connection import cluster_of, server_time_ms
from notigate.queue.job_ids import id_prefix, number_of
from notigate.queue.keys import QueueKeys
from notigate.queue.monitor import MonitorReading, RingSample, read_monitor, read_ring
from notigate.queue.records import (
    FINGERPRINT_LEN,
    NEWEST_FIRST,
    CompletedSend,
    Enqueued,
    EnqueueOutcome,
    JobRecord,
    JobState,
    Lease,
    LeaseBatch,
    ListCursor,
    NewJob,
    QueueStats,
    Recorded,
    RetryOutcome,
    Selected,
    SuppressedChat,
    SuppressionCursor,
    decode_job_hash,
    stored_int,
    stored_text,
)
from notigate.queue.scripts import (
    QueueScripts,
    Rewritten,
    ScriptConfig,
    SearchStep,
    store_errors,
    to_error,
)
from notigate.queue.scripts.manage import suppression_of

T = TypeVar("T")
# A page of suppressed chats and where the next starts (None: no chat follows).
SuppressedPage = tuple[list[SuppressedChat], SuppressionCursor | None]


async def _suppressed_after(
    redis: Redis, by_time: str, after: SuppressionCursor | None, count: int
) -> list[tuple[str, int]]:
    """Up to ``count`` (chat, time) of the zset ``by_time`` after ``after``, newest first.

    Chats suppressed in the same ms as the cursor's come in reverse byte order of their
    ids: those up to the cursor's were on earlier pages and are skipped.
    """
    top: float | str = after.suppressed_ms if after else "+inf"
    chats: list[tuple[str, int]] = []
    offset = 0
    while len(chats) < count:
        want = count - len(chats)
        rows = await redis.zrevrangebyscore(
            by_time, top, "-inf", start=offset, num=want, withscores=True
        )
        offset += len(rows)
        for member, score in cast(list[tuple[bytes, float]], rows):
            chat, ms = member.decode(), int(score)
            if after and ms == after.suppressed_ms and chat >= after.chat_id:
                continue
            chats.append((chat, ms))
        if len(rows) < want:
            break
    return chats


def _batch_conflict(
    jobs: Sequence[NewJob], conflicts: list[tuple[int, str]]
) -> IdempotencyKeyReused:
    """The error for an all-or-nothing enqueue that met conflicts."""
    index, job_id = conflicts[0]
    key = jobs[index].idempotency_key
    # The key's first use is an earlier message of this batch, not stored either.
    first = None if job_id else next(i for i, j in enumerate(jobs) if j.idempotency_key == key)
    return IdempotencyKeyReused(
        key, job_id, index=index, first_index=first, others=len(conflicts) - 1
    )


class Queue:
    """One bot's queue in Redis."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        bot: str = DEFAULT_BOT,
        *,
        origin: str | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.bot = bot
        self.keys = QueueKeys.for_queue(settings.queue_name, bot)
        # This gateway's name in wake messages (random: two gateways may share a process;
        # the queues of one gateway's bots share it, as they share one wake listener).
        self.origin = origin or secrets.token_hex(8)
        self.scripts = QueueScripts.register(
            redis, self.keys, ScriptConfig.from_settings(settings, self.origin, id_prefix(bot))
        )
        self.scripts.enqueue.wait_replicas = settings.redis_wait_replicas
        self.scripts.enqueue.wait_ms = settings.redis_wait_timeout_ms
        # The highest job id this process was handed (created or leased): enqueue never
        # hands out an id at or below it, and a store whose sequence is below it went back.
        self.id_floor = 0
        # Called with (the store's sequence, id_floor) when an enqueue found the store's
        # sequence below this process's floor (see store_watch.py).
        self.on_went_back: Callable[[int, int], None] = lambda _seq, _floor: None
        # Wakes this gateway's own workers (the dispatcher sets it).
        self.on_wake: Callable[[], None] = lambda: None

    async def load(self) -> None:
        """Load the scripts into Redis (fails fast if Redis is unreachable)."""
        await self.scripts.load()

    async def _read(self, op: Callable[[], Awaitable[T]]) -> T:
        async with store_errors():
            return await op()

    def _woke(self, woke: bool) -> None:
        if woke:
            self.on_wake()

    # -- producing -------------------------------------------------------------

    async def enqueue(
        self, jobs: Sequence[NewJob], *, all_or_nothing: bool = True
    ) -> list[Enqueued]:
        """Store ``jobs`` in one script call (one round trip); returns one result per job.

        A job whose idempotency key was used for a different message is a conflict. With
        ``all_or_nothing`` (a batch) any conflict stores nothing at all and raises
        :class:`IdempotencyKeyReused` naming the first conflicting job's index. Without it
        (independent messages sharing a call, e.g. concurrent Sends) only that job is left
        out, reported as ``KEY_REUSED``, and the others are stored.
        """
        floor = self.id_floor
        reply = await self.scripts.enqueue(jobs=jobs, all_or_nothing=all_or_nothing, id_floor=floor)
        if reply.went_back is not None:
            self.on_went_back(reply.went_back, floor)
        if all_or_nothing and reply.conflicts:
            raise _batch_conflict(jobs, reply.conflicts)
        results = reply.results
        self._raise_floor(r.job_id for r in results if r.outcome is EnqueueOutcome.CREATED)
        self._woke(reply.woke)
        wanted = self.settings.redis_wait_replicas
        if reply.replicas is not None and reply.replicas < wanted:
            # Stored on the primary (and delivered from there): only the promise that a
            # failover keeps it is missing. A retry with the same key finds the job.
            raise QueueUnavailable(
                f"stored but not yet on {wanted} Redis replica(s) ({reply.replicas} "
                f"confirmed within {self.settings.redis_wait_timeout_ms} ms); retry with "
                "the same idempotency key",
                RedisErrorKind.REPLICATION,
            )
        return results

    def _raise_floor(self, job_ids: Iterable[str]) -> None:
        self.id_floor = max(self.id_floor, *(number_of(i) or 0 for i in job_ids), 0)

    # -- consuming -------------------------------------------------------------

    async def dequeue(self, count: int) -> LeaseBatch:
        """Lease up to ``count`` jobs that may be sent now."""
        batch = await self.scripts.dequeue(count=count)
        self._raise_floor(lease.job_id for lease in batch.leases)
        return batch

    async def complete(
        self, lease: Lease, message_id: int, message_ids: Sequence[int] = ()
    ) -> bool:
        """Record a delivery (``message_ids``: an album's). Returns False when the lease
        had been lost meanwhile."""
        [recorded] = await self.complete_many(
            [CompletedSend(lease, message_id, tuple(message_ids))]
        )
        return recorded is Recorded.UNDER_LEASE

    async def complete_many(self, deliveries: Sequence[CompletedSend]) -> list[Recorded]:
        """Record many deliveries in one script call, each on the job it was sent for
        only (see :class:`Recorded`)."""
        return await self.scripts.complete(deliveries=deliveries)

    async def retry(self, lease: Lease, error: str, backoff_ms: int) -> RetryOutcome:
        """Count a failed attempt; schedule the next or fail when attempts are used up."""
        retried = await self.scripts.retry(lease=lease, error=error, backoff_ms=backoff_ms)
        self._woke(retried.woke)
        return retried.outcome

    async def fail(self, lease: Lease, error: str, *, suppress: bool = False) -> bool:
        """Fail the job at once (a permanent error). ``suppress``: the chat cannot be
        reached, so it is suppressed in the same call with ``error`` as the reason.
        False when the lease was lost (then nothing is suppressed either)."""
        return await self.scripts.fail(lease=lease, error=error, suppress=suppress)

    async def defer(self, lease: Lease, pause_ms: int = 0) -> int:
        """Give the job back without using an attempt.

        ``pause_ms`` > 0 means Telegram answered 429: the chat is paused that long, and
        the whole bot too when the 429s of several chats show a bot-wide limit (see
        ``defer.lua``). Returns how long the whole bot was paused (ms; 0 = it was not).
        """
        deferred = await self.scripts.defer(lease=lease, pause_ms=pause_ms)
        self._woke(deferred.woke)
        return deferred.bot_pause_ms

    async def postpone(self, lease: Lease, delay_ms: int) -> bool:
        """Give the job back, due again in ``delay_ms``, using no attempt and pausing
        nothing (it waits for something else: its original's delivery, an upload).
        False when the lease was lost."""
        postponed = await self.scripts.postpone(lease=lease, delay_ms=delay_ms)
        self._woke(postponed.woke)
        return postponed.given_back

    async def record_progress(self, lease: Lease, sent_items: int) -> bool:
        """An album's first ``sent_items`` are in the chat: no attempt sends them again."""
        return await self.scripts.progress(lease=lease, sent=sent_items)

    async def rewrite(
        self,
        job_id: str,
        states: Sequence[JobState],
        expected: bytes,
        payload: bytes,
        upload_ids: Sequence[str] = (),
    ) -> Rewritten:
        """Replace the job's payload while it is in one of ``states`` and still holds
        ``expected`` (compare-and-set: see rewrite.lua)."""
        return await self.scripts.rewrite(
            job_id=job_id, states=states, expected=expected, payload=payload, upload_ids=upload_ids
        )

    async def migrate(self, lease: Lease, new_chat_id: str) -> int:
        """The job's group became a supergroup: move the job, and every job still queued
        for the old chat, to ``new_chat_id``'s queue (no attempt used). Returns how many
        moved, 0 when the lease had been lost."""
        return await self.scripts.migrate(lease=lease, new_chat_id=new_chat_id)

    async def extend(self, leases: Sequence[Lease]) -> int:
        """Renew leases of sends still in flight; returns how many were renewed."""
        if not leases:
            return 0
        return await self.scripts.extend(leases=leases)

    # -- managing ------------------------------------------------------------

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a waiting or delayed job; the job as cancelled."""
        changed = await self.scripts.cancel(job_id=job_id)
        if changed.job is None:
            raise to_error(changed.status, job_id, changed.state, "cancel")
        return changed.job

    async def requeue(self, job_id: str) -> JobRecord:
        """Queue a failed job again with a fresh attempt budget; the job as queued."""
        changed = await self.scripts.requeue(job_id=job_id)
        if changed.job is None:
            raise to_error(changed.status, job_id, changed.state, "retry")
        self._woke(changed.woke)
        return changed.job

    async def cancel_many(self, job_ids: Sequence[str], states: Sequence[JobState]) -> list[bool]:
        """Cancel each job still in one of ``states`` (waiting, delayed); True where it
        was cancelled by this call. Others (moved on meanwhile, gone) are left alone."""
        return await self.scripts.cancel.many(job_ids=job_ids, only=states)

    async def requeue_many(self, job_ids: Sequence[str]) -> list[bool]:
        """Queue each job again that is still failed; True where it was. The workers
        are not woken: call :meth:`wake` once afterwards."""
        return await self.scripts.requeue.many(job_ids=job_ids)

    async def unsuppress(self, chat_id: str, *, validate_only: bool = False) -> SuppressedChat:
        """Let jobs reach ``chat_id`` again; the suppression lifted (``validate_only``:
        the one that would be, nothing changed).

        Raises:
            ChatNotSuppressed: the chat is not suppressed.
        """
        lifted = await self.scripts.unsuppress(chat_id=chat_id, validate_only=validate_only)
        if lifted is None:
            raise ChatNotSuppressed(chat_id)
        return lifted

    async def wake(self) -> None:
        """Wake every replica's workers (new work may be due), this gateway's too."""
        await self._read(lambda: self.redis.publish(self.keys.wake_channel, self.origin))
        self.on_wake()

    async def sample(self, *, live: bool) -> int:
        """Record this interval's throughput sample and this gateway's dispatcher
        heartbeat (``live``: its dispatcher for the bot runs); the Redis time (ms)."""
        return await self.scripts.sample(origin=self.origin, live=live)

    # -- reading ---------------------------------------------------------------

    async def throughput_samples(self) -> list[RingSample]:
        """The throughput ring's samples (the last hour and a bit), oldest first."""
        return await self._read(lambda: read_ring(self.redis, self.keys))

    async def monitor(self, now_ms: int) -> MonitorReading:
        """The limiter's state, the live dispatchers and the throughput samples as of
        ``now_ms`` (Redis time; one round trip)."""
        return await self._read(lambda: read_monitor(self.redis, self.keys, now_ms))

    async def now_ms(self) -> int:
        """Redis's clock (ms), the one every job time is stamped with."""
        return await self._read(lambda: server_time_ms(self.redis, self.keys.seq))

    async def last_job_id(self) -> int:
        """The newest job id handed out (0: none yet). Ids only grow, so an id above it
        was never handed out."""
        raw = await self._read(lambda: self.redis.get(self.keys.seq))
        return int(raw or 0)

    async def get(self, job_id: str) -> JobRecord | None:
        """The job, or None when it does not exist (any more)."""
        h = await self._read(lambda: self.redis.hgetall(self.keys.job(job_id)))
        record = cast(dict[bytes, bytes], h)
        return decode_job_hash(job_id, record, self.settings.max_attempts) if h else None

    async def list(
        self, state: JobState, after: ListCursor | None, limit: int
    ) -> tuple[list[JobRecord], ListCursor | None]:
        """A page of jobs in ``state`` after ``after``; the cursor to continue from, or
        None when the state holds nothing further.

        Waiting/delayed/active are listed oldest (or soonest) first; completed,
        failed and cancelled newest first.
        """
        return await self.scripts.list_page(
            index=self.keys.index(state),
            newest_first=state in NEWEST_FIRST,
            after=after,
            limit=limit,
        )

    async def select(
        self,
        state: JobState,
        chat_id: str,
        after: ListCursor | None,
        limit: int,
        sample: int = 0,
    ) -> Selected:
        """The jobs of ``chat_id`` ('' = all) among the next ``limit`` entries of
        ``state``'s index, lowest score first, after ``after``. ``sample`` > 0: of the
        jobs that match for sure, only count them and list the ``sample`` oldest."""
        return await self.scripts.select(
            index=self.keys.index(state), chat_id=chat_id, after=after, limit=limit, sample=sample
        )

    async def search(
        self,
        index: str,
        after: ListCursor | None,
        limit: int,
        *,
        chat_id: str = "",
        needle: bytes = b"",
        extra: Sequence[bytes] = (),
    ) -> SearchStep:
        """The next ``limit`` entries of ``index`` (a state's index, or with ``chat_id``
        that chat's, :meth:`QueueKeys.chat_jobs`) after ``after``, newest first, and the
        jobs among them whose lowercased payload holds ``needle`` or any of ``extra``
        (empty ``needle``: every job). Stale entries of a chat's index are dropped."""
        return await self.scripts.search(
            index=index, chat_id=chat_id, after=after, limit=limit, needle=needle, extra=extra
        )

    async def job_of_key(self, key: str) -> JobRecord | None:
        """The job an idempotency key was sent with, while the key is remembered."""
        stored = await self._read(lambda: self.redis.get(self.keys.idempotency(key)))
        if not stored:
            return None
        # "<job id>:<fingerprint>", or a bare id (stored before fingerprints existed).
        # The id may hold a ':' itself (``<bot>:<number>``): the fingerprint's length
        # says where it ends.
        raw = cast(bytes, stored)
        end = len(raw) - FINGERPRINT_LEN - 1
        job_id = (raw[:end] if end > 0 and raw[end : end + 1] == b":" else raw).decode()
        return await self.get(job_id)

    async def suppressed(self, after: SuppressionCursor | None, limit: int) -> SuppressedPage:
        """A page of suppressed chats, newest first, after ``after``; the cursor to go on
        from, or None when no chat follows."""
        k = self.keys
        chats = await self._read(
            lambda: _suppressed_after(self.redis, k.suppressed_by_time, after, limit + 1)
        )
        more = len(chats) > limit
        del chats[limit:]
        if not chats:
            return [], None
        names = [chat for chat, _ in chats]
        stored = await self._read(lambda: self.redis.hmget(k.suppressed, names))
        found = [
            suppression_of(chat, raw)
            for chat, raw in zip(names, cast(list[bytes | None], stored), strict=True)
            if raw is not None  # lifted between the two reads
        ]
        last_chat, last_ms = chats[-1]
        return found, SuppressionCursor(last_ms, last_chat) if more else None

    async def stats(self) -> QueueStats:
        """Depths per state, lifetime totals and the bot-wide pause."""
        k = self.keys
        states = list(JobState)

        # A cluster's pipeline refuses TIME (it names no key): the clock is read
        # from the slot's primary by a call of its own there.
        on_cluster = cluster_of(self.redis) is not None

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in states:
                    pipe.zcard(k.index(state))
                pipe.hgetall(k.stats)
                pipe.get(k.global_pause)
                pipe.zrange(k.waiting, 0, 0, withscores=True)
                if not on_cluster:
                    pipe.time()
                pipe.get(k.global_pause_reason)
                pipe.zcard(k.suppressed_by_time)
                replies = list(await pipe.execute())
            if on_cluster:
                replies.insert(len(states) + 3, await server_time_ms(self.redis, k.seq))
            return replies

        reply = await self._read(read)
        counts = {state: int(reply[i]) for i, state in enumerate(states)}
        n = len(states)
        totals = {key.decode(): int(v) for key, v in reply[n].items()}
        oldest = reply[n + 2]
        clock = reply[n + 3]
        now_ms = clock if isinstance(clock, int) else int(clock[0]) * 1000 + int(clock[1]) // 1000
        return QueueStats(
            counts=counts,
            totals=totals,
            paused_until_ms=stored_int(reply[n + 1]),
            oldest_waiting_ms=int(oldest[0][1]) if oldest else None,
            now_ms=now_ms,
            paused_reason=stored_text(reply[n + 4]),
            suppressed_chats=int(reply[n + 5]),
        )
