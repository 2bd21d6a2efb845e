"""WatchEvents: the events after a cursor that match a request's filters, then every new
one as it comes.

Each watcher reads the stream itself (XRANGE after its own cursor, on the shared
client) and, once caught up, waits on the gateway's one :class:`EventTail`. A watcher
whose client reads slowly only delays its own reads (gRPC's flow control holds its
loop): the workers never wait for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

from notigate.events.entries import event_of_entry
from notigate.events.stream import EventStream, EventTail
from notigate_client import pb

__all__ = ["EventFilter", "watch"]

# Entries read per round trip, and how long a caught-up watcher waits before reading
# again though the tail announced nothing (it may have missed an entry while down).
PAGE = 500
IDLE_READ_S = 1.0


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a watcher wants; empty fields match everything."""

    job_ids: Collection[str] = frozenset()
    states: Collection[int] = frozenset()
    chat_id: str = ""

    def matches(self, event: pb.Event) -> bool:
        return (
            (not self.job_ids or event.job_id in self.job_ids)
            and (not self.states or event.state in self.states)
            and (not self.chat_id or event.chat_id == self.chat_id)
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
            event = event_of_entry(entry_id, fields)
            if wanted.matches(event):
                yield pb.WatchEventsResponse(event=event, gap=gap)
                gap = False
        if len(page.entries) < PAGE:
            await tail.wait_after(cursor, IDLE_READ_S)
