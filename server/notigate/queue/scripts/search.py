"""SearchJobs' read of an index: one bounded step of a state's or a chat's jobs, newest
first, with the jobs that may match (see search.lua)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notigate.queue.records import JobRecord, ListCursor, decode_job_hash
from notigate.queue.scripts.base import ScriptBase, as_hash, as_int, as_list, as_str
from notigate.queue.scripts.config import ScriptConfig


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job a search step let through, where it sits in the index and how many entries
    the step had examined up to and including it."""

    job: JobRecord
    position: ListCursor
    examined: int


@dataclass(frozen=True, slots=True)
class SearchStep:
    """What one step examined: ``examined`` entries, the ``candidates`` among them (in
    index order), and where the next step starts (None: the index holds nothing further)."""

    candidates: list[Candidate]
    examined: int
    cursor: ListCursor | None
    # The step's last entry (None when it examined nothing).
    last: ListCursor | None


class Search(ScriptBase[SearchStep]):
    """The next entries of an index, newest first, and the jobs that may match."""

    config: ScriptConfig
    name = "search"
    keys = ("index",)
    argv = ("limit", "after_score", "after_id", "chat", "needle", "extra...")

    async def __call__(
        self,
        *,
        index: str,
        chat_id: str,
        after: ListCursor | None,
        limit: int,
        needle: bytes,
        extra: Sequence[bytes],
    ) -> SearchStep:
        cursor_args = (repr(after.score), after.job_id) if after else ("", "")
        reply = as_list(
            await self._run(
                limit, *cursor_args, chat_id, needle, *extra, call_keys={"index": index}
            )
        )
        candidates: list[Candidate] = []
        for i in range(4, len(reply), 4):
            job_id = as_str(reply[i])
            job = decode_job_hash(job_id, as_hash(reply[i + 3]), self.config.max_attempts)
            position = ListCursor(float(as_str(reply[i + 1])), job_id)
            candidates.append(Candidate(job, position, as_int(reply[i + 2])))
        last = None
        if as_str(reply[1]):
            last = ListCursor(float(as_str(reply[2])), as_str(reply[1]))
        cursor = last if as_int(reply[0]) == 1 else None
        return SearchStep(candidates, as_int(reply[3]), cursor, last)
