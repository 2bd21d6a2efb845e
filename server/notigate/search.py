"""SearchJobs' walk: one bot's retained jobs by chat (its index) or by text (the state
indexes, newest first within each, a bounded number examined per call).

A call examines at most :data:`MAX_EXAMINED` index entries, in script calls of at most
:data:`STEP`, so its cost does not grow with the number of jobs retained; the page token
says where the next call goes on. The script lets through the jobs whose payload bytes
may hold the text (:meth:`TextQuery.prefilter`); the exact check runs here, decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from notigate.job_views import PB_TO_STATE, STATE_TO_PB
from notigate.queue import JobRecord, ListCursor, Queue
from notigate.search_token import SearchToken, Walk
from notigate.text_search import TextQuery

__all__ = ["MAX_EXAMINED", "STEP", "SearchPage", "search_jobs"]

MAX_EXAMINED = 5_000
STEP = 1_000
# The state indexes a search by text walks, in JobState's order.
_STATES: list[int] = list(STATE_TO_PB.values())


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Matches newest first, where the search goes on (None: nothing left to examine)
    and how many index entries this call examined."""

    jobs: list[JobRecord]
    token: SearchToken | None
    examined: int


async def search_jobs(
    queue: Queue,
    *,
    chat_id: str,
    query: TextQuery,
    size: int,
    token: SearchToken | None,
    max_examined: int = MAX_EXAMINED,
    step: int = STEP,
) -> SearchPage:
    """One page of the jobs of ``chat_id`` ('' = any chat; then ``query`` must be set)
    whose text holds ``query``, continuing at ``token``."""
    walk = Walk.CHAT if chat_id else Walk.STATES
    states = [0] if walk is Walk.CHAT else _STATES
    at = states.index(token.state) if token and walk is Walk.STATES else 0
    after = ListCursor(token.score, token.job_id) if token and token.job_id else None
    needle, extra = query.prefilter()
    jobs: list[JobRecord] = []
    examined = 0
    while len(jobs) < size and examined < max_examined:
        limit = min(step, max_examined - examined)
        if not query.text:
            limit = min(limit, size - len(jobs))
        index = (
            queue.keys.chat_jobs(chat_id)
            if walk is Walk.CHAT
            else queue.keys.index(PB_TO_STATE[states[at]])
        )
        found = await queue.search(index, after, limit, chat_id=chat_id, needle=needle, extra=extra)
        stopped = False
        for candidate in found.candidates:
            if query.matches(candidate.job.payload):
                jobs.append(candidate.job)
                if len(jobs) == size:
                    # The page is full: the next call starts after this job.
                    examined += candidate.examined
                    after = candidate.position
                    stopped = True
                    break
        if stopped:
            break
        examined += found.examined
        after = found.cursor
        if after is None:
            at += 1
            if at == len(states):
                return SearchPage(jobs, None, examined)
    if walk is Walk.CHAT:
        # A chat walk stops after a job it examined (it starts with one).
        assert after is not None
        return SearchPage(jobs, SearchToken(walk, 0, after.score, after.job_id), examined)
    position = after or ListCursor(0.0, "")
    return SearchPage(
        jobs, SearchToken(walk, states[at], position.score, position.job_id), examined
    )
