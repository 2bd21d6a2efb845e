"""The queue's Lua scripts, one typed wrapper each (see :mod:`.base`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from redis.asyncio import Redis

from notigate.queue.keys import QueueKeys
from notigate.queue.scripts.base import ScriptBase, store_errors
from notigate.queue.scripts.config import ScriptConfig
from notigate.queue.scripts.lease import Dequeue, Extend
from notigate.queue.scripts.manage import (
    Cancel,
    Changed,
    ListPage,
    Requeue,
    Rewrite,
    RewriteCode,
    Rewritten,
    Select,
    Unsuppress,
)
from notigate.queue.scripts.outcome import (
    Complete,
    Defer,
    Deferred,
    Fail,
    Migrate,
    Postpone,
    Postponed,
    Progress,
    Retried,
    Retry,
)
from notigate.queue.scripts.produce import Enqueue, EnqueueCode, EnqueueReply
from notigate.queue.scripts.sample import Sample
from notigate.queue.scripts.search import Candidate, Search, SearchStep
from notigate.queue.scripts.status import Status, to_error

__all__ = [
    "Candidate",
    "Changed",
    "Deferred",
    "EnqueueCode",
    "EnqueueReply",
    "Postponed",
    "QueueScripts",
    "Retried",
    "RewriteCode",
    "Rewritten",
    "ScriptBase",
    "ScriptConfig",
    "SearchStep",
    "Status",
    "store_errors",
    "to_error",
]


@dataclass(frozen=True, slots=True)
class QueueScripts:
    """Every script of one queue, registered on one client."""

    enqueue: Enqueue
    dequeue: Dequeue
    extend: Extend
    complete: Complete
    retry: Retry
    fail: Fail
    defer: Defer
    migrate: Migrate
    cancel: Cancel
    requeue: Requeue
    list_page: ListPage
    select: Select
    search: Search
    postpone: Postpone
    progress: Progress
    rewrite: Rewrite
    unsuppress: Unsuppress
    sample: Sample

    @classmethod
    def register(cls, redis: Redis, keys: QueueKeys, config: ScriptConfig) -> QueueScripts:
        """Every wrapper, for the queue of ``keys`` run with ``config``."""
        on = (redis, keys, config)
        return cls(
            enqueue=Enqueue(*on),
            dequeue=Dequeue(*on),
            extend=Extend(*on),
            complete=Complete(*on),
            retry=Retry(*on),
            fail=Fail(*on),
            defer=Defer(*on),
            migrate=Migrate(*on),
            cancel=Cancel(*on),
            requeue=Requeue(*on),
            list_page=ListPage(*on),
            select=Select(*on),
            search=Search(*on),
            postpone=Postpone(*on),
            progress=Progress(*on),
            rewrite=Rewrite(*on),
            unsuppress=Unsuppress(*on),
            sample=Sample(*on),
        )

    def all(self) -> list[ScriptBase[object]]:
        """Every wrapper."""
        return [getattr(self, f.name) for f in fields(self)]

    async def load(self) -> None:
        """Send every script to Redis now, so a syntax error shows at startup."""
        for script in self.all():
            await script.load()
