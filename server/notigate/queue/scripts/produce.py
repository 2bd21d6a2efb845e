"""Storing new messages: ``enqueue.lua``."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from notigate.queue.records import Enqueued, EnqueueOutcome, NewJob, fingerprint
from notigate.queue.scripts.base import ScriptBase, as_int, as_list, as_str

# Header of one message in enqueue.lua's packed argument (see its header).
_JOB_HEADER = struct.Struct(">BddBBHIH")


class EnqueueCode(IntEnum):
    """What enqueue.lua did with one message."""

    CREATED = 1
    # The key came before with the same request: the id is that first job's.
    DUPLICATE = 2
    # The key came before with a different request: nothing stored for this message.
    CONFLICT = 3
    # All or nothing, and another message of the call conflicts.
    NOT_STORED = 4


_OUTCOME_OF: dict[int, EnqueueOutcome] = {
    EnqueueCode.CREATED: EnqueueOutcome.CREATED,
    EnqueueCode.DUPLICATE: EnqueueOutcome.DUPLICATE,
    EnqueueCode.CONFLICT: EnqueueOutcome.KEY_REUSED,
}


_CONFLICT = int(EnqueueCode.CONFLICT)


@dataclass(frozen=True, slots=True)
class EnqueueReply:
    """enqueue.lua's answer."""

    # One per message, in order; empty when an all-or-nothing call stored nothing.
    results: list[Enqueued]
    # (index, the key's first job id or "") of each message whose key came before with
    # a different request.
    conflicts: list[tuple[int, str]]
    # The store's sequence when it was below the caller's id floor (it went back).
    went_back: int | None
    # The other replicas were woken: the caller wakes its own workers.
    woke: bool
    # How many Redis replicas confirmed the write (WAIT); None when not waited for.
    replicas: int | None = None


def pack(jobs: Sequence[NewJob]) -> tuple[bytes, int]:
    """The messages packed as ARGV ``messages`` wants them, and how many have a key."""
    packed: list[bytes] = []
    keyed = 0
    for job in jobs:
        chat = job.chat_id.encode()
        key = job.idempotency_key.encode()
        extra = b"\0".join(f"{name}\0{value}".encode() for name, value in job.extra_fields())
        packed += (
            _JOB_HEADER.pack(
                job.priority,
                job.delay_ms,
                job.due_at_ms,
                job.max_attempts,
                len(chat),
                len(key),
                len(job.payload),
                len(extra),
            ),
            chat,
            key,
            job.payload,
            extra,
        )
        if key:
            packed.append(fingerprint(job.payload))
            keyed += 1
    return b"".join(packed), keyed


class Enqueue(ScriptBase[EnqueueReply]):
    """Store messages atomically, with ids that never go back."""

    name = "enqueue"
    keys = ("seq", "waiting", "ready", "paced", "delayed", "stats", "migrations", "events")
    argv = ("n", "messages", "all_or_nothing", "keyed", "id_floor")
    codes = (EnqueueCode,)
    # WAIT for this many replicas after each call (0: do not wait), at most wait_ms.
    wait_replicas = 0
    wait_ms = 1000

    async def __call__(
        self, *, jobs: Sequence[NewJob], all_or_nothing: bool, id_floor: int
    ) -> EnqueueReply:
        messages, keyed = pack(jobs)
        args = (len(jobs), messages, 1 if all_or_nothing else 0, keyed, id_floor)
        replicas: int | None = None
        if self.wait_replicas:
            raw, replicas = await self._run_waited(
                *args, replicas=self.wait_replicas, timeout_ms=self.wait_ms
            )
        else:
            raw = await self._run(*args)
        reply = as_list(raw)
        *pairs, went_back, woke = reply
        codes = pairs[1::2]
        conflicts = (
            [(i, as_str(pairs[2 * i])) for i, code in enumerate(codes) if code == _CONFLICT]
            if _CONFLICT in codes
            else []
        )
        stored_nothing = all_or_nothing and bool(conflicts)
        back = as_int(went_back)
        return EnqueueReply(
            # One pass of plain lookups: a batch of 500 spent half of this call's Python
            # time here when each code became an enum first.
            results=[]
            if stored_nothing
            else [
                Enqueued(as_str(job_id), _OUTCOME_OF[as_int(code)])
                for job_id, code in zip(pairs[0::2], codes, strict=True)
            ],
            conflicts=conflicts,
            went_back=back if back >= 0 else None,
            woke=as_int(woke) == 1,
            replicas=replicas,
        )
