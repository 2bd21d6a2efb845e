"""notigate's exceptions. The gRPC layer maps each to one status code.

NotigateError
├── JobNotFound          -> NOT_FOUND
├── JobStateConflict     -> FAILED_PRECONDITION
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


class QueueUnavailable(NotigateError):
    """Redis cannot be reached or did not answer in time."""


class QueueFull(NotigateError):
    """Redis refused the write because it is out of memory."""


class StartupRefused(NotigateError):
    """The gateway must not start: its port or data dir belongs to another process.

    The message is one line for the operator, naming what is taken and, when known,
    the pid holding it.
    """
