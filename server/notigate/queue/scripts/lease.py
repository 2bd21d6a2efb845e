"""Taking jobs for delivery and keeping them: ``dequeue.lua``, ``extend.lua``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from notigate.queue.records import (
    STATE_OF_LETTER,
    JobKind,
    Lease,
    LeaseBatch,
    message_ids_of,
)
from notigate.queue.scripts.base import Arg, ScriptBase, as_bytes, as_int, as_list, as_str

# Fields per leased job in dequeue.lua's reply.
_PER_LEASE = 11


class Dequeue(ScriptBase[LeaseBatch]):
    """Lease up to ``count`` jobs that may be sent now."""

    name = "dequeue"
    keys = (
        "ready",
        "paced",
        "delayed",
        "active",
        "waiting",
        "global_log",
        "global_pause",
        "stats",
        "failed",
        "global_tat",
        "events",
        "suppressed",
    )
    argv = ("count", "nonce")

    async def __call__(self, *, count: int) -> LeaseBatch:
        # A fresh nonce per call makes every lease token unique across the store's life.
        reply = as_list(await self._run(count, secrets.token_hex(8)))
        wait = as_int(reply[0])
        leases = [
            Lease(
                job_id=as_str(reply[i]),
                token=as_str(reply[i + 1]),
                chat_id=as_str(reply[i + 2]),
                attempts=as_int(reply[i + 3]),
                created_ms=as_int(reply[i + 4]),
                payload=as_bytes(reply[i + 5]),
                kind=JobKind(as_str(reply[i + 6])),
                sent_items=as_int(reply[i + 7]),
                edit_method=as_str(reply[i + 8]),
                target_state=STATE_OF_LETTER.get(as_str(reply[i + 9])),
                target_message_ids=message_ids_of(as_str(reply[i + 10])),
            )
            for i in range(3, 3 + _PER_LEASE * as_int(reply[2]), _PER_LEASE)
        ]
        return LeaseBatch(
            leases=leases,
            wait_ms=None if wait < 0 else wait,
            blocked=as_int(reply[1]) == 1,
            suppressed=as_int(reply[-1]),
        )


class Extend(ScriptBase[int]):
    """Renew leases of sends still in flight; returns how many were renewed."""

    name = "extend"
    keys = ("active",)
    argv = ("leases...",)

    async def __call__(self, *, leases: Sequence[Lease]) -> int:
        args: list[Arg] = []
        for lease in leases:
            args += (lease.job_id, lease.token)
        return as_int(await self._run(*args))
