"""The gateway behind Redis Sentinel: a primary, one replica, one Sentinel.

The gateway finds the primary through the Sentinel (no REDIS_URL host), delivers, and
follows a failover without a restart: kill -9 of the primary under load, the Sentinel
promotes the replica, and with WAIT 1 every acknowledged job is found and delivered.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from notigate.config import Settings
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import pb
from tests.conftest import TOKEN, base_settings, running_gateway, wait_for, wait_state
from tests.failover_load import (
    UNLIMITED,
    assert_every_acknowledged_delivered,
    at_least,
    duplicates_of,
    keyed_sends,
)
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
    return base_settings(
        sim,
        redis_sentinels=(setup.sentinel_address,),
        redis_sentinel_master=setup.master_name,
        **{**UNLIMITED, **overrides},
    )


async def test_the_gateway_follows_a_sentinel_failover_and_loses_no_acknowledged_send(
    sentinel: LocalSentinel, sim: BotApiSimulator
) -> None:
    n, senders = 1000, 10
    settings = sentinel_settings(sentinel, sim, redis_wait_replicas=1, lease_ms=2000)
    acked: dict[int, str] = {}
    unavailable = Counter[str]()

    async with running_gateway(settings) as (gw, stub):
        first = (await stub.Send(pb.SendRequest(chat_id="1", text="hello"), timeout=10)).job_id
        await wait_state(stub, first, COMPLETED)
        tasks = [
            asyncio.create_task(
                keyed_sends(stub, range(k, n, senders), "s", 20000, acked, unavailable)
            )
            for k in range(senders)
        ]
        await wait_for(lambda: at_least(acked, n // 4), timeout_s=60)
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
        await assert_every_acknowledged_delivered(stub, acked)
    texts = [m.text for m in sim.messages_after(0)]
    duplicates = duplicates_of(texts, "sentinel failover", len(acked), unavailable)
    assert len(acked) == n
    assert {f"s{i}" for i in range(n)} <= set(texts)
    assert duplicates <= settings.concurrency
