"""One typed wrapper per webhook script, on the queue's :class:`ScriptBase`.

A webhook script takes :class:`~notigate.webhooks.keys.WebhookKeys` and the
:class:`~notigate.webhooks.policy.WebhookPolicy` (ARGV[1] the prefix, ARGV[2] the
packed policy, ``cfg`` in Lua) and its text from this package's ``lua/``. Calling,
loading and the translation of Redis errors are ScriptBase's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from redis.asyncio import Redis

from notigate.queue.scripts.base import ScriptBase, as_int, as_list, as_str
from notigate.webhooks.keys import WebhookKeys
from notigate.webhooks.policy import WebhookPolicy
from notigate.webhooks.source import source

T = TypeVar("T", covariant=True)


class WebhookCode(IntEnum):
    """What a webhook script answers (Lua constants of the same names)."""

    OK = 1
    # join: the group did not exist and was created at the stream's end.
    JOINED = 2
    # retry: the event waits for its next attempt.
    RETRY = 3
    # retry: the event was too old to try again; it is undeliverable now.
    GAVE_UP = 4
    # ack, retry: the event is no longer its job's first pending one.
    STALE = -1


@dataclass(frozen=True, slots=True)
class Intook:
    """What one intake did."""

    read: int
    stored: int
    # The stream's newest cursor ("0-0" when it never had an entry).
    last: str
    # Entries trimmed before they were read: after cursor `after`, before `before`
    # ("" when the stream is empty now).
    trimmed: int
    after: str
    before: str
    # Events in the outbox after it (stored, not yet acknowledged).
    pending: int


@dataclass(frozen=True, slots=True)
class Leased:
    """One job's first pending event, leased for sending."""

    job_id: str
    cursor: str
    # The stream entry's fields, as notigate.events.event_of_entry takes them.
    fields: dict[bytes, bytes]
    # Failed attempts so far.
    tries: int


@dataclass(frozen=True, slots=True)
class Lease:
    """The events leased, and when the next job not leased is due."""

    items: list[Leased]
    # ms until then; None: nothing is pending.
    wait_ms: int | None


@dataclass(frozen=True, slots=True)
class Retried:
    code: WebhookCode
    tries: int


def _fields(packed: str) -> dict[bytes, bytes]:
    decoded = json.loads(packed)
    return {str(k).encode(): str(v).encode() for k, v in decoded.items()}


class WebhookScript(ScriptBase[T]):
    """One webhook script, registered on one client for one queue."""

    codes: ClassVar[tuple[type[IntEnum], ...]] = (WebhookCode,)

    def __init__(self, redis: Redis, keys: WebhookKeys, policy: WebhookPolicy) -> None:
        super().__init__(redis, keys, policy)

    @classmethod
    def text(cls) -> str:
        return source(cls.name, cls.codes)


class Join(WebhookScript[WebhookCode]):
    """Create the consumer group at the stream's end unless it exists (OK, JOINED)."""

    name = "join"
    keys = ("events", "state")
    argv = ()

    async def __call__(self) -> WebhookCode:
        return WebhookCode(as_int(await self._run()))


class Intake(WebhookScript[Intook]):
    """Read the next entries into the outbox."""

    name = "intake"
    keys = ("events", "outbox", "times", "due", "state", "dead")
    argv = ("count",)

    async def __call__(self, *, count: int) -> Intook:
        r = as_list(await self._run(count))
        return Intook(
            read=as_int(r[0]),
            stored=as_int(r[1]),
            last=as_str(r[2]),
            trimmed=as_int(r[3]),
            after=as_str(r[4]),
            before=as_str(r[5]),
            pending=as_int(r[6]),
        )


class LeaseJobs(WebhookScript[Lease]):
    """Lease up to ``count`` due jobs' first pending events."""

    name = "lease"
    keys = ("outbox", "times", "due", "tries")
    argv = ("count",)

    async def __call__(self, *, count: int) -> Lease:
        r = as_list(await self._run(count))
        wait = as_int(r[0])
        items = [
            Leased(as_str(r[i]), as_str(r[i + 1]), _fields(as_str(r[i + 2])), as_int(r[i + 3]))
            for i in range(1, len(r), 4)
        ]
        return Lease(items, None if wait < 0 else wait)


class Ack(WebhookScript[WebhookCode]):
    """The receiver acknowledged an event (OK, STALE)."""

    name = "ack"
    keys = ("outbox", "times", "due", "tries", "state")
    argv = ("job", "cursor")

    async def __call__(self, *, job_id: str, cursor: str) -> WebhookCode:
        return WebhookCode(as_int(await self._run(job_id, cursor)))


class Retry(WebhookScript[Retried]):
    """A POST failed: retry later, or give the event up (RETRY, GAVE_UP, STALE)."""

    name = "retry"
    keys = ("outbox", "times", "due", "tries", "state", "dead")
    argv = ("job", "cursor", "delay", "error")

    async def __call__(self, *, job_id: str, cursor: str, delay_ms: int, error: str) -> Retried:
        r = as_list(await self._run(job_id, cursor, delay_ms, error))
        return Retried(WebhookCode(as_int(r[0])), as_int(r[1]))


class Release(WebhookScript[WebhookCode]):
    """Make leased jobs due now (a stopping sender's unanswered POSTs)."""

    name = "release"
    keys = ("due",)
    argv = ("jobs...",)

    async def __call__(self, *, job_ids: Sequence[str]) -> WebhookCode:
        return WebhookCode(as_int(await self._run(*job_ids)))


@dataclass(frozen=True, slots=True)
class WebhookScripts:
    """Every webhook script of one queue, registered on one client."""

    join: Join
    intake: Intake
    lease: LeaseJobs
    ack: Ack
    retry: Retry
    release: Release

    @classmethod
    def register(cls, redis: Redis, keys: WebhookKeys, policy: WebhookPolicy) -> WebhookScripts:
        on = (redis, keys, policy)
        return cls(Join(*on), Intake(*on), LeaseJobs(*on), Ack(*on), Retry(*on), Release(*on))

    def all(self) -> list[WebhookScript[object]]:
        return [self.join, self.intake, self.lease, self.ack, self.retry, self.release]

    async def load(self) -> None:
        """Send every script to Redis now, so a syntax error shows at startup."""
        for script in self.all():
            await script.load()
