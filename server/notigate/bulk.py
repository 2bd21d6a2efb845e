"""RetryJobs and CancelJobs: act on every job that matches a filter (AIP-165 style).

The state indexes are walked in pages (``lua/select.lua``, keyset paging like ListJobs), so
memory stays bounded by a page however many jobs a state holds, and Redis is never held
for longer than one page. Each matching job is then changed by the same per-job script
RetryJob and CancelJob use (many calls per round trip), so a job that changed state since
its page was read is skipped, never forced.

One call acts on at most :data:`MAX_JOBS_PER_CALL` jobs, which bounds its run time: a caller
whose count comes back equal to it calls again for the rest (the jobs acted on have left
the state, so the next call starts with the others). ``validate_only`` counts every match,
without that bound, and changes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from notigate.queue import JobState, ListCursor, Queue
from notigate.queue.job_ids import number_of
from notigate_client import pb

__all__ = ["MAX_JOBS_PER_CALL", "SAMPLE_SIZE", "BulkOutcome", "cancel_jobs", "retry_jobs"]

MAX_JOBS_PER_CALL = 10_000
SAMPLE_SIZE = 10
# Index entries examined per script call: short enough never to stall Redis, long enough
# that a walk of a million jobs is a few hundred round trips.
PAGE = 1000

Action = Callable[[list[str]], Awaitable[list[bool]]]


@dataclass
class BulkOutcome:
    """How many jobs matched (or were acted on) and the oldest of them."""

    count: int = 0
    # Min-heap of the oldest ids by creation order (the ids of one bot end in a sequence):
    # the negated numbers of at most SAMPLE_SIZE jobs, with their ids, so the largest of
    # them is popped first.
    _oldest: list[tuple[int, str]] = field(default_factory=list)

    def add(self, job_ids: Sequence[str], count: int | None = None) -> None:
        """Count ``job_ids`` (or ``count`` jobs of which they are the oldest) and keep
        the oldest of them for the sample."""
        self.count += len(job_ids) if count is None else count
        for job_id in job_ids:
            value = (-(number_of(job_id) or 0), job_id)
            if len(self._oldest) < SAMPLE_SIZE:
                heapq.heappush(self._oldest, value)
            elif value > self._oldest[0]:
                heapq.heapreplace(self._oldest, value)

    @property
    def sample(self) -> list[str]:
        """Up to SAMPLE_SIZE job ids, oldest first."""
        return [job_id for _, job_id in sorted(self._oldest, reverse=True)]


def _requested(chat_id: str, undecided: list[tuple[str, bytes]]) -> list[str]:
    # Jobs now in the supergroup `chat_id` migrated to: they match if sent to `chat_id`.
    return [i for i, payload in undecided if pb.SendRequest.FromString(payload).chat_id == chat_id]


async def _walk(
    queue: Queue,
    states: Sequence[JobState],
    chat_id: str,
    act: Action | None,
    limit: int | None,
    page_size: int,
) -> BulkOutcome:
    if (limit is not None and limit < 1) or page_size < 1:
        raise ValueError("limit and page_size must be positive")
    outcome = BulkOutcome()
    # A job retried here can fail again and re-enter the index further on: act once.
    done: set[str] = set()
    for state in states:
        after: ListCursor | None = None
        while True:
            # Counting needs only the number of matches and the oldest of them.
            sample = SAMPLE_SIZE if act is None else 0
            page = await queue.select(state, chat_id, after, page_size, sample)
            requested = _requested(chat_id, page.undecided)
            if act is None:
                outcome.add(page.job_ids + requested, page.matched + len(requested))
            else:
                pending = [i for i in page.job_ids + requested if i not in done]
                while pending:
                    # Never more than the call may still act on: a skipped job leaves
                    # room for the next of the page, not for the job after the limit.
                    room = len(pending) if limit is None else limit - outcome.count
                    batch, pending = pending[:room], pending[room:]
                    changed = await act(batch)
                    acted = [i for i, ok in zip(batch, changed, strict=True) if ok]
                    done.update(acted)
                    outcome.add(acted)
                    if limit is not None and outcome.count >= limit:
                        return outcome
            if page.cursor is None:
                break
            after = page.cursor
    return outcome


async def retry_jobs(
    queue: Queue,
    chat_id: str,
    *,
    validate_only: bool,
    limit: int = MAX_JOBS_PER_CALL,
    page_size: int = PAGE,
) -> BulkOutcome:
    """Queue failed jobs of ``chat_id`` ('' = every chat) again, oldest failure first."""
    failed = [JobState.FAILED]
    if validate_only:
        return await _walk(queue, failed, chat_id, None, None, page_size)
    outcome = await _walk(queue, failed, chat_id, queue.requeue_many, limit, page_size)
    if outcome.count:
        await queue.wake()
    return outcome


async def cancel_jobs(
    queue: Queue,
    states: Sequence[JobState],
    chat_id: str,
    *,
    validate_only: bool,
    limit: int = MAX_JOBS_PER_CALL,
    page_size: int = PAGE,
) -> BulkOutcome:
    """Cancel the jobs in ``states`` (waiting and/or delayed) of ``chat_id`` ('' = all)."""
    if validate_only:
        return await _walk(queue, states, chat_id, None, None, page_size)

    async def cancel(job_ids: list[str]) -> list[bool]:
        return await queue.cancel_many(job_ids, states)

    return await _walk(queue, states, chat_id, cancel, limit, page_size)
