"""Recording what Telegram answered: ``complete``, ``retry``, ``fail``, ``defer`` and
``migrate``. Each needs the caller's lease (``check_lease.lua``), except ``complete``: a
delivery is a fact, recorded even once the lease is lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from notigate.queue.records import CompletedSend, Lease, Recorded, RetryOutcome
from notigate.queue.scripts.base import Arg, ScriptBase, as_int, as_list
from notigate.queue.scripts.status import Status


class CompleteCode(IntEnum):
    """What complete.lua did with one delivery (besides the shared refusals)."""

    RECORDED = 1
    # Recorded although the lease had been lost: the job may have been sent twice.
    RECORDED_LATE = 2
    ALREADY_COMPLETED = 3


_RECORDED: dict[int, Recorded] = {
    CompleteCode.RECORDED: Recorded.UNDER_LEASE,
    CompleteCode.RECORDED_LATE: Recorded.LEASE_LOST,
    CompleteCode.ALREADY_COMPLETED: Recorded.ALREADY_COMPLETED,
    Status.JOB_NOT_FOUND: Recorded.NO_SUCH_JOB,
    Status.OTHER_JOB: Recorded.OTHER_JOB,
}


class Complete(ScriptBase[list[Recorded]]):
    """Record many deliveries in one call, each on the job it was sent for only."""

    name = "complete"
    keys = (
        "active",
        "completed",
        "waiting",
        "delayed",
        "failed",
        "ready",
        "paced",
        "stats",
        "events",
    )
    argv = ("deliveries...",)
    codes = (CompleteCode,)

    async def __call__(self, *, deliveries: Sequence[CompletedSend]) -> list[Recorded]:
        args: list[Arg] = []
        for d in deliveries:
            ids = ",".join(map(str, d.message_ids)) if d.message_ids else d.message_id
            args += (d.lease.job_id, d.lease.token, d.lease.created_ms, ids)
        return [_RECORDED[as_int(code)] for code in as_list(await self._run(*args))]


class RetryCode(IntEnum):
    """What retry.lua did (besides the shared refusals)."""

    SCHEDULED = 1
    # The job's attempts are used up: it failed.
    EXHAUSTED = 2


_RETRIED: dict[int, RetryOutcome] = {
    RetryCode.SCHEDULED: RetryOutcome.SCHEDULED,
    RetryCode.EXHAUSTED: RetryOutcome.FAILED,
}


@dataclass(frozen=True, slots=True)
class Retried:
    """retry.lua's answer."""

    outcome: RetryOutcome
    attempts: int
    woke: bool


class Retry(ScriptBase[Retried]):
    """Count a failed attempt; schedule the next or fail when attempts are used up."""

    name = "retry"
    keys = ("active", "delayed", "failed", "stats", "events")
    argv = ("job_id", "token", "error", "backoff_ms")
    codes = (RetryCode,)

    async def __call__(self, *, lease: Lease, error: str, backoff_ms: int) -> Retried:
        code, attempts, woke = as_list(
            await self._run(lease.job_id, lease.token, error, backoff_ms)
        )
        outcome = _RETRIED.get(as_int(code), RetryOutcome.LEASE_LOST)
        return Retried(outcome, as_int(attempts), as_int(woke) == 1)


class Fail(ScriptBase[bool]):
    """Fail the job at once (a permanent error), suppressing its chat with ``suppress``;
    False when the lease was lost."""

    name = "fail"
    keys = ("active", "failed", "stats", "events", "suppressed", "suppressed_by_time")
    argv = ("job_id", "token", "error", "suppress")

    async def __call__(self, *, lease: Lease, error: str, suppress: bool = False) -> bool:
        [code] = as_list(await self._run(lease.job_id, lease.token, error, int(suppress)))
        return as_int(code) == Status.OK


class DeferCode(IntEnum):
    """What defer.lua did (besides the shared refusals)."""

    GIVEN_BACK = 1
    # Given back, and 429s from several chats paused the whole bot.
    BOT_PAUSED = 2


@dataclass(frozen=True, slots=True)
class Deferred:
    """defer.lua's answer."""

    given_back: bool
    # How long the whole bot was paused (ms; 0 = it was not).
    bot_pause_ms: int
    woke: bool


class Defer(ScriptBase[Deferred]):
    """Give a leased job back without using an attempt, pausing its chat for
    ``pause_ms`` (> 0 after a 429)."""

    name = "defer"
    keys = (
        "active",
        "waiting",
        "ready",
        "paced",
        "stats",
        "recent_429s",
        "global_pause",
        "global_pause_reason",
        "events",
    )
    argv = ("job_id", "token", "pause_ms")
    codes = (DeferCode,)

    async def __call__(self, *, lease: Lease, pause_ms: int) -> Deferred:
        code, bot_ms, woke = as_list(await self._run(lease.job_id, lease.token, pause_ms))
        status = as_int(code)
        return Deferred(
            given_back=status > 0,
            bot_pause_ms=as_int(bot_ms) if status == DeferCode.BOT_PAUSED else 0,
            woke=as_int(woke) == 1,
        )


class Migrate(ScriptBase[int]):
    """Move the job, and every job queued for its old chat, to ``new_chat_id``;
    returns how many moved (0 when the lease had been lost)."""

    name = "migrate"
    keys = ("active", "waiting", "ready", "paced", "migrations", "events")
    argv = ("job_id", "token", "new_chat")

    async def __call__(self, *, lease: Lease, new_chat_id: str) -> int:
        code, moved = as_list(await self._run(lease.job_id, lease.token, new_chat_id))
        return as_int(moved) if as_int(code) == Status.OK else 0


@dataclass(frozen=True, slots=True)
class Postponed:
    """postpone.lua's answer."""

    given_back: bool
    woke: bool


class Postpone(ScriptBase[Postponed]):
    """Give a leased job back, due again in ``delay_ms``, using no attempt and pausing
    nothing."""

    name = "postpone"
    keys = ("active", "delayed", "events")
    argv = ("job_id", "token", "delay_ms")

    async def __call__(self, *, lease: Lease, delay_ms: int) -> Postponed:
        code, woke = as_list(await self._run(lease.job_id, lease.token, delay_ms))
        return Postponed(given_back=as_int(code) == Status.OK, woke=as_int(woke) == 1)


class Progress(ScriptBase[bool]):
    """Record that an album's first ``sent`` items are in the chat (they are never sent
    again); the lease is kept. False when the lease was lost."""

    name = "progress"
    keys = ()
    argv = ("job_id", "token", "sent")

    async def __call__(self, *, lease: Lease, sent: int) -> bool:
        [code] = as_list(await self._run(lease.job_id, lease.token, sent))
        return as_int(code) == Status.OK
