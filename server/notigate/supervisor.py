"""Supervision: the gateway's long-running loops never end unnoticed.

Every background loop (dispatch, lease renewal, health, wake messages, the metrics
refresher...) runs under a :class:`Supervisor`. A loop that raises is logged with its
traceback and started again after a backoff; one that returns while nobody asked it to
stop is started again too. Stopping cancels them and waits a bounded time: redis-py can
swallow a cancellation that lands in a command (redis/redis-py#2028), so the cancellation
is repeated until the loop ends or the time is up.

:class:`Spell` is the other half: a loop that keeps retrying Redis logs the first error
of a spell and the recovery, not every retry, and counts each error by kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from notigate.backoff import exponential_backoff
from notigate.config import DEFAULT_BOT
from notigate.errors import RedisErrorKind, StoreError

log = logging.getLogger(__name__)

Loop = Callable[[], Coroutine[Any, Any, None]]

# Restart delays: doubled per failure in a row, up to the maximum.
RESTART_BACKOFF_S = (0.1, 30.0)
# A loop that ran this long before failing starts its backoff from the beginning again.
_HEALTHY_RUN_S = 60.0
# How often a cancellation is repeated while a loop does not end.
_RECANCEL_S = 0.05


def bot_loop_name(name: str, bot: str) -> str:
    """The name of one bot's loop ``name``: the default bot's keeps the plain name (as
    before there were several bots), another's ends in ``-<bot>``."""
    return name if bot == DEFAULT_BOT else f"{name}-{bot}"


@dataclass(eq=False)
class _Supervised:
    name: str
    loop: Loop
    task: asyncio.Task[None] | None = None
    # The loop may end now: a return is not restarted, a failure not either.
    stopping: bool = False
    # Set while the loop itself runs (not during a restart backoff).
    running: bool = False
    restarts: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Owns background loops: ``supervisor.start("name", coroutine_function)``."""

    def __init__(
        self,
        *,
        on_restart: Callable[[str], None] = lambda _: None,
        backoff_s: tuple[float, float] = RESTART_BACKOFF_S,
    ) -> None:
        self._loops: dict[str, _Supervised] = {}
        self._on_restart = on_restart
        self._backoff_s = backoff_s
        self._winding_down = False

    def start(self, name: str, loop: Loop) -> None:
        """Run ``loop()`` as task ``name`` until :meth:`stop`, restarting it when it ends."""
        if name in self._loops and not self._done(self._loops[name]):
            raise ValueError(f"a loop named {name} is already supervised")
        entry = _Supervised(name, loop)
        self._loops[name] = entry
        entry.task = asyncio.create_task(self._run(entry), name=name)

    @property
    def names(self) -> list[str]:
        """The loops started so far, in order."""
        return list(self._loops)

    def running(self, name: str) -> bool:
        """True while loop ``name`` runs (False during a restart backoff or after stop)."""
        entry = self._loops.get(name)
        return entry is not None and entry.running and not self._done(entry)

    def restarts(self, name: str) -> int:
        """How many times loop ``name`` was started again after it ended."""
        entry = self._loops.get(name)
        return 0 if entry is None else entry.restarts

    def wind_down(self) -> None:
        """The gateway is stopping: loops that end from now on stay ended."""
        self._winding_down = True
        for entry in self._loops.values():
            entry.stopping = True
            entry.wake.set()

    async def stop(
        self, names: list[str] | None = None, *, grace_s: float = 0.0, timeout_s: float = 5.0
    ) -> None:
        """Stop loops ``names`` (default: all): give them ``grace_s`` to return on their
        own (after their owner told them to), then cancel them, waiting at most
        ``timeout_s`` more. A loop still running after that is logged and left."""
        if names is None:
            entries = list(self._loops.values())
        else:
            entries = [self._loops[n] for n in names if n in self._loops]
        for entry in entries:
            entry.stopping = True
            entry.wake.set()
        tasks = [e.task for e in entries if e.task is not None and not e.task.done()]
        if not tasks:
            return
        if grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            left = deadline - loop.time()
            if left <= 0:
                for task in pending:
                    log.warning("background task %s did not stop; leaving it", task.get_name())
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=min(_RECANCEL_S, left))

    @staticmethod
    def _done(entry: _Supervised) -> bool:
        return entry.task is None or entry.task.done()

    async def _run(self, entry: _Supervised) -> None:
        task = asyncio.current_task()
        failures = 0
        loop = asyncio.get_running_loop()
        while not entry.stopping:
            started = loop.time()
            entry.running = True
            try:
                await entry.loop()
            except asyncio.CancelledError:
                if entry.stopping or (task is not None and task.cancelling()):
                    raise
                # A cancellation nobody asked this task for (a future it awaited was
                # cancelled by someone else): the loop ended all the same.
                log.error("background task %s was cancelled unexpectedly", entry.name)
            except Exception:
                if entry.stopping:
                    log.warning(
                        "background task %s failed while stopping", entry.name, exc_info=True
                    )
                    return
                log.error("background task %s failed", entry.name, exc_info=True)
            else:
                if entry.stopping:
                    return
                log.error("background task %s ended unexpectedly", entry.name)
            finally:
                entry.running = False
            if loop.time() - started >= _HEALTHY_RUN_S:
                failures = 0
            failures += 1
            delay = exponential_backoff(failures, *self._backoff_s)
            log.warning("restarting background task %s in %.1f s", entry.name, delay)
            entry.restarts += 1
            self._on_restart(entry.name)
            entry.wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await entry.wake.wait()
            except TimeoutError:
                pass


class Spell:
    """A run of Redis errors in one loop: logged once at its start and once at its end.

    ``what`` names the activity, e.g. "leasing jobs"; ``count`` is called with the kind
    of every error (the notigate_redis_errors_total counter). A change of kind within a
    spell (connection refused, then LOADING) is logged again: it tells a different story.
    """

    def __init__(
        self,
        what: str,
        *,
        logger: logging.Logger = log,
        count: Callable[[RedisErrorKind], None] = lambda _: None,
    ) -> None:
        self.what = what
        self._log = logger
        self._count = count
        self.kind: RedisErrorKind | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        """True from the first error until the next success."""
        return self.kind is not None

    def failed(self, exc: StoreError) -> None:
        """One more error: counted; logged when it starts a spell or changes its kind."""
        self._count(exc.kind)
        self.failures += 1
        if exc.kind is not self.kind:
            level = logging.ERROR if exc.kind in _BUG_KINDS else logging.WARNING
            self._log.log(level, "%s failed: %s [%s]; retrying", self.what, exc, exc.kind)
        self.kind = exc.kind

    def succeeded(self) -> None:
        """Redis answered again: ends a spell with one line."""
        if self.kind is not None:
            self._log.info(
                "Redis is back: %s again after %d failed attempt%s",
                self.what,
                self.failures,
                "" if self.failures == 1 else "s",
            )
        self.kind = None
        self.failures = 0

    def delay_s(self, base_s: float = 0.05, max_s: float = 1.0) -> float:
        """The backoff before the next attempt: doubled per failure, capped."""
        return exponential_backoff(self.failures, base_s, max_s)


_BUG_KINDS = (RedisErrorKind.SCRIPT, RedisErrorKind.OTHER)
