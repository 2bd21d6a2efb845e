"""ListJobEvents: one job's events, oldest first, from the part of its bot's stream that
can hold them.

Stream ids are Redis's clock in ms, and every script stamps a job's hash with the same
clock, so the job's events lie between its creation (``c``) and its last change (``u``):
only that stretch is read, in pages, keeping this job's entries. A call reads at most
:data:`MAX_SCANNED` entries, so a job that lived long on a busy stream costs several
calls (a page may be empty and still have a next one), never one unbounded read.
"""

from __future__ import annotations

from dataclasses import dataclass

from notigate.events.entries import event_of_entry
from notigate.events.stream import EventStream, cursor_key
from notigate.queue import JobRecord
from notigate_client import pb

__all__ = ["MAX_SCANNED", "JobEvents", "job_events"]

MAX_SCANNED = 10_000
_READ = 1_000


@dataclass(frozen=True, slots=True)
class JobEvents:
    """A page of the job's events; the cursor to go on after ('' = the last page); and
    whether the stream lost the job's earliest events."""

    events: list[pb.Event]
    next_cursor: str
    trimmed: bool


async def job_events(
    stream: EventStream,
    job: JobRecord,
    after: str,
    size: int,
    *,
    max_scanned: int = MAX_SCANNED,
) -> JobEvents:
    """Up to ``size`` events of ``job`` after the cursor ``after`` ('' = from the job's
    creation)."""
    wanted = job.job_id.encode()
    start = f"({after}" if after else f"{job.created_ms}-0"
    # The whole ms of the last change, and the one after it: an entry's id may run a
    # little ahead of the script's clock when several scripts write in one ms.
    end = str(job.updated_ms + 1)
    events: list[pb.Event] = []
    scanned = 0
    cursor = ""
    done = False
    while not done and scanned < max_scanned and len(events) < size:
        want = min(_READ, max_scanned - scanned)
        entries = await stream.between(start, end, want)
        for entry_id, fields in entries:
            scanned += 1
            cursor = entry_id
            if fields.get(b"j") == wanted:
                events.append(event_of_entry(entry_id, fields))
                if len(events) == size:
                    break
        # Fewer than asked for: the stretch is read to its end (unless the page filled
        # before its last entry).
        done = len(entries) < want and (not entries or cursor == entries[-1][0])
        start = f"({cursor}"
    first = await stream.first()
    trimmed = first is None or cursor_key(first)[0] > job.created_ms
    more = not done and bool(cursor) and await _more_after(stream, cursor, end)
    return JobEvents(events, cursor if more else "", trimmed)


async def _more_after(stream: EventStream, cursor: str, end: str) -> bool:
    return bool(await stream.between(f"({cursor}", end, 1))
