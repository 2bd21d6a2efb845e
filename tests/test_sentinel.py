"""The gateway behind Redis Sentinel: a primary, one replica, one Sentinel.

The gateway finds the primary through the Sentinel (no REDIS_URL host), delivers, and
follows a failover without a restart: kill -9 of the primary under load, the Sentinel
promotes the replica, and with WAIT 1 every acknowledged job is found and delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from notigate.config import Limits, Settings
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import pb
from tests.conftest import TOKEN, Stub, running_gateway, wait_for, wait_state
from tests.redis_cluster import LocalSentinel

pytestmark = pytest.mark.faults

COMPLETED = pb.JOB_STATE_COMPLETED


@pytest.fixture
async def sentinel(tmp_path: Any) -> AsyncIterator[LocalSentinel]:
    local = LocalSentinel(tmp_path / "sentinel")
    await local.start()
    yield local
    await local.stop()


@pytest.fixture
async def sim() -> AsyncIterator[BotApiSimulator]:
    server = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig(enforce_limits=False))
    await server.start(host="127.0.0.1", port=0)
    yield server
    await server.stop()


def sentinel_settings(setup: LocalSentinel, sim: BotApiSimulator, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_sentinels": (setup.sentinel_address,),
        "redis_sentinel_master": setup.master_name,
        "bot_token": TOKEN,
        "telegram_api_url": sim.base_url,
        "listen": "127.0.0.1:0",
        "backoff_base_ms": 50,
        "backoff_max_ms": 500,
        "shutdown_grace_s": 2.0,
        "health_interval_s": 0.2,
        "keep_completed": 100_000,
        "limits": Limits(global_rate=100_000, private_rate=1000, group_rate=1000),
    }
    base.update(overrides)
    return Settings(**base)


async def test_the_gateway_follows_a_sentinel_failover_and_loses_no_acknowledged_send(
    sentinel: LocalSentinel, sim: BotApiSimulator
) -> None:
    n, senders = 1000, 10
    settings = sentinel_settings(sentinel, sim, redis_wait_replicas=1, lease_ms=2000)
    acked: dict[int, str] = {}
    unavailable = Counter[str]()

    async def sender(stub: Stub, first: int) -> None:
        for i in range(first, n, senders):
            request = pb.SendRequest(chat_id=str(20_000 + i), text=f"s{i}", idempotency_key=f"s{i}")
            deadline = time.monotonic() + 60
            while True:
                try:
                    acked[i] = (await stub.Send(request, timeout=5)).job_id
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
                    unavailable[exc.details() or ""] += 1
                    assert time.monotonic() < deadline, "no recovery within 60 s"
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    async with running_gateway(settings) as (gw, stub):
        first = (await stub.Send(pb.SendRequest(chat_id="1", text="hello"), timeout=10)).job_id
        await wait_state(stub, first, COMPLETED)
        tasks = [asyncio.create_task(sender(stub, k)) for k in range(senders)]
        await wait_for(lambda: _at_least(acked, n // 4), timeout_s=60)
        old_port = sentinel.primary.port
        killed = sentinel.primary
        promoted = await sentinel.kill_primary()
        assert promoted.port != old_port
        # The old primary comes back as the new one's replica (the Sentinel reconfigures
        # it): until then WAIT 1 cannot be met and Sends answer UNAVAILABLE.
        killed.start()
        await killed.wait_up()
        await sentinel.wait_replica_synced(killed, timeout_s=30)
        await asyncio.gather(*tasks)

        async def serving() -> bool:
            return bool(gw.health and gw.health.serving)

        await wait_for(serving, timeout_s=30)

        async def all_completed() -> bool:
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            return stats.completed >= n + 1

        await wait_for(all_completed, timeout_s=90)
        for i, job_id in acked.items():
            job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)).job
            assert job.state == COMPLETED, (i, job_id)
    texts = Counter(m.text for m in sim.messages_after(0))
    duplicates = sum(c - 1 for c in texts.values())
    print(
        f"\nsentinel failover: acknowledged={len(acked)} delivered={len(texts) - 1} "
        f"duplicated={duplicates} unavailable answers={sum(unavailable.values())} "
        f"{dict(unavailable.most_common(3))}"
    )
    assert len(acked) == n
    assert {f"s{i}" for i in range(n)} <= set(texts)
    assert duplicates <= settings.concurrency


async def _at_least(acked: dict[int, str], n: int) -> bool:
    return len(acked) >= n
