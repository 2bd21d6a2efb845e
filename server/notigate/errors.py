"""notigate's exceptions. The gRPC layer maps each to one status code.

NotigateError
├── JobNotFound          -> NOT_FOUND
├── JobStateConflict     -> FAILED_PRECONDITION
├── IdempotencyKeyReused -> ALREADY_EXISTS
├── QueueUnavailable     -> UNAVAILABLE         (Redis unreachable or timing out)
├── QueueFull            -> RESOURCE_EXHAUSTED  (Redis out of memory)
└── StartupRefused       -> (no RPC: ``notigate serve`` prints it and exits 1)
"""

from __future__ import annotations


class NotigateError(Exception):
    """Base of every error notigate raises on purpose."""


class JobNotFound(NotigateError):
    """No job has this id (never created, or trimmed by retention)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class JobStateConflict(NotigateError):
    """The job's state does not allow the operation (e.g. cancelling a delivered job)."""

    def __init__(self, job_id: str, state: str, operation: str) -> None:
        super().__init__(f"job {job_id} is {state}; {operation} is not possible")
        self.job_id = job_id
        self.state = state
        self.operation = operation


class IdempotencyKeyReused(NotigateError):
    """An idempotency key came with a different message than the one it was first used for.

    Nothing was stored for the message (for a batch: nothing at all). ``job_id`` is the job
    the key was first used for; it is "" when that first use is an earlier message of the
    same batch (``first_index``), which was not stored either. ``index`` is the message's
    position in its batch (None for a single Send); ``others`` counts further conflicting
    messages of the batch.
    """

    def __init__(
        self,
        key: str,
        job_id: str,
        *,
        index: int | None = None,
        first_index: int | None = None,
        others: int = 0,
    ) -> None:
        where = f"messages[{index}]: " if index is not None else ""
        if job_id:
            first = f"job {job_id}"
        elif first_index is not None:
            first = f"messages[{first_index}] of this batch"
        else:
            first = "an earlier message"
        message = (
            f"{where}idempotency_key {key!r} was already used for a different message"
            f" ({first}); repeat the same request to get that job, or use a new key"
        )
        if others:
            message += f" (and {others} more conflicting messages)"
        if index is not None:
            message += "; nothing of the batch was stored"
        super().__init__(message)
        self.key = key
        self.job_id = job_id
        self.index = index
        self.first_index = first_index
        self.others = others


class QueueUnavailable(NotigateError):
    """Redis cannot be reached or did not answer in time."""


class QueueFull(NotigateError):
    """Redis refused the write because it is out of memory."""


class StartupRefused(NotigateError):
    """The gateway must not start: its port or data dir belongs to another process.

    The message is one line for the operator, naming what is taken and, when known,
    the pid holding it.
    """
