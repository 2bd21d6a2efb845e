"""WatchEvents: the events after a cursor that match a request's filters, then every new
one as it comes.

Each watcher reads the stream itself (XRANGE after its own cursor, on the shared
client) and, once caught up, waits on the gateway's one :class:`EventTail`. A watcher
whose client reads slowly only delays its own reads (gRPC's flow control holds its
loop): the workers never wait for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass

from notigate.events.entries import event_of_entry
from notigate.events.stream import EventStream, EventTail
from notigate.job_views import PB_TO_STATE
from notigate.queue.records import STATE_LETTERS
from notigate_client import pb

__all__ = ["EventFilter", "watch"]

# Entries read per round trip, and how long a caught-up watcher waits before reading
# again though the tail announced nothing (it may have missed an entry while down).
PAGE = 500
IDLE_READ_S = 1.0


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a watcher wants; empty fields match everything. It is matched on the
    stream entry's raw fields, before an entry becomes a ``pb.Event``: a watcher of a
    few jobs costs little per entry it skips."""

    job_ids: frozenset[bytes] = frozenset()
    # State letters as stored (notigate.queue.records.STATE_LETTERS).
    states: frozenset[bytes] = frozenset()
    chat_id: bytes = b""

    @classmethod
    def of(cls, job_ids: Collection[str], states: Collection[int], chat_id: str) -> EventFilter:
        """The filter of a WatchEvents request's fields."""
        return cls(
            job_ids=frozenset(j.encode() for j in job_ids),
            states=frozenset(STATE_LETTERS[PB_TO_STATE[s]].encode() for s in states),
            chat_id=chat_id.encode(),
        )

    def matches(self, fields: Mapping[bytes, bytes]) -> bool:
        return (
            (not self.job_ids or fields.get(b"j", b"") in self.job_ids)
            and (not self.states or fields.get(b"s", b"") in self.states)
            and (not self.chat_id or fields.get(b"c", b"") == self.chat_id)
        )


async def watch(
    stream: EventStream, tail: EventTail, after: str, wanted: EventFilter
) -> AsyncIterator[pb.WatchEventsResponse]:
    """The responses of one watcher starting after ``after``, forever."""
    cursor = after
    gap = False
    while True:
        page = await stream.read(cursor, PAGE)
        gap = gap or page.gap
        for entry_id, fields in page.entries:
            cursor = entry_id
            if wanted.matches(fields):
                yield pb.WatchEventsResponse(event=event_of_entry(entry_id, fields), gap=gap)
                gap = False
        if len(page.entries) < PAGE:
            await tail.wait_after(cursor, IDLE_READ_S)
