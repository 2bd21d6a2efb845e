"""Reading the event stream: pages after a cursor, the newest position, and a tail that
wakes readers when entries arrive.

A cursor is a stream entry id. A reader at cursor P missed events when P's own entry
is gone, trimmed by count or age: the stream's first entry is then after P (entries
are trimmed oldest first). That is the gap the API reports; a reader that has never
seen an event ("0-0") cannot have missed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from notigate.errors import StoreError
from notigate.queue.scripts import store_errors

log = logging.getLogger(__name__)

__all__ = ["BEGINNING", "Entry", "EventPage", "EventStream", "EventTail", "cursor_key"]

# The position before any event.
BEGINNING = "0-0"
# How long one blocking read of the tail waits (it loops): short enough to notice a stop.
_TAIL_BLOCK_MS = 1000
_TAIL_RETRY_S = 0.5

Entry = tuple[str, Mapping[bytes, bytes]]


def cursor_key(cursor: str) -> tuple[int, int]:
    """A cursor as a sortable pair (milliseconds, sequence)."""
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class EventPage:
    """Entries after a cursor, oldest first, and whether some were trimmed before them."""

    entries: list[Entry]
    gap: bool


def _entries(raw: Any) -> list[Entry]:
    return [(entry_id.decode(), fields) for entry_id, fields in raw or ()]


class EventStream:
    """The event stream at ``key``, read through ``redis`` (commands that never block)."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key

    async def position(self) -> str:
        """The newest entry's cursor (BEGINNING when there never was one): a reader
        starting there sees only later events."""
        async with store_errors():
            newest = await self.redis.xrevrange(self.key, "+", "-", count=1)
        if newest:
            return _entries(newest)[0][0]
        return BEGINNING

    async def read(self, after: str, count: int) -> EventPage:
        """Up to ``count`` entries after ``after``."""
        async with store_errors(), self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(self.key, f"({after}" if after != BEGINNING else "-", "+", count=count)
            pipe.xrange(self.key, "-", "+", count=1)
            page, first = await pipe.execute()
        entries = _entries(page)
        gap = False
        if after != BEGINNING and first:
            gap = cursor_key(first[0][0].decode()) > cursor_key(after)
        return EventPage(entries, gap)

    async def between(self, start: str, end: str, count: int) -> list[Entry]:
        """Up to ``count`` entries from ``start`` to ``end`` (XRANGE's bounds: an id, a
        bare ms, ``(`` for exclusive)."""
        async with store_errors():
            return _entries(await self.redis.xrange(self.key, start, end, count=count))

    async def first(self) -> str | None:
        """The oldest entry's cursor (None: the stream is empty or absent)."""
        async with store_errors():
            oldest = await self.redis.xrange(self.key, "-", "+", count=1)
        return _entries(oldest)[0][0] if oldest else None


class EventTail:
    """One blocking reader of the stream per gateway: readers that caught up wait here
    for the next entry instead of each holding a blocking connection of its own.

    ``redis`` must allow blocking reads of ``block_ms`` (no shorter socket timeout).
    """

    def __init__(self, redis: Redis, key: str, *, block_ms: int = _TAIL_BLOCK_MS) -> None:
        self.redis = redis
        self.key = key
        self.block_ms = block_ms
        self._newest: tuple[int, int] = (0, 0)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notigate-event-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def wait_after(self, cursor: str, timeout_s: float) -> None:
        """Return once an entry after ``cursor`` is known to exist, or after ``timeout_s``
        (the caller reads again either way: the tail may have been down meanwhile)."""
        self.start()
        wanted = cursor_key(cursor)

        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self._newest > wanted)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived(), timeout_s)

    async def _run(self) -> None:
        last = "$"
        while True:
            try:
                async with store_errors():
                    reply = await self.redis.xread(
                        {self.key: last}, count=1000, block=self.block_ms
                    )
            except StoreError as exc:
                log.debug("event tail: %s; reading again", exc)
                await asyncio.sleep(_TAIL_RETRY_S)
                continue
            for _stream, raw in cast(list[Any], reply or []):
                entries = _entries(raw)
                if entries:
                    last = entries[-1][0]
                    async with self._changed:
                        self._newest = max(self._newest, cursor_key(last))
                        self._changed.notify_all()
