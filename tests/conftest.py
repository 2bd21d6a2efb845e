"""Shared fixtures: a real Valkey server, the Bot API simulator, a running gateway."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import BotSettings, Settings
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import pb, pb_grpc

Stub = pb_grpc.NotificationServiceStub


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
async def valkey(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedValkey]:
    """One Valkey server for the session; tests isolate by queue name or flush."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), port=free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def redis(valkey: EmbeddedValkey) -> AsyncIterator[Redis]:
    """A client on a freshly flushed database."""
    client = Redis.from_url(valkey.url)
    await client.flushall()
    yield client
    await client.aclose()


def simulator_defaults() -> dict[str, Any]:
    """Every SimulatorConfig field at its default, for sim.configure()."""
    config = SimulatorConfig()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


@pytest.fixture
async def _sim(_sim_server: BotApiSimulator) -> AsyncIterator[BotApiSimulator]:
    """A module's shared simulator (``_sim_server``, defined by the module), clean and at
    default config for each test."""

    def restore() -> None:
        _sim_server.reset()
        _sim_server.configure(**simulator_defaults())
        _sim_server.accept_token(TOKEN)

    restore()
    yield _sim_server
    restore()


TOKEN = "123456:TEST-TOKEN"


@pytest.fixture
async def simulator() -> AsyncIterator[BotApiSimulator]:
    """The Bot API simulator over real HTTP, enforcing Telegram's limits."""
    sim = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig())
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


def gateway_settings(valkey: EmbeddedValkey, sim: BotApiSimulator, **overrides: Any) -> Settings:
    """Settings for a gateway on port 0 talking to the test Valkey and simulator."""
    return base_settings(sim, redis_url=valkey.url, **overrides)


def base_settings(sim: BotApiSimulator, **overrides: Any) -> Settings:
    """Settings for a gateway on port 0 talking to the simulator, with short backoffs and
    health turns (the Redis to use among ``overrides``)."""
    base: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": sim.base_url,
        "listen": "127.0.0.1:0",
        "backoff_base_ms": 50,
        "backoff_max_ms": 500,
        "shutdown_grace_s": 2.0,
        "health_interval_s": 0.2,
    }
    base.update(overrides)
    return Settings(**base)


def bot_token(name: str) -> str:
    """The token a test gives bot ``name`` (the simulator must know it: see bots_simulator)."""
    return f"{100000 + sum(name.encode())}:TEST-{name}"


@asynccontextmanager
async def bots_simulator(*names: str) -> AsyncIterator[BotApiSimulator]:
    """A simulator that knows the bots ``names`` (their bot_token), each with Telegram's
    limits of its own."""
    sim = BotApiSimulator(tokens=[bot_token(n) for n in names], config=SimulatorConfig())
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


def bots_settings(
    valkey: EmbeddedValkey, sim: BotApiSimulator, names: Sequence[str], **overrides: Any
) -> Settings:
    """gateway_settings for a gateway serving the bots ``names`` (as a bots file would)."""
    bots = tuple(BotSettings(name, bot_token(name)) for name in names)
    return gateway_settings(valkey, sim, bot_token=None, bots=bots, **overrides)


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[tuple[Gateway, Stub]]:
    """A started Gateway and a stub connected to it."""
    async with (
        Gateway(settings) as gw,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel,
    ):
        yield gw, pb_grpc.NotificationServiceStub(channel)


@pytest.fixture
async def gateway(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> AsyncIterator[tuple[Gateway, Stub]]:
    async with running_gateway(gateway_settings(valkey, simulator)) as pair:
        yield pair


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s`` (a hang guard,
    not a speed requirement)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def job_state(stub: Stub, job_id: str) -> int:
    reply = await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
    return int(reply.job.state)


async def wait_state(stub: Stub, job_id: str, state: int, timeout_s: float = 20.0) -> pb.Job:
    async def reached() -> bool:
        return await job_state(stub, job_id) == state

    await wait_for(reached, timeout_s)
    return (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
