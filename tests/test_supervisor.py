"""The supervisor keeps background loops running and stops them within a bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from notigate.errors import QueueUnavailable, RedisErrorKind
from notigate.supervisor import Spell, Supervisor

FAST = (0.01, 0.05)


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_loop_that_raises_is_logged_with_its_traceback_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notigate")
    runs = 0
    third = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"boom {runs}")
        third.set()
        await forever()

    restarted: list[str] = []
    supervisor = Supervisor(on_restart=restarted.append, backoff_s=FAST)
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(third.wait(), 10)
    assert supervisor.running("flaky")
    assert supervisor.restarts("flaky") == 2 and restarted == ["flaky", "flaky"]
    failed = [r for r in caplog.records if r.getMessage() == "background task flaky failed"]
    assert len(failed) == 2
    assert [str(r.exc_info[1]) for r in failed if r.exc_info] == ["boom 1", "boom 2"]
    assert all(r.levelno == logging.ERROR for r in failed)
    await supervisor.stop(timeout_s=5)
    assert not supervisor.running("flaky")


async def test_a_loop_that_returns_unasked_is_restarted_and_not_after_wind_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    second = asyncio.Event()

    async def quits() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            second.set()

    supervisor = Supervisor(backoff_s=FAST)
    supervisor.start("quits", quits)
    await asyncio.wait_for(second.wait(), 10)
    assert any("quits ended unexpectedly" in r.getMessage() for r in caplog.records)
    supervisor.wind_down()
    seen = runs
    await supervisor.stop(timeout_s=5)
    assert runs <= seen + 1  # at most the run already under way
    assert not supervisor.running("quits")


async def test_a_foreign_cancellation_restarts_the_loop() -> None:
    """A loop awaiting something another task cancels ends with CancelledError without
    being cancelled itself: that is a failure, not a stop."""
    runs = 0
    futures: list[asyncio.Future[None]] = []
    again = asyncio.Event()

    async def waits() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            again.set()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures.append(future)
        await future

    supervisor = Supervisor(backoff_s=FAST)
    supervisor.start("waits", waits)
    while not futures:
        await asyncio.sleep(0.01)
    futures[0].cancel()
    await asyncio.wait_for(again.wait(), 10)
    assert supervisor.running("waits")
    await supervisor.stop(timeout_s=5)
    assert not supervisor.running("waits")


async def test_stop_repeats_a_cancellation_the_loop_swallowed() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                # What redis-py does when a cancellation lands mid-command.
                swallowed += 1
                if swallowed >= 3:
                    raise

    supervisor = Supervisor(backoff_s=FAST)
    supervisor.start("stubborn", stubborn)
    await asyncio.sleep(0.05)
    await supervisor.stop(timeout_s=10)
    assert swallowed == 3 and not supervisor.running("stubborn")


async def test_stop_gives_up_on_a_loop_that_never_ends(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    supervisor = Supervisor(backoff_s=FAST)
    supervisor.start("immortal", immortal)
    await asyncio.sleep(0.05)
    await supervisor.stop(timeout_s=0.3)
    assert any("immortal did not stop" in r.getMessage() for r in caplog.records)
    release.set()
    await supervisor.stop(timeout_s=5)


async def test_a_spell_of_redis_errors_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notigate")
    counted: list[RedisErrorKind] = []
    spell = Spell("leasing jobs", count=counted.append)
    for _ in range(5):
        spell.failed(QueueUnavailable("Redis is a read-only replica", RedisErrorKind.READONLY))
    spell.failed(QueueUnavailable("Redis is loading", RedisErrorKind.LOADING))
    spell.succeeded()
    spell.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert counted == [RedisErrorKind.READONLY] * 5 + [RedisErrorKind.LOADING]
    assert messages == [
        "leasing jobs failed: Redis is a read-only replica [readonly]; retrying",
        "leasing jobs failed: Redis is loading [loading]; retrying",
        "Redis is back: leasing jobs again after 6 failed attempts",
    ]
