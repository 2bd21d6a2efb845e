"""The Redis queue: the records, the keys, one typed wrapper per Lua script
(:mod:`notigate.queue.scripts`) and :class:`Queue`, which the gateway calls.

Layers inside the package: ``records``, ``keys`` and ``monitor`` < ``scripts`` < ``_queue``.
"""

from __future__ import annotations

from notigate.queue._queue import Queue
from notigate.queue.connection import redis_client
from notigate.queue.keys import SCHEMA_VERSION, QueueKeys
from notigate.queue.records import (
    FINGERPRINT_LEN,
    STATE_LETTERS,
    CompletedSend,
    Enqueued,
    EnqueueOutcome,
    JobKind,
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
    fingerprint,
)
from notigate.queue.scripts.search import Candidate, SearchStep

__all__ = [
    "FINGERPRINT_LEN",
    "SCHEMA_VERSION",
    "STATE_LETTERS",
    "Candidate",
    "CompletedSend",
    "EnqueueOutcome",
    "Enqueued",
    "JobKind",
    "JobRecord",
    "JobState",
    "Lease",
    "LeaseBatch",
    "ListCursor",
    "NewJob",
    "Queue",
    "QueueKeys",
    "QueueStats",
    "Recorded",
    "RetryOutcome",
    "SearchStep",
    "Selected",
    "SuppressedChat",
    "SuppressionCursor",
    "fingerprint",
    "redis_client",
]
