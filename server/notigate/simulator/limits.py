"""Exact sliding-window limits, as the simulator enforces them.

A send is admitted when fewer than N sends were accepted within the last window (entries
with ``t > now - window``). Rejected sends are never recorded, so a client that keeps
retrying does not extend its own penalty.

A request that sends N messages at once (an album) is admitted when each window has room
for min(N, limit) of them, and then occupies N slots: slot k (from 0) counts at
``now + (k // limit) * window``, so an album larger than a window's limit holds that window
for as many windows as it needs (ten photos to a private chat at 1/s hold it ~10 s). With
N = 1 that is the plain rule.
"""

from __future__ import annotations

import bisect
from collections import deque

from notigate.simulator.config import SimulatorConfig

__all__ = ["SendLimiter", "SlidingWindow"]


class SlidingWindow:
    """Acceptance times of one limited subject, oldest first."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._times)

    def wait_s(self, now: float, limit: int, window_s: float, need: int = 1) -> float:
        """Seconds until ``need`` more sends fit (0.0 when they fit now)."""
        times = self._times
        cutoff = now - window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) + need <= limit:
            return 0.0
        if limit <= 0:
            return window_s
        # After the oldest len+need-limit entries expire, limit-need remain.
        return times[len(times) + need - limit - 1] + window_s - now

    def add(self, now: float) -> None:
        """Record an accepted send at ``now`` (kept in order: album slots may lie ahead)."""
        times = self._times
        if not times or times[-1] <= now:
            times.append(now)
        else:
            times.insert(bisect.bisect_right(times, now), now)

    def add_many(self, now: float, count: int, limit: int, window_s: float) -> None:
        """Record ``count`` sends admitted together at ``now``: slot k at
        ``now + (k // limit) * window_s``."""
        per_window = max(1, limit)
        for k in range(count):
            self.add(now + (k // per_window) * window_s)


class SendLimiter:
    """Per-token global windows and per-(token, chat) windows."""

    __slots__ = ("_chats", "_global")

    def __init__(self) -> None:
        self._global: dict[str, SlidingWindow] = {}
        self._chats: dict[tuple[str, str], SlidingWindow] = {}

    def try_acquire(
        self,
        config: SimulatorConfig,
        *,
        token: str,
        chat_key: str,
        private: bool,
        paid: bool,
        now: float,
        count: int = 1,
    ) -> float:
        """Admit ``count`` sends (see the module's rule) and return 0.0, or return the
        seconds to wait without admitting."""
        glob = self._global.get(token)
        if glob is None:
            glob = self._global[token] = SlidingWindow()
        chat = self._chats.get((token, chat_key))
        if chat is None:
            chat = self._chats[(token, chat_key)] = SlidingWindow()
        global_rate = config.paid_broadcast_rate if paid else config.global_rate
        if private:
            chat_rate, chat_window = config.private_rate, config.private_window_s
        else:
            chat_rate, chat_window = config.group_rate, config.group_window_s
        if count == 1:
            wait = glob.wait_s(now, global_rate, config.global_window_s)
            chat_wait = chat.wait_s(now, chat_rate, chat_window)
        else:
            need_global = max(1, min(count, global_rate))
            wait = glob.wait_s(now, global_rate, config.global_window_s, need_global)
            chat_wait = chat.wait_s(now, chat_rate, chat_window, max(1, min(count, chat_rate)))
        wait = max(wait, chat_wait)
        if wait > 0.0:
            return wait
        if count == 1:
            glob.add(now)
            chat.add(now)
        else:
            glob.add_many(now, count, global_rate, config.global_window_s)
            chat.add_many(now, count, chat_rate, chat_window)
        return 0.0

    def clear(self) -> None:
        """Forget every window."""
        self._global.clear()
        self._chats.clear()
