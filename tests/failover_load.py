"""Sends that ride over a failover: each retried on UNAVAILABLE with its idempotency key
(so a retry never stores a second job), at a bounded rate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

import grpc

from notigate.config import Limits
from notigate_client import pb, pb_grpc

# Settings of a failover test's gateway: Telegram's limits out of the way (they are tested
# elsewhere), and every job of the load kept for the checks.
UNLIMITED = {
    "keep_completed": 100_000,
    "limits": Limits(global_rate=100_000, private_rate=1000, group_rate=1000),
}

# A sender gives up (the test fails) when the gateway has not recovered after this long.
RECOVERY_S = 60.0


async def keyed_sends(
    stub: pb_grpc.NotificationServiceStub,
    indices: Iterable[int],
    prefix: str,
    chat_base: int,
    acked: dict[int, str],
    unavailable: Counter[str],
) -> None:
    """Send message ``<prefix><i>`` to chat ``chat_base + i`` for each index, keyed
    ``<prefix><i>``; record each acknowledged job id in ``acked`` and each UNAVAILABLE
    answer's text in ``unavailable``."""
    for i in indices:
        request = pb.SendRequest(
            chat_id=str(chat_base + i), text=f"{prefix}{i}", idempotency_key=f"{prefix}{i}"
        )
        deadline = time.monotonic() + RECOVERY_S
        while True:
            try:
                acked[i] = (await stub.Send(request, timeout=5)).job_id
                break
            except grpc.aio.AioRpcError as exc:
                # UNAVAILABLE while Redis fails over; the same key makes the retry safe.
                assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
                unavailable[exc.details() or ""] += 1
                assert time.monotonic() < deadline, f"no recovery within {RECOVERY_S:g} s"
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)  # a bounded rate


async def assert_every_acknowledged_delivered(
    stub: pb_grpc.NotificationServiceStub, acked: dict[int, str]
) -> None:
    """Each acknowledged job is found and completed: none was lost in the failover."""
    for i, job_id in acked.items():
        job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)).job
        assert job.state == pb.JOB_STATE_COMPLETED, (i, job_id)


def duplicates_of(texts: Iterable[str], what: str, acked: int, unavailable: Counter[str]) -> int:
    """How many messages went twice (printed with the failover's figures, for the log)."""
    counts = Counter(texts)
    twice = sum(c - 1 for c in counts.values())
    print(
        f"\n{what}: acknowledged={acked} delivered={len(counts)} duplicated={twice} "
        f"unavailable answers={sum(unavailable.values())} {dict(unavailable.most_common(3))}"
    )
    return twice


async def at_least(acked: dict[int, str], n: int) -> bool:
    """True once ``n`` sends are acknowledged (for wait_for)."""
    return len(acked) >= n
