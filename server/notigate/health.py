"""gRPC health: SERVING only while Redis accepts writes, the dispatchers run and Telegram
accepts the token.

Redis is probed with a write, not only a PING: a read-only replica (READONLY) or a Redis
that cannot persist (MISCONF) answers PING and refuses every Send. A dispatcher proves
it runs by a heartbeat it updates every turn of its loop, including while it waits.

Each bot has a health service name of its own, ``bot/<name>``: SERVING while Telegram
accepts its token and its dispatcher runs. With several bots (a bots file) the gateway's
own names ("" and ``notigate.v1.NotificationService``) leave the bots out, so one revoked
token does not take the others out of a load balancer; with one bot they include it, as
they did before there were several.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from redis.asyncio import Redis

from notigate.errors import REDIS_ERRORS, RedisErrorKind, StoreError, store_error
from notigate.queue.connection import cluster_of
from notigate.queue.keys import QueueKeys
from notigate.sender import TelegramSender, Unauthorized

log = logging.getLogger(__name__)

SERVICE_NAME = "notigate.v1.NotificationService"
# getMe calls in flight at once when many bots' tokens are checked together.
_TOKEN_CHECKS_AT_ONCE = 16
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Policies under which Redis deletes keys to make room: queued jobs would vanish.
_SAFE_POLICY = "noeviction"
# A rejected token is asked about again this often (it may have been a Telegram hiccup).
TOKEN_RECHECK_S = 5.0


def bot_health_name(bot: str) -> str:
    """The health service name that reports ``bot``'s token and dispatcher."""
    return f"bot/{bot}"


def token_rejected_warning(description: str) -> str:
    """What an operator reads in GetStats and the log while Telegram rejects the token."""
    return (
        f"bot token rejected by Telegram ({description}): delivery paused, queued messages "
        "wait; check its token (BOT_TOKEN, or the bots file; revoke and regenerate it with "
        f"@BotFather if it leaked) and restart notigate (the token is rechecked every "
        f"{TOKEN_RECHECK_S:g} s)"
    )


# What each kind of Redis error means for the operator, and what to do about it.
_STORE_ADVICE: dict[RedisErrorKind, str] = {
    RedisErrorKind.CONNECTION: "check REDIS_URL, the network and that Redis runs",
    RedisErrorKind.READONLY: (
        "REDIS_URL names a read-only replica (as during a failover, until the new primary "
        "takes over); point it at the primary, or at an endpoint that follows failovers"
    ),
    RedisErrorKind.MISCONF: (
        "Redis's last background save failed (a full disk, an unwritable dir): free disk "
        "space or fix its dir; writes resume after its next successful save"
    ),
    RedisErrorKind.LOADING: "Redis is loading its dataset after a restart; wait for it",
    RedisErrorKind.BUSY: ("a long script holds Redis; SCRIPT KILL ends it if it wrote nothing yet"),
    RedisErrorKind.OOM: (
        "Redis reached maxmemory; delivery goes on and frees memory; raise maxmemory"
    ),
    RedisErrorKind.REPLICATION: "check Redis's replication (its primary link, min-replicas)",
    RedisErrorKind.CLUSTER: "check the Redis cluster's state",
    RedisErrorKind.SCRIPT: "see the gateway's log for the script error",
    RedisErrorKind.OTHER: "see the gateway's log for the error",
}


def _policy(reply: Any) -> str:
    """maxmemory-policy from a CONFIG GET reply ("" when it has none)."""
    values: dict[Any, Any] = dict(reply)
    policy = values.get(b"maxmemory-policy") or values.get("maxmemory-policy")
    return policy.decode() if isinstance(policy, bytes) else str(policy or "")


class HealthReason(Enum):
    """Why health is NOT_SERVING (the ``reason`` label of notigate_health_reason)."""

    REDIS_UNREACHABLE = "redis_unreachable"
    STORE_NOT_WRITABLE = "store_not_writable"
    DISPATCHER_NOT_RUNNING = "dispatcher_not_running"
    BOT_TOKEN_REJECTED = "bot_token_rejected"  # noqa: S105 (a label, not a secret)
    BOT_TOKEN_UNCHECKED = "bot_token_unchecked"  # noqa: S105
    SHUTTING_DOWN = "shutting_down"


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
    # What Telegram last said of each bot's token, by bot.
    tokens: dict[str, TokenState]
    reasons: frozenset[HealthReason] = frozenset()


class BotHealth:
    """One bot's part of health: Telegram's word on its token, and its delivery loop."""

    def __init__(
        self,
        name: str,
        sender: TelegramSender,
        *,
        on_token: Callable[[bool], None] = lambda _ok: None,
        dispatcher_live: Callable[[], bool] = lambda: True,
        store_error: Callable[[], StoreError | None] = lambda: None,
    ) -> None:
        self.name = name
        self._store_error = store_error
        self.sender = sender
        self._on_token = on_token
        self._dispatcher_live = dispatcher_live
        self.dispatcher_ok = True
        self.token = TokenState.UNKNOWN
        self._token_warning = ""
        # The last reason getMe got no answer ("" after an answer): logged once per streak.
        self._unreachable = ""
        # loop.time() of the last getMe (-inf: never).
        self.checked_at = float("-inf")
        self._published: int | None = None
        # Set when a send learns the token was rejected, so the monitor publishes at once
        # (the monitor's own event, shared by its bots: it waits on one event, not many).
        self.changed = asyncio.Event()

    @property
    def token_ok(self) -> bool:
        """True while Telegram accepts the bot token."""
        return self.token is TokenState.ACCEPTED

    @property
    def reasons(self) -> frozenset[HealthReason]:
        """Why this bot cannot deliver (empty while it can)."""
        out: set[HealthReason] = set()
        if not self.dispatcher_ok:
            out.add(HealthReason.DISPATCHER_NOT_RUNNING)
        if self._store_error() is not None:
            out.add(HealthReason.STORE_NOT_WRITABLE)
        if self.token is TokenState.REJECTED:
            out.add(HealthReason.BOT_TOKEN_REJECTED)
        elif self.token is TokenState.UNKNOWN:
            out.add(HealthReason.BOT_TOKEN_UNCHECKED)
        return frozenset(out)

    @property
    def warnings(self) -> list[str]:
        """This bot's warnings for GetStats, each with what to do about it."""
        out = []
        error = self._store_error()
        if error is not None:
            out.append(
                f"the bot's queue cannot be read ({error}): its messages wait; "
                f"{_STORE_ADVICE[error.kind]}"
            )
        if not self.dispatcher_ok:
            out.append(
                "the delivery loop is not running (no heartbeat): health is NOT_SERVING and "
                "queued messages wait; it is restarted automatically, see the gateway's log"
            )
        if self.token is TokenState.REJECTED:
            out.append(self._token_warning)
        elif self.token is TokenState.UNKNOWN and self._unreachable:
            out.append(
                f"cannot reach the Bot API to check the bot token ({self._unreachable}): "
                "delivery waits; check TELEGRAM_API_URL and the network"
            )
        return out

    def check_dispatcher(self, shutting_down: bool) -> None:
        """Read the dispatcher's liveness (its heartbeat); log a change."""
        live = self._dispatcher_live()
        if live != self.dispatcher_ok and not shutting_down:
            if live:
                log.info("bot %s: the delivery loop runs again", self.name)
            else:
                log.error("bot %s: the delivery loop is not running (no heartbeat)", self.name)
        self.dispatcher_ok = live

    def token_rejected(self, description: str) -> None:
        """Telegram answered 401: stop delivering until the token works again.

        Every send in flight and every recheck may report it; only the change is logged.
        """
        self._unreachable = ""
        if self.token is not TokenState.REJECTED:
            self._token_warning = token_rejected_warning(description)
            log.error("Telegram rejected the bot token of %s: %s", self.name, self._token_warning)
        self.token = TokenState.REJECTED
        self._on_token(False)
        self.changed.set()

    async def check_token(self) -> None:
        """getMe: the token is accepted or not (network errors leave it as it was)."""
        self.checked_at = asyncio.get_running_loop().time()
        result = await self.sender.get_me()
        if isinstance(result, str):
            self._unreachable = ""
            if self.token is TokenState.REJECTED:
                log.warning(
                    "bot token accepted again (%s, @%s): delivery resumed", self.name, result
                )
            elif self.token is TokenState.UNKNOWN:
                log.info("bot token accepted (%s, @%s)", self.name, result)
            self.token = TokenState.ACCEPTED
            self._on_token(True)
        elif isinstance(result, Unauthorized):
            self.token_rejected(result.description)
        else:
            reason = getattr(result, "description", "") or type(result).__name__
            if not self._unreachable:
                log.warning(
                    "bot %s: cannot reach the Bot API to check the token: %s", self.name, result
                )
            self._unreachable = reason

    async def publish(self, servicer: health_aio.HealthServicer, shutting_down: bool) -> None:
        """Push this bot's status to its health service name (only on change)."""
        status = NOT_SERVING if shutting_down or self.reasons else SERVING
        if status != self._published:
            self._published = status
            await servicer.set(bot_health_name(self.name), status)


class HealthMonitor:
    """Watches Redis and the bots' tokens and publishes the health status."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        redis: Redis,
        bots: Sequence[BotHealth],
        *,
        interval_s: float,
        probe_key: str = QueueKeys.for_queue("default").health_probe,
        on_redis_error: Callable[[RedisErrorKind], None] = lambda _: None,
        bots_gate_gateway: bool | None = None,
    ) -> None:
        if not bots:
            raise ValueError("health watches at least one bot")
        self.servicer = servicer
        self.redis = redis
        self.bots = {bot.name: bot for bot in bots}
        self._changed = asyncio.Event()
        for bot in bots:
            bot.changed = self._changed
        self.interval_s = interval_s
        self._probe_key = probe_key
        self._on_redis_error = on_redis_error
        # Whether a bot that cannot deliver makes the whole gateway NOT_SERVING (default:
        # with one bot only, as before there were several).
        self._bots_gate = len(self.bots) == 1 if bots_gate_gateway is None else bots_gate_gateway
        # Redis answered the last probe at all (PING)...
        self.redis_ok = False
        # ... and why it refused the probe's write (None: the write went through).
        self.store_error: StoreError | None = None
        self._redis_warnings: list[str] = []
        self._published: int | None = None
        self._shutting_down = False

    @property
    def _first(self) -> BotHealth:
        return next(iter(self.bots.values()))

    @property
    def token(self) -> TokenState:
        """What Telegram last said of the (first) bot's token."""
        return self._first.token

    @property
    def token_ok(self) -> bool:
        """True while Telegram accepts every bot's token."""
        return all(bot.token_ok for bot in self.bots.values())

    def token_rejected(self, description: str) -> None:
        """The (first) bot's token was rejected (see :meth:`BotHealth.token_rejected`)."""
        self._first.token_rejected(description)

    @property
    def dispatcher_ok(self) -> bool:
        """True while every bot's dispatcher runs."""
        return all(bot.dispatcher_ok for bot in self.bots.values())

    @property
    def serving(self) -> bool:
        """True while the gateway can accept and deliver messages."""
        return not self.reasons

    @property
    def reasons(self) -> frozenset[HealthReason]:
        """Why health is NOT_SERVING (empty while SERVING)."""
        out: set[HealthReason] = set()
        if not self.redis_ok:
            out.add(HealthReason.REDIS_UNREACHABLE)
        elif self.store_error is not None:
            out.add(HealthReason.STORE_NOT_WRITABLE)
        if self._bots_gate:
            for bot in self.bots.values():
                out |= bot.reasons
        if self._shutting_down:
            out.add(HealthReason.SHUTTING_DOWN)
        return frozenset(out)

    @property
    def warnings(self) -> list[str]:
        """Operational warnings for GetStats, each with what to do about it: the
        gateway's (Redis's), and with one bot that bot's."""
        out = list(self._redis_warnings)
        if self.store_error is not None:
            kind = self.store_error.kind
            out.append(
                f"Redis refuses writes ({self.store_error}): health is NOT_SERVING, Sends "
                f"answer UNAVAILABLE and delivery waits; {_STORE_ADVICE[kind]}"
            )
        if len(self.bots) == 1:
            out += self._first.warnings
        return out

    def warnings_of(self, bot: str) -> list[str]:
        """What GetStats warns of for ``bot``: the gateway's warnings and the bot's own."""
        if len(self.bots) == 1:
            return self.warnings
        return [*self.warnings, *self.bots[bot].warnings]

    def state(self) -> HealthState:
        """The current readings (for the health gauges)."""
        reasons = self.reasons
        return HealthState(
            serving=not reasons,
            redis_ok=self.redis_ok,
            tokens={name: bot.token for name, bot in self.bots.items()},
            reasons=reasons,
        )

    async def publish(self) -> None:
        """Push the current status to the health service (only on change)."""
        for bot in self.bots.values():
            await bot.publish(self.servicer, self._shutting_down)
        status = SERVING if self.serving else NOT_SERVING
        if status == self._published:
            return
        self._published = status
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, status)
        log.log(
            logging.INFO if status == SERVING else logging.WARNING,
            "health: %s (redis %s, %s)",
            "SERVING" if status == SERVING else "NOT_SERVING",
            self._redis_text(),
            self._bots_text(),
        )

    def _bots_text(self) -> str:
        if len(self.bots) == 1:
            bot = self._first
            running = "running" if bot.dispatcher_ok else "not running"
            return f"bot token {bot.token.value}, dispatcher {running}"
        ready = sum(not bot.reasons for bot in self.bots.values())
        return f"{ready} of {len(self.bots)} bots delivering"

    def _redis_text(self) -> str:
        if not self.redis_ok:
            return "unreachable"
        if self.store_error is not None:
            return f"refuses writes: {self.store_error.kind}"
        return "ok"

    def check_dispatcher(self) -> None:
        """Read the dispatchers' liveness (their heartbeats); log a change."""
        for bot in self.bots.values():
            bot.check_dispatcher(self._shutting_down)

    async def shutting_down(self) -> None:
        """Report NOT_SERVING from now on, and end :meth:`run`."""
        self._shutting_down = True
        self._changed.set()
        await self.publish()

    async def check_redis(self) -> None:
        """Write the probe key (one round trip); on recovery, re-check the eviction policy.

        An error reply leaves Redis reachable but the store unwritable (READONLY, MISCONF,
        OOM, LOADING, BUSY...); only a failed connection makes Redis unreachable.
        """
        was_ok = self.redis_ok and self.store_error is None
        before = self.store_error
        try:
            # Expires by itself: a probe of a stopped gateway must not linger.
            await self.redis.set(self._probe_key, b"1", px=60_000)
            self.redis_ok = True
            self.store_error = None
        except REDIS_ERRORS as exc:
            error = store_error(exc)
            # Only a failed connection is CONNECTION; any other kind is an answer (LOADING
            # comes as a ConnectionError too), so Redis is up.
            self.redis_ok = error.kind is not RedisErrorKind.CONNECTION
            self.store_error = error if self.redis_ok else None
            self._on_redis_error(error.kind)
        now = self.store_error
        if now is not None and (before is None or before.kind is not now.kind):
            log.error("Redis refuses writes: %s; %s", now, _STORE_ADVICE[now.kind])
        elif now is None and before is not None and self.redis_ok:
            log.info("Redis accepts writes again")
        if self.redis_ok and self.store_error is None and not was_ok:
            await self.check_eviction_policy()

    async def check_eviction_policy(self) -> None:
        """Warn loudly when Redis may evict keys (queued jobs) under memory pressure (on a
        cluster: any primary, each holds some queues' slots)."""
        cluster = cluster_of(self.redis)
        try:
            if cluster is None:
                replies: list[Any] = [await self.redis.config_get("maxmemory-policy")]
            else:
                by_node = await cluster.config_get(
                    "maxmemory-policy", target_nodes=cluster.PRIMARIES
                )
                # One primary answers unwrapped; several, by node name.
                nested = isinstance(by_node, dict) and all(
                    isinstance(v, dict) for v in by_node.values()
                )
                replies = list(by_node.values()) if nested else [by_node]
        except REDIS_ERRORS:
            return  # CONFIG may be disabled (managed Redis); nothing to learn then.
        policies = sorted({_policy(reply) for reply in replies} - {"", _SAFE_POLICY})
        self._redis_warnings = [
            w for w in self._redis_warnings if not w.startswith("maxmemory-policy")
        ]
        if policies:
            warning = (
                f"maxmemory-policy is {', '.join(policies)}: Redis may evict queued jobs under "
                "memory pressure; configure maxmemory-policy noeviction"
            )
            self._redis_warnings.append(warning)
            log.warning("%s", warning)

    async def check_token(self, *, due_only: bool = False) -> None:
        """getMe for every bot (``due_only``: those whose token is not accepted and was not
        asked about for TOKEN_RECHECK_S), a few at a time."""
        now = asyncio.get_running_loop().time()
        period = max(TOKEN_RECHECK_S, self.interval_s)
        bots = [
            bot
            for bot in self.bots.values()
            if not due_only or (not bot.token_ok and now - bot.checked_at >= period)
        ]
        gate = asyncio.Semaphore(_TOKEN_CHECKS_AT_ONCE)

        async def check(bot: BotHealth) -> None:
            async with gate:
                await bot.check_token()

        await asyncio.gather(*(check(bot) for bot in bots))

    async def run(self) -> None:
        """Check Redis every interval; re-check a token that is not accepted every few
        seconds. An accepted token is not asked about again (a send that meets a 401 says
        so), so a bot that delivers costs the loop only a look at its heartbeat."""
        # Ends on shutting_down(), not only on cancellation: redis-py can swallow a
        # cancellation that lands in a command (redis/redis-py#2028), and the timeout below
        # would then turn every later one into a TimeoutError that the loop survives.
        while not self._shutting_down:
            await self.check_redis()
            self.check_dispatcher()
            await self.check_token(due_only=True)
            await self.publish()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._changed.wait()
