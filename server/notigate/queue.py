"""The Redis queue: typed wrappers around the Lua scripts, plus read-only views.

Every state change is one script call (see ``lua/``); reads (GetJob, ListJobs,
GetStats) are plain commands.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from notigate.config import Settings
from notigate.errors import (
    IdempotencyKeyReused,
    JobNotFound,
    JobStateConflict,
    store_error,
)
from notigate.keys import QueueKeys
from notigate.scripts import Scripts

T = TypeVar("T")

# Header of one message in enqueue.lua's packed argument (see its header).
_JOB_HEADER = struct.Struct(">BddBBHI")
# Bytes of SHA-256 kept as a request's fingerprint: 2^-128 makes a chance match of two
# different requests under one key impossible in practice, at 16 bytes per stored key.
FINGERPRINT_LEN = 16

# The most entries the dequeue script promotes per set in one call, so one
# call stays short even after a long outage left many due jobs.
_PROMOTE_BATCH = 200


class JobState(StrEnum):
    """A job's state as stored in its hash (``s``)."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The one-letter codes the scripts store (lua/includes/common.lua).
_STATE_CODES = {
    "w": JobState.WAITING,
    "d": JobState.DELAYED,
    "a": JobState.ACTIVE,
    "c": JobState.COMPLETED,
    "f": JobState.FAILED,
    "x": JobState.CANCELLED,
}
_CODE_OF = {state: code for code, state in _STATE_CODES.items()}


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated message ready to be stored.

    ``payload`` is the request as received, serialized deterministically: with an
    idempotency key, its fingerprint (:func:`fingerprint`) decides whether a repeat of the
    key is the same message, so it must not carry anything that differs between two
    sends of one request (such as the time it arrived).
    """

    chat_id: str
    priority: int
    delay_ms: int
    max_attempts: int
    idempotency_key: str
    payload: bytes
    # Absolute due time (ms since the epoch, 0 = none), compared with Redis TIME by the
    # script: the gateway's own clock may be off, Redis's is the one every replica shares.
    due_at_ms: int = 0


def fingerprint(payload: bytes) -> bytes:
    """What enqueue.lua stores with an idempotency key to recognise a repeat of the request.

    Every field of the request counts: a legitimate repeat (a client's retry) is the same
    request byte for byte, so any difference (text, chat, priority, delay, markup, even
    max_attempts) means the caller asks for something the first job will not do, and
    answering with the first job would drop that silently. The key itself is part of the
    payload too, which changes nothing: both requests carry the same key by definition.
    Only the payload is hashed, not the job's other fields: they are derived from it, and
    one of them (the delay, for a message due at a fixed time) from the time of arrival.
    """
    return hashlib.sha256(payload).digest()[:FINGERPRINT_LEN]


class EnqueueOutcome(StrEnum):
    """What storing one message did."""

    CREATED = "created"
    # The key came before with the same request: ``job_id`` is that first job.
    DUPLICATE = "duplicate"
    # The key came before with a different request: nothing is stored for this message,
    # ``job_id`` is the key's first job ("" when that is an unstored message of one batch).
    KEY_REUSED = "key_reused"


# The outcome codes enqueue.lua returns, by value. 3 (not stored, beside a conflict in an
# all-or-nothing call) never reaches callers: that call raises.
_OUTCOMES = (EnqueueOutcome.CREATED, EnqueueOutcome.DUPLICATE, EnqueueOutcome.KEY_REUSED)
_CONFLICT = 2


@dataclass(frozen=True, slots=True)
class Enqueued:
    """Outcome of storing one message."""

    job_id: str
    outcome: EnqueueOutcome = EnqueueOutcome.CREATED

    @property
    def duplicate(self) -> bool:
        """The message repeated an earlier one and ``job_id`` is that earlier job."""
        return self.outcome is EnqueueOutcome.DUPLICATE


@dataclass(frozen=True, slots=True)
class Lease:
    """A job taken for delivery; ``token`` proves the lease is still ours (unique across
    the life of the store), ``created_ms`` names the job even once the lease is lost (an
    id handed out again after the store lost its data belongs to a job created later)."""

    job_id: str
    token: str
    chat_id: str
    attempts: int
    payload: bytes
    created_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A send Telegram accepted, to be recorded."""

    lease: Lease
    message_id: int


@dataclass(frozen=True, slots=True)
class Leased:
    """What one dequeue call returned."""

    leases: list[Lease]
    # 0: more can be leased now; >0: ms until the next event; None: nothing scheduled.
    wait_ms: int | None
    # The bot-wide limit (or a bot-wide pause) stopped the leasing: nothing new
    # can be sent before wait_ms either.
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Where a listing of one state continues: after this job, at this index score."""

    score: float
    job_id: str


@dataclass(frozen=True, slots=True)
class Selected:
    """One page of a state's index walked by RetryJobs/CancelJobs (see lua/select.lua)."""

    # Jobs that match: all of them, or the oldest when only a sample was asked for.
    job_ids: list[str]
    # How many jobs match (more than job_ids when only a sample was asked for).
    matched: int
    # (job id, payload) of jobs whose requested chat_id (in the payload, a serialized
    # SendRequest) decides whether they match.
    undecided: list[tuple[str, bytes]]
    # Where the next page starts; None when the index holds nothing further.
    cursor: ListCursor | None


class Recorded(StrEnum):
    """What recording one delivery did (complete.lua's codes)."""

    UNDER_LEASE = "under_lease"
    # The lease had expired (the job went back to a queue): recorded all the same, so
    # the message is not sent again.
    LEASE_LOST = "lease_lost"
    ALREADY_COMPLETED = "already_completed"
    # The job is gone: the store lost its data, or retention trimmed it meanwhile.
    NO_SUCH_JOB = "no_such_job"
    # The id now names another job (the store lost its data and handed the id out
    # again): nothing was recorded, the delivery is known to this process only.
    OTHER_JOB = "other_job"


_RECORDED = {
    1: Recorded.UNDER_LEASE,
    2: Recorded.LEASE_LOST,
    0: Recorded.ALREADY_COMPLETED,
    -1: Recorded.NO_SUCH_JOB,
    -2: Recorded.OTHER_JOB,
}


class RetryOutcome(StrEnum):
    """What a transient failure led to."""

    SCHEDULED = "scheduled"
    FAILED = "failed"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored in Redis."""

    job_id: str
    state: JobState
    chat_id: str
    attempts: int
    max_attempts: int
    stalls: int
    last_error: str
    message_id: int
    created_ms: int
    updated_ms: int
    delivered_ms: int
    due_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths per state and lifetime counters."""

    counts: dict[JobState, int]
    totals: dict[str, int]
    paused_until_ms: int
    oldest_waiting_ms: int | None
    now_ms: int
    # Why the whole bot is paused ("" while it is not).
    paused_reason: str = ""


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def _record(job_id: str, h: dict[bytes, bytes], default_max_attempts: int) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        state=_STATE_CODES[_text(h.get(b"s"))],
        chat_id=_text(h.get(b"ch")),
        attempts=_int(h.get(b"a")),
        max_attempts=_int(h.get(b"ma")) or default_max_attempts,
        stalls=_int(h.get(b"st")),
        last_error=_text(h.get(b"e")),
        message_id=_int(h.get(b"m")),
        created_ms=_int(h.get(b"c")),
        # Absent until the job first changes: the script saves the memory.
        updated_ms=_int(h.get(b"u") or h.get(b"c")),
        delivered_ms=_int(h.get(b"d")),
        due_ms=_int(h.get(b"due") or h.get(b"c")),
        payload=h.get(b"p", b""),
    )


def _batch_conflict(jobs: Sequence[NewJob], reply: list[Any]) -> IdempotencyKeyReused:
    """The error for an all-or-nothing enqueue that met conflicts (``reply``: the script's)."""
    conflicts = [i for i in range(len(jobs)) if reply[2 * i + 1] == _CONFLICT]
    index = conflicts[0]
    key = jobs[index].idempotency_key
    job_id = reply[2 * index].decode()
    # The key's first use is an earlier message of this batch, not stored either.
    first = None if job_id else next(i for i, j in enumerate(jobs) if j.idempotency_key == key)
    return IdempotencyKeyReused(
        key, job_id, index=index, first_index=first, others=len(conflicts) - 1
    )


@asynccontextmanager
async def _redis_errors() -> AsyncIterator[None]:
    """Turn every redis-py exception into the queue's own (see :func:`store_error`):
    QueueUnavailable for whatever passes (READONLY, MISCONF, BUSY...), QueueFull, or a
    plain StoreError for a bug."""
    try:
        yield
    except redis_errors.RedisError as exc:
        raise store_error(exc) from exc


class Queue:
    """One bot's queue in Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = QueueKeys.for_queue(settings.queue_name)
        self._scripts = Scripts(redis)
        self._chat_args = settings.limits.chat_args()
        self._keep_age_ms = settings.keep_age_s * 1000
        # The highest job id this process was handed (created or leased): enqueue never
        # hands out an id at or below it, and a store whose sequence is below it went back.
        self.id_floor = 0
        # Called with (the store's sequence, id_floor) when an enqueue found the store's
        # sequence below this process's floor (see store_watch.py).
        self.on_went_back: Callable[[int, int], None] = lambda _seq, _floor: None

    async def load(self) -> None:
        """Load the scripts into Redis (fails fast if Redis is unreachable)."""
        async with _redis_errors():
            await self._scripts.load()

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        async with _redis_errors():
            return await self._scripts.call(name, keys, args)

    async def _read(self, op: Callable[[], Awaitable[T]]) -> T:
        async with _redis_errors():
            return await op()

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
        k = self.keys
        args: list[Any] = [
            k.prefix,
            self.settings.idempotency_ttl_s * 1000,
            *self._chat_args,
            len(jobs),
        ]
        packed: list[bytes] = []
        keyed = 0
        for job in jobs:
            chat = job.chat_id.encode()
            key = job.idempotency_key.encode()
            packed += (
                _JOB_HEADER.pack(
                    job.priority,
                    job.delay_ms,
                    job.due_at_ms,
                    job.max_attempts,
                    len(chat),
                    len(key),
                    len(job.payload),
                ),
                chat,
                key,
                job.payload,
            )
            if key:
                packed.append(fingerprint(job.payload))
                keyed += 1
        floor = self.id_floor
        args += (b"".join(packed), 1 if all_or_nothing else 0, keyed, floor)
        keys = [k.seq, k.waiting, k.ready, k.paced, k.delayed, k.stats, k.migrations]
        reply = await self._call("enqueue", keys, args)
        *pairs, went_back = reply
        if int(went_back) >= 0:
            self.on_went_back(int(went_back), floor)
        if all_or_nothing and _CONFLICT in pairs[1::2]:
            raise _batch_conflict(jobs, pairs)
        results = [
            Enqueued(job_id=pairs[i].decode(), outcome=_OUTCOMES[pairs[i + 1]])
            for i in range(0, len(pairs), 2)
        ]
        self._raise_floor(r.job_id for r in results if r.outcome is EnqueueOutcome.CREATED)
        return results

    def _raise_floor(self, job_ids: Iterable[str]) -> None:
        self.id_floor = max(self.id_floor, *(int(i) for i in job_ids if i.isdigit()), 0)

    # -- consuming -------------------------------------------------------------

    async def dequeue(self, count: int) -> Leased:
        """Lease up to ``count`` jobs that may be sent now."""
        k, s = self.keys, self.settings
        reply = await self._call(
            "dequeue",
            [
                k.ready,
                k.paced,
                k.delayed,
                k.active,
                k.waiting,
                k.glog,
                k.gpause,
                k.stats,
                k.failed,
                k.gtat,
            ],
            [
                k.prefix,
                count,
                s.lease_ms,
                s.global_rate,
                s.limits.global_window_ms,
                s.limits.global_margin_ms,
                *self._chat_args,
                s.max_stalls,
                s.keep_failed,
                self._keep_age_ms,
                _PROMOTE_BATCH,
                s.limits.global_burst_ms,
                secrets.token_hex(8),
            ],
        )
        wait = int(reply[0])
        leases = [
            Lease(
                job_id=reply[i].decode(),
                token=reply[i + 1].decode(),
                chat_id=reply[i + 2].decode(),
                attempts=int(reply[i + 3]),
                created_ms=int(reply[i + 4]),
                payload=reply[i + 5],
            )
            for i in range(3, 3 + 6 * int(reply[2]), 6)
        ]
        self._raise_floor(lease.job_id for lease in leases)
        return Leased(leases=leases, wait_ms=None if wait < 0 else wait, blocked=bool(reply[1]))

    async def complete(self, lease: Lease, message_id: int) -> bool:
        """Record a delivery. Returns False when the lease had been lost meanwhile."""
        [recorded] = await self.complete_many([Delivery(lease, message_id)])
        return recorded is Recorded.UNDER_LEASE

    async def complete_many(self, deliveries: Sequence[Delivery]) -> list[Recorded]:
        """Record many deliveries in one script call, each on the job it was sent for
        only (see :class:`Recorded`)."""
        k = self.keys
        args: list[Any] = [
            k.prefix,
            self.settings.keep_completed,
            self._keep_age_ms,
            *self._chat_args,
            len(deliveries),
        ]
        for d in deliveries:
            args += [d.lease.job_id, d.lease.token, d.lease.created_ms, d.message_id]
        codes = await self._call(
            "complete",
            [
                k.active,
                k.completed,
                k.waiting,
                k.delayed,
                k.failed,
                k.ready,
                k.paced,
                k.stats,
            ],
            args,
        )
        return [_RECORDED[int(code)] for code in codes]

    async def retry(self, lease: Lease, error: str, backoff_ms: int) -> RetryOutcome:
        """Count a failed attempt; schedule the next or fail when attempts are used up."""
        k = self.keys
        code, _attempts = await self._call(
            "retry",
            [k.active, k.delayed, k.failed, k.stats],
            [
                k.prefix,
                lease.job_id,
                lease.token,
                error,
                backoff_ms,
                self.settings.keep_failed,
                self._keep_age_ms,
                self.settings.max_attempts,
            ],
        )
        return {1: RetryOutcome.SCHEDULED, 2: RetryOutcome.FAILED}.get(
            int(code), RetryOutcome.IGNORED
        )

    async def fail(self, lease: Lease, error: str) -> bool:
        """Fail the job at once (a permanent error). False when the lease was lost."""
        k = self.keys
        code = await self._call(
            "fail",
            [k.active, k.failed, k.stats],
            [
                k.prefix,
                lease.job_id,
                lease.token,
                error,
                self.settings.keep_failed,
                self._keep_age_ms,
            ],
        )
        return int(code) == 1

    async def defer(self, lease: Lease, pause_ms: int = 0) -> int:
        """Give the job back without using an attempt.

        ``pause_ms`` > 0 means Telegram answered 429: the chat is paused that long, and
        the whole bot too when the 429s of several chats show a bot-wide limit (see
        ``defer.lua``). Returns how long the whole bot was paused (ms; 0 = it was not).
        """
        k, s = self.keys, self.settings
        reply = await self._call(
            "defer",
            [
                k.active,
                k.waiting,
                k.ready,
                k.paced,
                k.stats,
                k.recent_429,
                k.gpause,
                k.gpause_reason,
            ],
            [
                k.prefix,
                lease.job_id,
                lease.token,
                pause_ms,
                s.bot_pause_chats,
                s.bot_pause_window_ms,
                *self._chat_args,
                s.bot_pause_max_ms,
                s.bot_pause_flood_chats,
            ],
        )
        if isinstance(reply, list) and int(reply[0]) == 2:
            return int(reply[1])
        return 0

    async def migrate(self, lease: Lease, new_chat_id: str) -> int:
        """The job's group became a supergroup: move the job, and every job still queued
        for the old chat, to ``new_chat_id``'s queue (no attempt used). Returns how many
        moved, 0 when the lease had been lost."""
        k = self.keys
        moved = await self._call(
            "migrate",
            [k.active, k.waiting, k.ready, k.paced, k.migrations],
            [k.prefix, lease.job_id, lease.token, new_chat_id, *self._chat_args],
        )
        return max(0, int(moved))

    async def extend(self, leases: Sequence[Lease]) -> int:
        """Renew leases of sends still in flight; returns how many were renewed."""
        if not leases:
            return 0
        k = self.keys
        args: list[Any] = [k.prefix, self.settings.lease_ms]
        for lease in leases:
            args += [lease.job_id, lease.token]
        return int(await self._call("extend", [k.active], args))

    # -- managing ------------------------------------------------------------

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a waiting or delayed job."""
        k = self.keys
        code, state = await self._call(
            "cancel",
            [k.waiting, k.delayed, k.cancelled, k.ready, k.paced, k.stats],
            [k.prefix, job_id, self.settings.keep_completed, self._keep_age_ms, *self._chat_args],
        )
        return await self._after_change(job_id, int(code), state.decode(), "cancel")

    async def requeue(self, job_id: str) -> JobRecord:
        """Queue a failed job again with a fresh attempt budget."""
        k = self.keys
        code, state = await self._call(
            "requeue",
            [k.failed, k.waiting, k.ready, k.paced, k.stats, k.migrations],
            [k.prefix, job_id, *self._chat_args],
        )
        return await self._after_change(job_id, int(code), state.decode(), "retry")

    async def _call_many(self, name: str, keys: list[str], arg_lists: list[list[Any]]) -> list[Any]:
        """Run one script many times in one round trip (a pipeline, not a transaction:
        each call is atomic on its own, as it would be alone)."""
        if not arg_lists:
            return []
        async with _redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            for args in arg_lists:
                await self._scripts.call(name, keys, args, client=pipe)
            return list(await pipe.execute())

    async def cancel_many(self, job_ids: Sequence[str], states: Sequence[JobState]) -> list[bool]:
        """Cancel each job still in one of ``states`` (waiting, delayed); True where it
        was cancelled by this call. Others (moved on meanwhile, gone) are left alone."""
        k, s = self.keys, self.settings
        only = "".join(_CODE_OF[state] for state in states)
        keys = [k.waiting, k.delayed, k.cancelled, k.ready, k.paced, k.stats]
        common = [s.keep_completed, self._keep_age_ms, *self._chat_args, only]
        replies = await self._call_many(
            "cancel", keys, [[k.prefix, job_id, *common] for job_id in job_ids]
        )
        return [int(code) == 1 for code, _state in replies]

    async def requeue_many(self, job_ids: Sequence[str]) -> list[bool]:
        """Queue each job again that is still failed; True where it was. The workers
        are not woken: call :meth:`wake` once afterwards."""
        k = self.keys
        keys = [k.failed, k.waiting, k.ready, k.paced, k.stats, k.migrations]
        replies = await self._call_many(
            "requeue", keys, [[k.prefix, job_id, *self._chat_args, "1"] for job_id in job_ids]
        )
        return [int(code) == 1 for code, _state in replies]

    async def wake(self) -> None:
        """Wake every replica's workers (new work may be due)."""
        await self._read(lambda: self.redis.publish(self.keys.wake_channel, "1"))

    async def _after_change(self, job_id: str, code: int, state: str, op: str) -> JobRecord:
        if code == -1:
            raise JobNotFound(job_id)
        if code == 0:
            raise JobStateConflict(job_id, _STATE_CODES[state].value, op)
        record = await self.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    # -- reading ---------------------------------------------------------------

    async def last_job_id(self) -> int:
        """The newest job id handed out (0: none yet). Ids only grow, so an id above it
        was never handed out."""
        raw = await self._read(lambda: self.redis.get(self.keys.seq))
        return int(raw or 0)

    async def get(self, job_id: str) -> JobRecord | None:
        """The job, or None when it does not exist (any more)."""
        h = await self._read(lambda: self.redis.hgetall(self.keys.job(job_id)))
        record = cast(dict[bytes, bytes], h)
        return _record(job_id, record, self.settings.max_attempts) if h else None

    def _state_index(self, state: JobState) -> str:
        k = self.keys
        return {
            JobState.WAITING: k.waiting,
            JobState.DELAYED: k.delayed,
            JobState.ACTIVE: k.active,
            JobState.COMPLETED: k.completed,
            JobState.FAILED: k.failed,
            JobState.CANCELLED: k.cancelled,
        }[state]

    async def list(
        self, state: JobState, after: ListCursor | None, limit: int
    ) -> tuple[list[JobRecord], ListCursor | None]:
        """A page of jobs in ``state`` after ``after``; the cursor to continue from, or
        None when the state holds nothing further.

        Waiting/delayed/active are listed oldest (or soonest) first; completed,
        failed and cancelled newest first.
        """
        newest_first = state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
        reply = await self._call(
            "list",
            [self._state_index(state)],
            [
                self.keys.prefix,
                limit,
                int(newest_first),
                repr(after.score) if after else "",
                after.job_id if after else "",
            ],
        )
        default = self.settings.max_attempts
        records: list[JobRecord] = []
        for i in range(1, len(reply), 3):
            flat = reply[i + 2]
            if flat:  # the script reads index and hashes at once; this is only a guard
                fields = dict(zip(flat[0::2], flat[1::2], strict=True))
                records.append(_record(reply[i].decode(), fields, default))
        more = int(reply[0]) == 1 and len(reply) > 1
        cursor = ListCursor(float(reply[-2]), reply[-3].decode()) if more else None
        return records, cursor

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
        reply = await self._call(
            "select",
            [self._state_index(state), self.keys.migrations],
            [
                self.keys.prefix,
                limit,
                repr(after.score) if after else "",
                after.job_id if after else "",
                chat_id,
                sample,
            ],
        )
        end = 5 + int(reply[4])
        job_ids = [i.decode() for i in reply[5:end]]
        undecided = [(reply[i].decode(), reply[i + 1]) for i in range(end, len(reply), 2)]
        cursor = None
        if int(reply[0]) == 1:
            cursor = ListCursor(float(reply[2]), reply[1].decode())
        return Selected(job_ids, int(reply[3]), undecided, cursor)

    async def stats(self) -> QueueStats:
        """Depths per state, lifetime totals and the bot-wide pause."""
        k = self.keys
        states = list(JobState)

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in states:
                    pipe.zcard(self._state_index(state))
                pipe.hgetall(k.stats)
                pipe.get(k.gpause)
                pipe.zrange(k.waiting, 0, 0, withscores=True)
                pipe.time()
                pipe.get(k.gpause_reason)
                return list(await pipe.execute())

        reply = await self._read(read)
        counts = {state: int(reply[i]) for i, state in enumerate(states)}
        n = len(states)
        totals = {key.decode(): int(v) for key, v in reply[n].items()}
        oldest = reply[n + 2]
        sec, usec = reply[n + 3]
        now_ms = int(sec) * 1000 + int(usec) // 1000
        return QueueStats(
            counts=counts,
            totals=totals,
            paused_until_ms=_int(reply[n + 1]),
            oldest_waiting_ms=int(oldest[0][1]) if oldest else None,
            now_ms=now_ms,
            paused_reason=_text(reply[n + 4]),
        )
