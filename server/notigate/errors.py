"""notigate's exceptions. The gRPC layer maps each to one status code.

NotigateError
├── JobNotFound          -> NOT_FOUND
├── JobStateConflict     -> FAILED_PRECONDITION
├── IdempotencyKeyReused -> ALREADY_EXISTS
├── ChangeRefused        -> FAILED_PRECONDITION (an edit or delete the message's state rules out)
├── RequestInvalid       -> INVALID_ARGUMENT    (found wrong only against stored state)
├── StoreError           -> INTERNAL            (a Redis error that is a bug: a script error)
│   ├── QueueUnavailable -> UNAVAILABLE         (unreachable, timing out, read-only, MISCONF,
│   │                                            LOADING, BUSY, MASTERDOWN, TRYAGAIN, ...)
│   └── QueueFull        -> RESOURCE_EXHAUSTED  (Redis out of memory)
└── StartupRefused       -> (no RPC: ``notigate serve`` prints it and exits 1)

:func:`store_error` turns any exception of a Redis call (:data:`REDIS_ERRORS`) into one of
the StoreErrors, with a :class:`RedisErrorKind` for logs and metrics and a message fit for
a client (no class names, no Redis internals beyond the error code an operator can look up).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from redis import exceptions as redis_errors


class NotigateError(Exception):
    """Base of every error notigate raises on purpose."""


class JobNotFound(NotigateError):
    """No job has this id (never created, or trimmed by retention)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class ChatNotSuppressed(NotigateError):
    """UnsuppressChat named a chat that is not suppressed."""

    def __init__(self, chat_id: str) -> None:
        super().__init__(f"chat {chat_id} is not suppressed")
        self.chat_id = chat_id


class JobStateConflict(NotigateError):
    """The job's state does not allow the operation (e.g. cancelling a delivered job)."""

    def __init__(self, job_id: str, state: str, operation: str) -> None:
        super().__init__(f"job {job_id} is {state}; {operation} is not possible")
        self.job_id = job_id
        self.state = state
        self.operation = operation


class ChangeRefused(NotigateError):
    """An edit or delete of a message its job's state rules out (never sent, too old)."""

    def __init__(self, job_id: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class RequestInvalid(NotigateError):
    """A request found invalid against what is stored (an edit of a text message into
    media, a send of an upload that does not exist); ``violations`` are BadRequest
    FieldViolations."""

    def __init__(self, violations: list[Any]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


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


class RedisErrorKind(StrEnum):
    """What kind of Redis error it was: the ``kind`` label of notigate_redis_errors_total."""

    CONNECTION = "connection"  # unreachable, timing out, refused the password
    READONLY = "readonly"  # a replica (a failover in progress, or REDIS_URL names a replica)
    MISCONF = "misconf"  # cannot persist (disk full, dir not writable): refuses writes
    LOADING = "loading"  # loading its dataset after a restart
    BUSY = "busy"  # a long script or function holds it
    OOM = "oom"  # maxmemory reached
    REPLICATION = "replication"  # MASTERDOWN, NOREPLICAS: replica link or min-replicas
    CLUSTER = "cluster"  # TRYAGAIN, CLUSTERDOWN: a cluster reshards or lost a slot
    SCRIPT = "script"  # a script failed (NOSCRIPT after a flush, or a bug)
    OTHER = "other"  # anything else (an unexpected reply: a bug or a misconfiguration)


class StoreError(NotigateError):
    """A Redis command failed. Instances of this class itself are unexpected (a bug)."""

    def __init__(self, message: str, kind: RedisErrorKind = RedisErrorKind.OTHER) -> None:
        super().__init__(message)
        self.kind = kind


class QueueUnavailable(StoreError):
    """Redis cannot serve the request now (unreachable, read-only, busy...); retry later."""

    def __init__(self, message: str, kind: RedisErrorKind = RedisErrorKind.CONNECTION) -> None:
        super().__init__(message, kind)


class QueueFull(StoreError):
    """Redis refused the write because it is out of memory."""

    def __init__(self, message: str, kind: RedisErrorKind = RedisErrorKind.OOM) -> None:
        super().__init__(message, kind)


# Error codes Redis answers while it cannot serve for a while: a retry will succeed.
_UNAVAILABLE: dict[str, tuple[RedisErrorKind, str]] = {
    "READONLY": (
        RedisErrorKind.READONLY,
        "Redis is a read-only replica (a failover may be in progress)",
    ),
    "MISCONF": (
        RedisErrorKind.MISCONF,
        "Redis cannot persist to disk and refuses writes (MISCONF)",
    ),
    "LOADING": (RedisErrorKind.LOADING, "Redis is loading its dataset"),
    "BUSY": (RedisErrorKind.BUSY, "Redis is busy running a script"),
    "MASTERDOWN": (
        RedisErrorKind.REPLICATION,
        "Redis has lost the link to its primary (MASTERDOWN)",
    ),
    "NOREPLICAS": (
        RedisErrorKind.REPLICATION,
        "Redis has too few replicas to accept writes (NOREPLICAS)",
    ),
    "TRYAGAIN": (RedisErrorKind.CLUSTER, "the Redis cluster is resharding (TRYAGAIN)"),
    "CLUSTERDOWN": (RedisErrorKind.CLUSTER, "the Redis cluster is down (CLUSTERDOWN)"),
    # A SCRIPT FLUSH between loading a script and calling it: the next call loads it again.
    "NOSCRIPT": (RedisErrorKind.SCRIPT, "a Redis script was flushed meanwhile"),
}
_CONNECTION_MESSAGE = "Redis is unreachable or not answering in time"


def redis_error_code(exc: BaseException) -> str:
    """The error code of a Redis error reply (``READONLY``, ``MISCONF``, ``ERR``...), or "".

    redis-py strips the code from the message of the classes it knows (keeping it in
    ``status_code``) and leaves it in front of the others; a script that failed on a
    command keeps that command's code.
    """
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    head = str(exc).split(" ", 1)[0]
    return head if head.isupper() and head.isalpha() else ""


# What a Redis call may raise: any redis-py error, and OSError. redis-py wraps the socket
# errors of its reads, writes and connects in ConnectionError, but an OSError that slips
# past it (a path or a version that does not wrap) means just as surely that Redis cannot
# be reached, and store_error classifies it so; a loop that must survive Redis catches both.
# The cluster client raises a few errors outside RedisError (RedisClusterException:
# SlotNotCoveredError while the slot map misses a slot, and its client-side refusals).
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis_errors.RedisError,
    redis_errors.RedisClusterException,
    OSError,
)

# Cluster trouble that passes: a failover (CLUSTERDOWN, MASTERDOWN, a slot unserved for a
# moment), a resharding (TRYAGAIN), redirections beyond the client's retries.
_CLUSTER_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ClusterError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    redis_errors.AskError,
)


def store_error(exc: BaseException) -> StoreError:
    """The StoreError for a redis-py exception (``exc``), classified by its error code."""
    if isinstance(exc, StoreError):
        return exc
    code = redis_error_code(exc)
    if code in _UNAVAILABLE:
        kind, message = _UNAVAILABLE[code]
        return QueueUnavailable(message, kind)
    if isinstance(exc, _CLUSTER_UNAVAILABLE):
        return QueueUnavailable(
            "the Redis cluster cannot serve the queue's slot now (a failover or a "
            "resharding in progress)",
            RedisErrorKind.CLUSTER,
        )
    if code == "OOM" or isinstance(exc, redis_errors.OutOfMemoryError):
        return QueueFull("Redis is out of memory (maxmemory reached)")
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError):
        return QueueUnavailable(_CONNECTION_MESSAGE)
    detail = str(exc)[:300]
    if "script" in detail or "user_script" in detail:
        return StoreError(f"a Redis script failed: {detail}", RedisErrorKind.SCRIPT)
    return StoreError(f"unexpected Redis error: {detail}", RedisErrorKind.OTHER)


class StartupRefused(NotigateError):
    """The gateway must not start: its port or data dir belongs to another process.

    The message is one line for the operator, naming what is taken and, when known,
    the pid holding it.
    """
