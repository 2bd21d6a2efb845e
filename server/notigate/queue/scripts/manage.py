"""What operators do to jobs: ``cancel``, ``requeue``, and the read-only walks ``list``
and ``select`` over a state's index; and to chats: ``unsuppress``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from notigate.queue.records import (
    STATE_LETTERS,
    STATE_OF_LETTER,
    JobRecord,
    JobState,
    ListCursor,
    Selected,
    SuppressedChat,
    decode_job_hash,
)
from notigate.queue.scripts.base import (
    Reply,
    ScriptBase,
    as_bytes,
    as_hash,
    as_int,
    as_list,
    as_str,
)
from notigate.queue.scripts.config import ScriptConfig
from notigate.queue.scripts.status import Status


@dataclass(frozen=True, slots=True)
class Changed:
    """The answer of a management script about one job."""

    status: Status
    # The job's state after the call ("" when there is no such job); on WRONG_STATE, the
    # state that refused the change.
    state: str
    # The job as the script left it (single calls only, when the change was made).
    job: JobRecord | None = None
    # The other replicas were woken: the caller wakes its own workers.
    woke: bool = False


def _changed(
    job_id: str, reply: list[Reply], hash_at: int, max_attempts: int, woke: bool = False
) -> Changed:
    letter = as_str(reply[1])
    state = STATE_OF_LETTER[letter].value if letter in STATE_OF_LETTER else letter
    job = None
    if len(reply) > hash_at:
        job = decode_job_hash(job_id, as_hash(reply[hash_at]), max_attempts)
    return Changed(Status(as_int(reply[0])), state, job, woke)


def _done(replies: list[Reply]) -> list[bool]:
    """Per reply of a bulk call: was the change made?"""
    return [as_int(as_list(r)[0]) == Status.OK for r in replies]


class Cancel(ScriptBase[Changed]):
    """Cancel a waiting or delayed job."""

    config: ScriptConfig

    name = "cancel"
    keys = ("waiting", "delayed", "cancelled", "ready", "paced", "stats", "events")
    argv = ("job_id", "only", "bulk")

    async def __call__(self, *, job_id: str) -> Changed:
        reply = as_list(await self._run(job_id, "", "0"))
        return _changed(job_id, reply, 2, self.config.max_attempts)

    async def many(self, *, job_ids: Sequence[str], only: Sequence[JobState]) -> list[bool]:
        """Cancel each job still in one of ``only``; True where this call cancelled it."""
        letters = "".join(STATE_LETTERS[state] for state in only)
        return _done(await self._run_many([(job_id, letters, "1") for job_id in job_ids]))


class Requeue(ScriptBase[Changed]):
    """Queue a failed job again with a fresh attempt budget."""

    config: ScriptConfig

    name = "requeue"
    keys = ("failed", "waiting", "ready", "paced", "stats", "migrations", "events")
    argv = ("job_id", "bulk")

    async def __call__(self, *, job_id: str) -> Changed:
        reply = as_list(await self._run(job_id, "0"))
        return _changed(job_id, reply, 3, self.config.max_attempts, as_int(reply[2]) == 1)

    async def many(self, *, job_ids: Sequence[str]) -> list[bool]:
        """Queue each job again that is still failed; True where it was. Nobody is
        woken: the caller wakes the workers once afterwards."""
        return _done(await self._run_many([(job_id, "1") for job_id in job_ids]))


def _cursor_args(after: ListCursor | None) -> tuple[str, str]:
    return (repr(after.score), after.job_id) if after else ("", "")


class ListPage(ScriptBase[tuple[list[JobRecord], ListCursor | None]]):
    """One page of a state's jobs, with their hashes, after a cursor."""

    config: ScriptConfig
    name = "list"
    keys = ("index",)
    argv = ("limit", "desc", "after_score", "after_id")

    async def __call__(
        self, *, index: str, newest_first: bool, after: ListCursor | None, limit: int
    ) -> tuple[list[JobRecord], ListCursor | None]:
        reply = as_list(
            await self._run(
                limit, int(newest_first), *_cursor_args(after), call_keys={"index": index}
            )
        )
        records: list[JobRecord] = []
        for i in range(1, len(reply), 3):
            flat = as_list(reply[i + 2])
            if flat:  # the script reads index and hashes at once; this is only a guard
                job_id = as_str(reply[i])
                records.append(decode_job_hash(job_id, as_hash(flat), self.config.max_attempts))
        more = as_int(reply[0]) == 1 and len(reply) > 1
        cursor = ListCursor(float(as_str(reply[-2])), as_str(reply[-3])) if more else None
        return records, cursor


class Select(ScriptBase[Selected]):
    """The jobs of a chat ('' = all) among the next entries of a state's index."""

    name = "select"
    keys = ("index", "migrations")
    argv = ("limit", "after_score", "after_id", "chat", "sample")

    async def __call__(
        self, *, index: str, chat_id: str, after: ListCursor | None, limit: int, sample: int
    ) -> Selected:
        reply = as_list(
            await self._run(
                limit, *_cursor_args(after), chat_id, sample, call_keys={"index": index}
            )
        )
        end = 5 + as_int(reply[4])
        job_ids = [as_str(i) for i in reply[5:end]]
        undecided = [(as_str(reply[i]), as_bytes(reply[i + 1])) for i in range(end, len(reply), 2)]
        cursor = None
        if as_int(reply[0]) == 1:
            cursor = ListCursor(float(as_str(reply[2])), as_str(reply[1]))
        return Selected(job_ids, as_int(reply[3]), undecided, cursor)


class RewriteCode(IntEnum):
    """What rewrite.lua refused (besides the shared refusals)."""

    # The payload is not the one the edit was computed from: another edit landed first.
    CHANGED = 2


@dataclass(frozen=True, slots=True)
class Rewritten:
    """rewrite.lua's answer: ``status`` OK, or why not, and the job's state letter."""

    status: int
    state: str


class Rewrite(ScriptBase[Rewritten]):
    """Replace a job's payload if it is still ``expected`` and the job is in one of
    ``states``; an unfinished job pins the new payload's uploads instead of the old."""

    name = "rewrite"
    keys = ()
    argv = ("job_id", "states", "expected", "payload", "uploads")
    codes = (RewriteCode,)

    async def __call__(
        self,
        *,
        job_id: str,
        states: Sequence[JobState],
        expected: bytes,
        payload: bytes,
        upload_ids: Sequence[str],
    ) -> Rewritten:
        letters = "".join(STATE_LETTERS[s] for s in states)
        code, state = as_list(
            await self._run(job_id, letters, expected, payload, " ".join(upload_ids))
        )
        return Rewritten(as_int(code), as_str(state))


class UnsuppressCode(IntEnum):
    """What unsuppress.lua found (besides OK: the chat was suppressed)."""

    NOT_SUPPRESSED = 2


def suppression_of(chat_id: str, stored: bytes) -> SuppressedChat:
    """A suppression as fail.lua stores it: JSON ``{r = reason, t = time (ms), j = job}``."""
    data = json.loads(stored)
    return SuppressedChat(
        chat_id=chat_id,
        reason=str(data.get("r", "")),
        suppressed_ms=int(data.get("t", 0)),
        job_id=str(data.get("j", "")),
    )


class Unsuppress(ScriptBase[SuppressedChat | None]):
    """Lift a chat's suppression (``validate_only``: only look); what was lifted, or None
    when the chat is not suppressed."""

    name = "unsuppress"
    keys = ("suppressed", "suppressed_by_time")
    argv = ("chat", "validate_only")
    codes = (UnsuppressCode,)

    async def __call__(self, *, chat_id: str, validate_only: bool) -> SuppressedChat | None:
        reply = as_list(await self._run(chat_id, int(validate_only)))
        if as_int(reply[0]) != Status.OK:
            return None
        return suppression_of(chat_id, as_bytes(reply[1]))
