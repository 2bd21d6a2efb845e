"""Noticing that the store lost data: a marker key, and the sequence against the ids seen.

Redis can lose what it acknowledged: FLUSHALL, a restart without persistence, a failover
to a replica that was behind. Job ids stay unique regardless (enqueue.lua), but the jobs
accepted before are gone and an operator must hear of it. Each event is logged once as an
ERROR and counted in ``notigate_store_data_loss_total{kind}``:

- ``reset``: the store's marker (``<prefix>meta``, a random id) is missing although this
  process had seen it, or holds another id: the store was emptied (and the marker then
  recreated, here or by another replica).
- ``rollback``: the marker is there but the store's id sequence is below an id this process
  was handed: the store went back to an older copy of itself.

A process that starts on a store without a marker (a new store, or one from before the
marker existed) creates it without an alarm: it cannot know what was there before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from notigate.errors import REDIS_ERRORS, StoreError
from notigate.metrics import Metrics
from notigate.queue import Queue

log = logging.getLogger(__name__)

# A check that meets these looks again later (Redis being away is health's to report).
_STORE_DOWN: tuple[type[Exception], ...] = (StoreError, *REDIS_ERRORS)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class StoreWatch:
    """Checks one queue's store for lost data (:meth:`check`, or :meth:`run` to loop)."""

    def __init__(self, queue: Queue, metrics: Metrics) -> None:
        self._queue = queue
        self._metrics = metrics
        # The marker id this process saw last (None: not looked yet).
        self.store_id: str | None = None
        # The id floor when the last loss was reported: a sequence found below a floor no
        # higher than this is the same event, not a new one.
        self._reported_floor = 0
        # (the store's sequence, this process's floor) from an enqueue that found the
        # sequence below the floor; looked at by the next check.
        self._went_back: tuple[int, int] | None = None
        self._wake = asyncio.Event()
        queue.on_went_back = self._enqueue_went_back

    def _enqueue_went_back(self, seq: int, floor: int) -> None:
        self._went_back = (seq, floor)
        self._wake.set()

    async def run(self, interval_s: float, *, look_now: bool = True) -> None:
        """Check now (unless not ``look_now``), then every ``interval_s`` and whenever an
        enqueue saw the store's sequence below this process's ids, until cancelled."""
        first = True
        while True:
            self._wake.clear()
            try:
                if look_now or not first:
                    await self.check()
            except _STORE_DOWN as exc:
                # Redis being away is the health monitor's to report; look again later.
                log.debug("cannot check the store for lost data: %s", exc)
            first = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self._wake.wait()

    async def check(self) -> None:
        """Look once: report (log, count) a loss of data since the last look."""
        floor = self._queue.id_floor  # read before the sequence: every id in it is stored
        redis, keys = self._queue.redis, self._queue.keys
        async with redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.hget(keys.meta, "id")
            pipe.get(keys.seq)
            raw, raw_seq = await pipe.execute()
        seen = self.store_id
        current = await self._create_marker() if raw is None else _text(raw)
        self.store_id = current
        went_back, self._went_back = self._went_back, None
        if seen is not None and current != seen:
            self._report(
                "reset",
                "the store lost its data (flushed, or restarted without persistence): "
                "the jobs it held are gone; job ids go on above %d",
                floor,
            )
            return
        seq = int(raw_seq or 0)
        if seq < floor and floor > self._reported_floor:
            went_back = (seq, floor)
        if went_back is not None and went_back[1] > self._reported_floor:
            self._report(
                "rollback",
                "the store went back (failover to a replica that was behind?): its newest "
                "job id is %d, this process had been handed %d; jobs accepted in between "
                "may be gone",
                *went_back,
            )

    async def _create_marker(self) -> str:
        """Create the marker unless another process just did; its id either way."""
        redis, key = self._queue.redis, self._queue.keys.meta
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "id", secrets.token_hex(8))
            pipe.hsetnx(key, "created_ms", int(time.time() * 1000))
            pipe.hget(key, "id")
            *_, raw = await pipe.execute()
        marker = _text(raw)
        log.info("store marker %s created", marker)
        return marker

    def _report(self, kind: str, message: str, *args: object) -> None:
        self._reported_floor = self._queue.id_floor
        self._metrics.store_data_loss.labels(kind=kind).inc()
        log.error(
            message, *args, extra={"data_loss": kind, "queue": self._queue.settings.queue_name}
        )
