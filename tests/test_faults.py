"""Fault injection with real processes and real signals (run by `make test-faults`).

Each test checks every accepted job by id at the end: delivered (exactly once,
or at most once more per send in flight at a fault), failed with a reason, or
still visible; nothing accepted may vanish. Each prints its figures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey
from notigate.keys import QueueKeys
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from tests.conftest import TOKEN, Stub, free_port, wait_for

pytestmark = pytest.mark.faults

NOTIGATE = str(Path(sys.executable).parent / "notigate")


class GatewayProcess:
    """`notigate serve` as a child process."""

    def __init__(self, redis_url: str, api_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "REDIS_URL")}
        self.env.update(
            REDIS_URL=redis_url,
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=api_url,
            NOTIGATE_LISTEN=f"127.0.0.1:{self.port}",
            NOTIGATE_LEASE_MS="1500",
            NOTIGATE_BACKOFF_BASE_MS="100",
            **env,
        )
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([NOTIGATE, "serve"], env=self.env, stdout=log, stderr=log)
        log.close()

        async def up() -> bool:
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                    await Stub(ch).GetStats(pb.GetStatsRequest(), timeout=1)
                return True
            except grpc.aio.AioRpcError:
                return False

        await wait_for(up, timeout_s=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 30)


@pytest.fixture
async def sim() -> AsyncIterator[BotApiSimulator]:
    s = BotApiSimulator(
        tokens=[TOKEN], config=SimulatorConfig(latency_s=0.02, latency_jitter_s=0.03)
    )
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def own_valkey(tmp_path: Path) -> AsyncIterator[EmbeddedValkey]:
    v = EmbeddedValkey(tmp_path / "valkey", port=free_port(), appendfsync="always")
    await v.start()
    yield v
    await v.stop()


async def send_all(port: int, n: int, chats: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = Stub(ch)
        reply = await stub.SendBatch(
            pb.SendBatchRequest(
                messages=[
                    pb.SendRequest(chat_id=str(1000 + i % chats), text=f"m{i}") for i in range(n)
                ]
            )
        )
        return [r.job_id for r in reply.results]


async def final_states(port: int, ids: list[str]) -> Counter[int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = Stub(ch)
        states: Counter[int] = Counter()
        for job_id in ids:
            states[(await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job.state] += 1
        return states


async def test_kill_9_during_delivery_loses_nothing(
    tmp_path: Path, sim: BotApiSimulator, own_valkey: EmbeddedValkey
) -> None:
    n = 300
    # Enough chats that pacing does not dominate; limits stay enforced.
    gw = GatewayProcess(
        own_valkey.url, sim.base_url, tmp_path / "gw.log", NOTIGATE_KEEP_COMPLETED="1000"
    )
    await gw.start()
    ids = await send_all(gw.port, n, chats=150)
    kills = 0
    inflight_at_kills = 0
    for _ in range(3):
        target = len(sim.messages) + 20
        await wait_for(lambda: _delivered_at_least(sim, target), timeout_s=30)
        gw.kill()
        # Leases the dead process held: exactly the sends it had in flight.
        inflight_at_kills += await leased_now(own_valkey)
        kills += 1
        await gw.start()

    async def all_done() -> bool:
        states = await final_states(gw.port, ids)
        return states[pb.JOB_STATE_COMPLETED] == n

    await wait_for(all_done, timeout_s=60)
    assert await gw.terminate() == 0
    texts = Counter(m.text for m in sim.messages)
    duplicates = sum(c - 1 for c in texts.values())
    lost = n - len(texts)
    print(
        f"\nkill -9 x{kills}: accepted={n} delivered={len(texts)} duplicated={duplicates} "
        f"lost={lost} 429s={sim.count_status(429)}"
    )
    assert lost == 0
    assert duplicates <= inflight_at_kills
    assert sim.count_status(429) == 0


async def leased_now(valkey: EmbeddedValkey) -> int:
    client = Redis.from_url(valkey.url)
    try:
        return int(await client.zcard(QueueKeys.for_queue("default").active))
    finally:
        await client.aclose()


async def _delivered_at_least(sim: BotApiSimulator, n: int) -> bool:
    return len(sim.messages) >= n


async def test_sigterm_under_load_loses_nothing(
    tmp_path: Path, sim: BotApiSimulator, own_valkey: EmbeddedValkey
) -> None:
    n = 200
    gw = GatewayProcess(
        own_valkey.url, sim.base_url, tmp_path / "gw.log", NOTIGATE_KEEP_COMPLETED="1000"
    )
    await gw.start()
    ids = await send_all(gw.port, n, chats=100)
    await wait_for(lambda: _delivered_at_least(sim, 30), timeout_s=30)
    assert await gw.terminate() == 0
    await gw.start()

    async def all_done() -> bool:
        return (await final_states(gw.port, ids))[pb.JOB_STATE_COMPLETED] == n

    await wait_for(all_done, timeout_s=60)
    assert await gw.terminate() == 0
    texts = Counter(m.text for m in sim.messages)
    duplicates = sum(c - 1 for c in texts.values())
    print(
        f"\nSIGTERM: accepted={n} delivered={len(texts)} duplicated={duplicates} "
        f"lost={n - len(texts)}"
    )
    assert len(texts) == n and duplicates == 0


async def test_two_replicas_share_limits_and_survive_a_kill(
    tmp_path: Path, sim: BotApiSimulator, own_valkey: EmbeddedValkey
) -> None:
    n = 150
    replicas = [
        GatewayProcess(
            own_valkey.url, sim.base_url, tmp_path / f"gw{i}.log", NOTIGATE_KEEP_COMPLETED="1000"
        )
        for i in range(3)
    ]
    for gw in replicas:
        await gw.start()
    ids = await send_all(replicas[0].port, n, chats=40)
    await wait_for(lambda: _delivered_at_least(sim, 30), timeout_s=30)
    before = await leased_now(own_valkey)
    replicas[1].kill()

    async def all_done() -> bool:
        return (await final_states(replicas[0].port, ids))[pb.JOB_STATE_COMPLETED] == n

    await wait_for(all_done, timeout_s=90)
    for gw in (replicas[0], replicas[2]):
        assert await gw.terminate() == 0
    texts = Counter(m.text for m in sim.messages)
    duplicates = sum(c - 1 for c in texts.values())
    print(
        f"\n3 replicas, one killed: accepted={n} delivered={len(texts)} "
        f"duplicated={duplicates} 429s={sim.count_status(429)}"
    )
    assert len(texts) == n
    assert duplicates <= before
    assert sim.count_status(429) == 0
