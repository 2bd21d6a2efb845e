"""gRPC health: SERVING only while Redis answers and Telegram accepts the token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from notigate.sender import TelegramSender, Unauthorized

log = logging.getLogger(__name__)

SERVICE_NAME = "notigate.v1.NotificationService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Policies under which Redis deletes keys to make room: queued jobs would vanish.
_SAFE_POLICY = "noeviction"
# A rejected token is asked about again this often (it may have been a Telegram hiccup).
TOKEN_RECHECK_S = 5.0


def token_rejected_warning(description: str) -> str:
    """What an operator reads in GetStats and the log while Telegram rejects the token."""
    return (
        f"bot token rejected by Telegram ({description}): delivery paused, queued messages "
        "wait; check BOT_TOKEN (revoke and regenerate it with @BotFather if it leaked) and "
        f"restart notigate (the token is rechecked every {TOKEN_RECHECK_S:g} s)"
    )


class TokenState(Enum):
    """What Telegram last said about the bot token."""

    UNKNOWN = "not checked"  # no answer yet (Bot API unreachable since startup)
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class HealthState:
    """One consistent reading of the monitor, for the metrics."""

    serving: bool
    redis_ok: bool
    token: TokenState


class HealthMonitor:
    """Watches Redis and the bot token and publishes the health status."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        redis: Redis,
        sender: TelegramSender,
        *,
        interval_s: float,
        on_token: Callable[[bool], None],
    ) -> None:
        self.servicer = servicer
        self.redis = redis
        self.sender = sender
        self.interval_s = interval_s
        self._on_token = on_token
        self.redis_ok = False
        self.token = TokenState.UNKNOWN
        self._token_warning = ""
        # The last reason getMe got no answer ("" after an answer): logged once per streak.
        self._unreachable = ""
        self._redis_warnings: list[str] = []
        self._published: int | None = None
        self._shutting_down = False
        self._token_changed = asyncio.Event()

    @property
    def token_ok(self) -> bool:
        """True while Telegram accepts the bot token."""
        return self.token is TokenState.ACCEPTED

    @property
    def serving(self) -> bool:
        """True while the gateway can accept and deliver messages."""
        return self.redis_ok and self.token_ok and not self._shutting_down

    @property
    def warnings(self) -> list[str]:
        """Operational warnings for GetStats, each with what to do about it."""
        out = list(self._redis_warnings)
        if self.token is TokenState.REJECTED:
            out.append(self._token_warning)
        elif self.token is TokenState.UNKNOWN and self._unreachable:
            out.append(
                f"cannot reach the Bot API to check the bot token ({self._unreachable}): "
                "delivery waits; check TELEGRAM_API_URL and the network"
            )
        return out

    def state(self) -> HealthState:
        """The current readings (for the health gauges)."""
        return HealthState(serving=self.serving, redis_ok=self.redis_ok, token=self.token)

    async def publish(self) -> None:
        """Push the current status to the health service (only on change)."""
        status = SERVING if self.serving else NOT_SERVING
        if status == self._published:
            return
        self._published = status
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, status)
        log.log(
            logging.INFO if status == SERVING else logging.WARNING,
            "health: %s (redis %s, bot token %s)",
            "SERVING" if status == SERVING else "NOT_SERVING",
            "ok" if self.redis_ok else "unreachable",
            self.token.value,
        )

    def token_rejected(self, description: str) -> None:
        """Telegram answered 401: stop delivering until the token works again.

        Every send in flight and every recheck may report it; only the change is logged.
        """
        self._unreachable = ""
        if self.token is not TokenState.REJECTED:
            self._token_warning = token_rejected_warning(description)
            log.error("Telegram rejected the bot token: %s", self._token_warning)
        self.token = TokenState.REJECTED
        self._on_token(False)
        self._token_changed.set()

    async def shutting_down(self) -> None:
        """Report NOT_SERVING from now on, and end :meth:`run`."""
        self._shutting_down = True
        self._token_changed.set()
        await self.publish()

    async def check_redis(self) -> None:
        """PING Redis; on recovery, re-check its eviction policy."""
        was_ok = self.redis_ok
        try:
            await self.redis.ping()
            self.redis_ok = True
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
            self.redis_ok = False
        except redis_errors.ResponseError as exc:
            # LOADING, MASTERDOWN... Redis is up but cannot serve yet.
            log.debug("Redis not ready: %s", exc)
            self.redis_ok = False
        if self.redis_ok and not was_ok:
            await self.check_eviction_policy()

    async def check_eviction_policy(self) -> None:
        """Warn loudly when Redis may evict keys (queued jobs) under memory pressure."""
        try:
            reply = await self.redis.config_get("maxmemory-policy")
        except redis_errors.RedisError:
            return  # CONFIG may be disabled (managed Redis); nothing to learn then.
        values: dict[Any, Any] = dict(reply)
        policy = values.get(b"maxmemory-policy") or values.get("maxmemory-policy")
        policy_text = policy.decode() if isinstance(policy, bytes) else str(policy or "")
        self._redis_warnings = [
            w for w in self._redis_warnings if not w.startswith("maxmemory-policy")
        ]
        if policy_text and policy_text != _SAFE_POLICY:
            warning = (
                f"maxmemory-policy is {policy_text}: Redis may evict queued jobs under memory "
                "pressure; configure maxmemory-policy noeviction"
            )
            self._redis_warnings.append(warning)
            log.warning("%s", warning)

    async def check_token(self) -> None:
        """getMe: the token is accepted or not (network errors leave it as it was)."""
        result = await self.sender.get_me()
        if isinstance(result, str):
            self._unreachable = ""
            if self.token is TokenState.REJECTED:
                log.warning("bot token accepted again (@%s): delivery resumed", result)
            elif self.token is TokenState.UNKNOWN:
                log.info("bot token accepted (@%s)", result)
            self.token = TokenState.ACCEPTED
            self._on_token(True)
        elif isinstance(result, Unauthorized):
            self.token_rejected(result.description)
        else:
            reason = getattr(result, "description", "") or type(result).__name__
            if not self._unreachable:
                log.warning("cannot reach the Bot API to check the token: %s", result)
            self._unreachable = reason

    async def run(self) -> None:
        """Check Redis every interval; re-check a rejected token every few seconds."""
        token_period = max(TOKEN_RECHECK_S, self.interval_s)
        since_token = token_period
        # Ends on shutting_down(), not only on cancellation: redis-py can swallow a
        # cancellation that lands in a command (redis/redis-py#2028), and the timeout below
        # would then turn every later one into a TimeoutError that the loop survives.
        while not self._shutting_down:
            await self.check_redis()
            if not self.token_ok and since_token >= token_period:
                since_token = 0.0
                await self.check_token()
            await self.publish()
            self._token_changed.clear()
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._token_changed.wait()
            except TimeoutError:
                since_token += self.interval_s
