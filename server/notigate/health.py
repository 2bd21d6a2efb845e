"""gRPC health: SERVING only while Redis answers and Telegram accepts the token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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
        self.token_ok = False
        self.token_error = ""
        self.warnings: list[str] = []
        self._published: int | None = None
        self._shutting_down = False
        self._token_changed = asyncio.Event()

    @property
    def serving(self) -> bool:
        """True while the gateway can accept and deliver messages."""
        return self.redis_ok and self.token_ok and not self._shutting_down

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
            "accepted" if self.token_ok else (self.token_error or "not checked"),
        )

    def token_rejected(self, description: str) -> None:
        """A send was answered 401: stop delivering until the token works again."""
        if self.token_ok:
            log.error("Telegram rejected the bot token (%s); delivery paused", description)
        self.token_ok = False
        self.token_error = "rejected"  # noqa: S105 - a status word, not a secret
        self._on_token(False)
        self._token_changed.set()

    async def shutting_down(self) -> None:
        """Report NOT_SERVING from now on."""
        self._shutting_down = True
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
        self.warnings = [w for w in self.warnings if not w.startswith("maxmemory-policy")]
        if policy_text and policy_text != _SAFE_POLICY:
            warning = (
                f"maxmemory-policy is {policy_text}: Redis may evict queued jobs under memory "
                "pressure; configure maxmemory-policy noeviction"
            )
            self.warnings.append(warning)
            log.warning("%s", warning)

    async def check_token(self) -> None:
        """getMe: the token is accepted or not (network errors leave it as it was)."""
        result = await self.sender.get_me()
        if isinstance(result, str):
            if not self.token_ok:
                log.info("bot token accepted (@%s)", result)
            self.token_ok = True
            self.token_error = ""
            self._on_token(True)
        elif isinstance(result, Unauthorized):
            self.token_rejected(result.description)
        else:
            log.warning("cannot reach the Bot API to check the token: %s", result)

    async def run(self) -> None:
        """Check Redis every interval; re-check a rejected token every few seconds."""
        token_period = max(5.0, self.interval_s)
        since_token = token_period
        while True:
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
