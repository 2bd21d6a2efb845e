"""A WatchEvents reader for the bench: every event it receives with the wall-clock time
it arrived, against the event's own time (Redis's clock at the state change).

Both clocks are this machine's CLOCK_REALTIME (Redis's TIME and ``time.time()``), so
their difference is the event's latency. Event.time has whole milliseconds (the scripts
floor Redis's microseconds), so a latency reads up to 1 ms above the true one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.infra import BENCH, PYTHON, BenchError
from notigate_client import pb


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as the reader got it."""

    job_id: str
    state: int
    event_ms: int  # Event.time, ms since the epoch (Redis's clock)
    received_ms: float  # time.time() at arrival, ms since the epoch

    @property
    def latency_ms(self) -> float:
        return self.received_ms - self.event_ms


@dataclass
class EventWatcher:
    """One WatchEvents call on ``stub`` (only new events, no filter) run as a task."""

    stub: Any
    states: tuple[pb.JobState.ValueType, ...] = ()
    seen: list[Seen] = field(default_factory=list)
    counts: Counter[int] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _call: Any = None

    async def start(self) -> EventWatcher:
        """Start reading; returns once the stream's start position is fixed (every later
        event will be read)."""
        self._call = self.stub.WatchEvents(pb.WatchEventsRequest(states=list(self.states)))
        await asyncio.wait_for(self._call.initial_metadata(), 10)
        self._task = asyncio.create_task(self._read(), name="bench-event-watcher")
        return self

    async def _read(self) -> None:
        async for response in self._call:
            now = time.time() * 1000
            e = response.event
            self.seen.append(Seen(e.job_id, e.state, e.time.ToMilliseconds(), now))
            self.counts[e.state] += 1

    def count(self, state: int) -> int:
        return self.counts[state]

    async def wait_count(self, state: int, n: int, timeout: float) -> None:
        """Wait until ``n`` events entering ``state`` have arrived."""
        deadline = time.monotonic() + timeout
        while self.count(state) < n:
            if self._task is not None and self._task.done():
                self._task.result()
                raise BenchError("WatchEvents ended")
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.count(state)} of {n} events read in {timeout:.0f} s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task


class ReaderProcess:
    """``loadgen/watch_events.py`` run beside the bench: an :class:`EventWatcher` in a
    process of its own."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls, target: str, states: tuple[pb.JobState.ValueType, ...], completed: int,
        timeout: float,
    ) -> ReaderProcess:  # fmt: skip
        """Start reading; returns once the reader's stream start is fixed."""
        opts = {"target": target, "states": list(states), "completed": completed,
                "timeout": timeout}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            PYTHON, str(BENCH / "loadgen" / "watch_events.py"), json.dumps(opts),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=2**26,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            proc.kill()
            _, err = await proc.communicate()
            raise BenchError(f"event reader did not start: {err.decode()[-1500:]}")
        return cls(proc)

    async def result(self, timeout: float) -> list[Seen]:
        """What the reader saw, once it has read its completions."""
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise BenchError(f"event reader did not finish in {timeout:.0f} s") from None
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            raise BenchError(
                f"event reader failed ({self.proc.returncode}): {err.decode()[-1500:]}"
            )
        return [Seen(j, st, int(ev), float(rx)) for j, st, ev, rx in json.loads(lines[-1])["seen"]]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
