"""Group commit: concurrent callers share writes, each gets its own result or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from notigate.group_commit import GroupCommit


async def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(write)
    first = asyncio.ensure_future(commit.submit(0))
    await asyncio.sleep(0.001)  # the first write is in flight
    rest = await asyncio.gather(*(commit.submit(i) for i in range(1, 20)))
    assert [await first, *rest] == [i * 10 for i in range(20)]
    assert writes == [[0], list(range(1, 20))]


async def test_a_failed_write_fails_its_callers_only() -> None:
    calls = 0

    async def write(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis down")
        return list(items)

    commit: GroupCommit[str, str] = GroupCommit(write)
    with pytest.raises(ConnectionError):
        await commit.submit("a")
    assert await commit.submit("b") == "b"


async def test_max_items_bounds_one_write() -> None:
    writes: list[int] = []

    async def write(items: Sequence[int]) -> list[int]:
        writes.append(len(items))
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(write, max_items=4)
    assert await asyncio.gather(*(commit.submit(i) for i in range(10))) == list(range(10))
    assert writes == [4, 4, 2]


async def test_linger_gathers_concurrent_callers_but_not_a_lone_one() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        await asyncio.sleep(0)
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(write, linger_s=0.05)
    assert await commit.submit(0) == 0  # nothing shared yet: written at once

    async def trickle(i: int) -> int:
        await asyncio.sleep(0.005 * (i % 5))  # arrivals spread over 20 ms
        return await commit.submit(i)

    first = [commit.submit(1), commit.submit(2)]  # a shared write: concurrency seen
    assert await asyncio.gather(*first, *(trickle(i) for i in range(3, 13))) == list(range(1, 13))
    # Without the linger the trickle would have gone out in several writes.
    assert writes[:2] == [[0], [1, 2]]
    assert sorted(x for w in writes[2:] for x in w) == list(range(3, 13))
    assert len(writes[2:]) == 1


async def test_cancelling_a_lingering_writer_cancels_its_callers() -> None:
    async def write(items: Sequence[int]) -> list[int]:
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(write, linger_s=10)
    await asyncio.gather(commit.submit(1), commit.submit(2))
    waiting = asyncio.ensure_future(commit.submit(3))
    await asyncio.sleep(0.01)  # the writer is lingering
    assert commit._writer is not None
    commit._writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_write_with_the_wrong_number_of_results_fails_its_callers_not_the_writer() -> None:
    """Its callers get an error, not a cancellation (which would end a delivery task as if
    it had been cancelled), and the next write still runs."""
    calls = 0

    async def write(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else list(items)

    commit: GroupCommit[str, str] = GroupCommit(write)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await commit.submit("lost")
    assert await commit.submit("next") == "next"
