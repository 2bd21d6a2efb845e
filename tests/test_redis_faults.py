"""Spells of Redis refusing work, on a real redis-server (run by `make test-faults`).

Each spell: messages are accepted before it (some due during it), Sends during it are
answered UNAVAILABLE (never UNKNOWN or INTERNAL) and health is NOT_SERVING with the
reason; after it, without a restart, every accepted message is delivered and every
background loop still runs. Each prints its figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for
from tests.redis_server import RedisServer
from tests.test_metrics import scrape, value
from tests.test_redis_errors import (
    NOT_SERVING,
    SERVING,
    assert_retryable,
    health_of,
    wait_health,
)

pytestmark = pytest.mark.faults

Step = Callable[[], Awaitable[None]]


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


async def send_batch(stub: Stub, prefix: str, n: int, *, delay_s: int = 0) -> list[str]:
    messages = []
    for i in range(n):
        request = pb.SendRequest(chat_id=str(5000 + i), text=f"{prefix} {i}")
        if delay_s:
            request.delay.seconds = delay_s
        messages.append(request)
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=messages), timeout=30)
    return [r.job_id for r in reply.results]


async def run_spell(
    redis: RedisServer,
    sim: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
    *,
    kind: str,
    begin: Step,
    end: Step,
    spell_s: float = 1.5,
) -> None:
    """Accept messages, ``begin`` the spell, check the gateway's answers during it for
    ``spell_s`` at least, ``end`` it, check that everything accepted is delivered."""
    caplog.set_level(logging.INFO, logger="notigate")
    settings = gateway_settings(  # type: ignore[arg-type]
        redis, sim, metrics_listen="127.0.0.1:0", keep_completed=10_000
    )
    loop = asyncio.get_running_loop()
    async with running_gateway(settings) as (gw, stub):
        accepted = await send_batch(stub, "before", 60)
        # Due during the spell: the dispatcher meets the error leasing them.
        accepted += await send_batch(stub, "due", 60, delay_s=1)
        t0 = loop.time()
        await begin()
        await wait_health(gw, NOT_SERVING)
        not_serving_s = loop.time() - t0

        codes: Counter[str] = Counter()
        i = 0
        while loop.time() - t0 < spell_s or not codes[grpc.StatusCode.UNAVAILABLE.name]:
            i += 1
            try:
                reply = await stub.Send(
                    pb.SendRequest(chat_id=str(6000 + i), text=f"during {i}"), timeout=10
                )
                accepted.append(reply.job_id)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                assert_retryable(exc)
                codes[exc.code().name] += 1
            await asyncio.sleep(0.05)
            assert loop.time() - t0 < 60, "the spell never refused a Send"
        metrics = await scrape(gw.metrics_port)
        assert value(metrics, "notigate_health_reason", reason="store_not_writable") == 1
        t1 = loop.time()
        await end()
        await wait_health(gw, SERVING)
        serving_s = loop.time() - t1
        accepted += await send_batch(stub, "after", 60)

        async def all_delivered() -> bool:
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            return stats.total_sent >= len(accepted) and stats.active + stats.waiting == 0

        await wait_for(all_delivered, timeout_s=60)
        delivered_s = loop.time() - t1
        for job_id in accepted:
            job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)).job
            assert job.state == pb.JOB_STATE_COMPLETED, (job_id, job.state, job.last_error)
        assert all(gw.tasks.running(name) for name in gw.tasks.names)
        assert gw.dispatcher is not None and gw.dispatcher.live()
        metrics = await scrape(gw.metrics_port)
        errors = value(metrics, "notigate_redis_errors_total", kind=kind)
        assert errors > 0
        assert await health_of(gw.port) == SERVING
    texts = Counter(m.text for m in sim.messages)
    assert len(texts) == len(accepted)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    lease_logs = [r for r in caplog.records if r.getMessage().startswith("leasing jobs failed")]
    print(
        f"\n{kind}: accepted={len(accepted)} refused during the spell={codes['UNAVAILABLE']} "
        f"(accepted during it={codes['OK']}) delivered={len(texts)} "
        f"duplicated={sum(c - 1 for c in texts.values())}; NOT_SERVING after "
        f"{not_serving_s:.2f} s, SERVING {serving_s:.2f} s after the spell, all delivered "
        f"{delivered_s:.2f} s after it; {errors:.0f} {kind} errors counted, "
        f"{len(lease_logs)} dispatcher log line(s)"
    )


async def test_readonly_spell(
    own_redis: RedisServer, sim: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    await run_spell(
        own_redis,
        sim,
        caplog,
        kind="readonly",
        begin=own_redis.become_replica,
        end=own_redis.become_primary,
        spell_s=3,
    )


async def test_misconf_spell(
    own_redis: RedisServer, sim: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A background save fails (as on a full disk): Redis refuses writes until one works."""
    await run_spell(
        own_redis,
        sim,
        caplog,
        kind="misconf",
        begin=own_redis.break_saving,
        end=own_redis.fix_saving,
    )


async def test_busy_spell(
    own_redis: RedisServer, sim: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Another client's long script holds Redis until SCRIPT KILL."""
    script: list[asyncio.Task[None]] = []

    async def begin() -> None:
        script.append(asyncio.create_task(own_redis.run_busy_script(30)))

    async def end() -> None:
        await own_redis.kill_script()
        await script[0]

    await run_spell(own_redis, sim, caplog, kind="busy", begin=begin, end=end)


async def test_loading_spell(
    own_redis: RedisServer, sim: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis loads its dataset again (slowly): LOADING until it is done."""
    reload: list[asyncio.Task[None]] = []

    async def begin() -> None:
        reload.append(asyncio.create_task(own_redis.reload_slowly(30_000)))

    async def end() -> None:
        await reload[0]

    await run_spell(own_redis, sim, caplog, kind="loading", begin=begin, end=end, spell_s=0)


@pytest.fixture
async def sim() -> AsyncIterator[BotApiSimulator]:
    from notigate.simulator import SimulatorConfig
    from tests.conftest import TOKEN

    s = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig())
    await s.start(host="127.0.0.1", port=0)
    yield s
    await s.stop()
