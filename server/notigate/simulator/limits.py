"""Exact sliding-window limits, as the simulator enforces them.

A send is admitted when fewer than N sends were accepted within the last window (entries
with ``t > now - window``). Rejected sends are never recorded, so a client that keeps
retrying does not extend its own penalty.
"""

from __future__ import annotations

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

    def wait_s(self, now: float, limit: int, window_s: float) -> float:
        """Seconds until one more send fits (0.0 when it fits now)."""
        times = self._times
        cutoff = now - window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) < limit:
            return 0.0
        if limit <= 0:
            return window_s
        # After the oldest len-limit+1 entries expire, len-1 < limit remain.
        return times[len(times) - limit] + window_s - now

    def add(self, now: float) -> None:
        """Record an accepted send at ``now`` (callers pass non-decreasing times)."""
        self._times.append(now)


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
    ) -> float:
        """Admit one send and return 0.0, or return the seconds to wait without admitting."""
        glob = self._global.get(token)
        if glob is None:
            glob = self._global[token] = SlidingWindow()
        chat = self._chats.get((token, chat_key))
        if chat is None:
            chat = self._chats[(token, chat_key)] = SlidingWindow()
        global_rate = config.paid_broadcast_rate if paid else config.global_rate
        wait = glob.wait_s(now, global_rate, config.global_window_s)
        if private:
            chat_wait = chat.wait_s(now, config.private_rate, config.private_window_s)
        else:
            chat_wait = chat.wait_s(now, config.group_rate, config.group_window_s)
        wait = max(wait, chat_wait)
        if wait > 0.0:
            return wait
        glob.add(now)
        chat.add(now)
        return 0.0

    def clear(self) -> None:
        """Forget every window."""
        self._global.clear()
        self._chats.clear()
