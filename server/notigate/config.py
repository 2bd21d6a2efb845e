"""The one configuration object, built from the environment and CLI flags.

Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "https://api.telegram.org"
# Where sandbox mode serves its Bot API simulator: the port `notigate simulator` uses too,
# so the README's sandbox commands find it without flags.
DEFAULT_SANDBOX_LISTEN = "127.0.0.1:8081"
# Where sandbox mode serves the dashboard unless NOTIGATE_DASHBOARD_LISTEN says otherwise.
DEFAULT_SANDBOX_DASHBOARD_LISTEN = "127.0.0.1:8082"


class ConfigError(ValueError):
    """Settings are missing, malformed or out of range: one line per problem, all of them."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = problems[0]
        else:
            text = f"{len(problems)} settings are wrong:" + "".join(f"\n  {p}" for p in problems)
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class Limits:
    """Telegram's limits as the queue enforces them (sliding windows)."""

    global_rate: int = 25
    global_window_ms: int = 1000
    private_rate: int = 1
    private_window_ms: int = 1000
    group_rate: int = 20
    group_window_ms: int = 60_000
    # Added to the windows: a send is recorded when it is leased, some ms before
    # Telegram receives it, and that jitter (scheduling, network) must not
    # squeeze two sends into one of Telegram's windows. A chat's 1 s window can
    # afford a wide margin; the bot-wide one is kept tight for throughput.
    global_margin_ms: int = 8
    chat_margin_ms: int = 100
    # Bot-wide sends are spaced evenly; at most as many as fit in this span at
    # the bot-wide rate go back to back (1 at 30/s, 19 at 1000/s).
    global_burst_ms: int = 20


# The bot a lone BOT_TOKEN is, and the one an empty `bot` field names.
DEFAULT_BOT = "default"
# Bot names: part of job ids ("<bot>:<n>"), Redis keys, metric labels and health names.
BOT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class BotSettings:
    """One bot of the gateway (a ``[bots.<name>]`` table of the bots file). ``None``
    fields take the gateway-wide setting."""

    name: str
    # None: only in sandbox mode, which makes one up for its simulator.
    token: str | None = field(default=None, repr=False)
    api_url: str | None = None
    limits: Limits | None = None
    paid_broadcast: bool | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class TokenBinding:
    """An API token (kept as its SHA-256) that may use only ``bots``."""

    sha256: bytes = field(repr=False)
    bots: frozenset[str]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything notigate can be configured with. Units are in the names."""

    # repr=False: the URL may carry the Redis password.
    redis_url: str | None = field(default=None, repr=False)
    bot_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = DEFAULT_API_URL
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("data")
    sandbox: bool = False
    # host:port of the sandbox's Bot API simulator (port 0: any free one).
    sandbox_listen: str = DEFAULT_SANDBOX_LISTEN
    queue_name: str = "default"
    # Several bots from NOTIGATE_BOTS_FILE (empty: one bot, DEFAULT_BOT, with bot_token).
    bots_file: Path | None = None
    bots: tuple[BotSettings, ...] = ()
    # API tokens that may use only some bots (from the bots file); each is accepted.
    token_bindings: tuple[TokenBinding, ...] = field(default=(), repr=False)
    # REDIS_URL names a node of a Redis Cluster (redis-py's cluster client).
    redis_cluster: bool = False
    # host:port of Sentinels and the name of the primary they watch (instead of REDIS_URL).
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str | None = None
    # A Send is acknowledged once this many replicas have it (WAIT), or fails UNAVAILABLE
    # when they do not confirm it within the timeout.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    limits: Limits = field(default_factory=Limits)
    # allow_paid_broadcast on every send and the bot-wide limit raised to match.
    paid_broadcast: bool = False
    paid_broadcast_rate: int = 1000
    concurrency: int = 64
    lease_ms: int = 15_000
    max_stalls: int = 3
    max_attempts: int = 5
    backoff_base_ms: int = 2_000
    backoff_max_ms: int = 300_000
    keep_completed: int = 100
    keep_failed: int = 1_000
    keep_age_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    # 429s with a short wait (<= bot_pause_max_ms) from this many distinct chats within
    # the window pause the whole bot; so do 429s of any wait from bot_pause_flood_chats.
    bot_pause_chats: int = 3
    bot_pause_window_ms: int = 5_000
    # The longest bot-wide pause; a longer retry_after is that chat's own flood wait.
    bot_pause_max_ms: int = 60_000
    bot_pause_flood_chats: int = 10
    send_connect_timeout_s: float = 5.0
    send_read_timeout_s: float = 15.0
    shutdown_grace_s: float = 10.0
    redis_timeout_s: float = 1.0
    health_interval_s: float = 1.0
    max_batch: int = 1_000
    # Under concurrent Sends, wait this long to gather more of them into one enqueue call.
    send_linger_ms: int = 2
    max_message_bytes: int = 1 << 20
    # Files stored through UploadFile: the largest one (Telegram's multipart limit for
    # non-photos), all of them together (Redis memory), and how long one no unfinished job
    # references is kept (so a failed job retried later still finds it).
    upload_max_bytes: int = 50_000_000
    upload_budget_bytes: int = 512 << 20
    upload_ttl_s: int = 24 * 3600
    # The event stream (WatchEvents, webhooks): the most events kept, and the age past
    # which they go; events_max 0 turns the stream off.
    events_max: int = 100_000
    events_max_age_s: int = 24 * 3600
    # Events POSTed to a webhook (None: none), signed with the secret, in these states
    # (JobState names, lower case); one unacknowledged past the age is undeliverable.
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_states: tuple[str, ...] = ("completed", "failed")
    webhook_max_age_s: int = 24 * 3600
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 16
    # Connection limits on the gRPC port (notigate.connection_limits); 0 turns off the
    # idle, age and connection-count limits.
    grpc_handshake_timeout_ms: int = 10_000
    grpc_max_connections: int = 1_000
    grpc_max_connection_idle_ms: int = 300_000
    grpc_max_connection_age_ms: int = 3_600_000
    grpc_max_connection_age_grace_ms: int = 30_000
    grpc_keepalive_time_ms: int = 60_000
    grpc_keepalive_timeout_ms: int = 20_000
    grpc_min_ping_interval_ms: int = 10_000
    grpc_max_ping_strikes: int = 2
    grpc_max_concurrent_streams: int = 100
    # Bearer tokens accepted by the API (empty: no authentication).
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    # Bearer tokens that may only read: GetJob, ListJobs, GetStats, WatchEvents and the
    # other reads, and the dashboard's views without its actions.
    readonly_tokens: tuple[str, ...] = field(default=(), repr=False)
    # Serve reflection without a token even when api_tokens is set.
    reflection_open: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Require client certificates signed by this CA (mutual TLS).
    tls_client_ca_file: Path | None = None
    # host:port of the Prometheus /metrics endpoint (None: off).
    metrics_listen: str | None = None
    # host:port of the web dashboard (None: off; sandbox mode: DEFAULT_SANDBOX_DASHBOARD_LISTEN
    # unless set, "off" turns it off there too).
    dashboard_listen: str | None = None
    # Serve the dashboard beyond loopback although no API token guards it.
    dashboard_open: bool = False
    # How long a dashboard login lasts.
    dashboard_session_s: int = 12 * 3600
    # Alerts (GetStats.alerts, the dashboard, notigate_alert_firing): more than this share
    # of the deliveries that ended within the window failed (once at least
    # alert_failure_min_jobs ended there); the oldest due message waited longer than this.
    alert_failure_rate: float = 0.2
    alert_failure_window_s: int = 300
    alert_failure_min_jobs: int = 10
    alert_backlog_age_s: int = 300
    log_format: str = "text"
    # The embedded Valkey's appendfsync: everysec (default), always, or no (see README).
    embedded_fsync: str = "everysec"
    # What from_env noticed but could not log (logging is set up after it runs), e.g. a
    # deprecated variable; `serve` logs each as a warning at startup.
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def global_rate(self) -> int:
        """Bot-wide sends per window actually enforced."""
        return self.paid_broadcast_rate if self.paid_broadcast else self.limits.global_rate

    def bot_list(self) -> tuple[BotSettings, ...]:
        """Every bot, in the bots file's order (without one: DEFAULT_BOT, with bot_token)."""
        return self.bots or (BotSettings(DEFAULT_BOT, self.bot_token),)

    def for_bot(self, bot: BotSettings) -> Settings:
        """These settings as ``bot`` sees them: its token, Bot API, limits and mode."""
        return dataclasses.replace(
            self,
            bot_token=bot.token,
            telegram_api_url=bot.api_url or self.telegram_api_url,
            limits=bot.limits or self.limits,
            paid_broadcast=self.paid_broadcast
            if bot.paid_broadcast is None
            else bot.paid_broadcast,
            concurrency=bot.concurrency or self.concurrency,
        )

    @property
    def has_tokens(self) -> bool:
        """Whether any API token is configured (read-only ones and the bots file's too)."""
        return bool(self.api_tokens or self.token_bindings or self.readonly_tokens)

    def dashboard_address(self) -> str | None:
        """host:port the dashboard listens on, or None when it is off."""
        listen = self.dashboard_listen
        if listen == "off":
            return None
        if listen is None and self.sandbox:
            return DEFAULT_SANDBOX_DASHBOARD_LISTEN
        return listen

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (the object itself is frozen)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Range:
    """The sane values of a numeric setting, both ends included; the unit is the
    field name's suffix (``_ms``, ``_s``, ``_bytes``). ``off``: a value outside the range
    that turns the setting off (e.g. 0: no limit)."""

    low: float
    high: float
    off: float | None = None

    def allows(self, value: float) -> bool:
        # `low <= v <= high` is also False for NaN.
        return self.low <= value <= self.high or (self.off is not None and value == self.off)

    def text(self) -> str:
        """``between 1000 and 600000``, as refusals say it."""
        return f"between {_number(self.low)} and {_number(self.high)}"


# Every numeric setting, by field ("limits." for Limits): a value outside its range is
# refused at startup. A new numeric setting adds one line here (a test checks none is
# missing) and the range to its README row.
RANGES: dict[str, Range] = {
    # Telegram: about 30/s bot-wide (1000/s with paid broadcasts), 1/s per private
    # chat, 20/min per group; against Telegram higher values only earn 429s. A million
    # is as good as no limit, for a Bot API without Telegram's (the simulator).
    "limits.global_rate": Range(1, 1_000_000),
    "limits.global_window_ms": Range(100, 60_000),
    "limits.private_rate": Range(1, 1_000_000),
    "limits.private_window_ms": Range(100, 60_000),
    "limits.group_rate": Range(1, 1_000_000),
    "limits.group_window_ms": Range(1000, 3_600_000),
    "limits.global_margin_ms": Range(0, 1000),
    "limits.chat_margin_ms": Range(0, 1000),
    "limits.global_burst_ms": Range(0, 1000),
    "paid_broadcast_rate": Range(1, 1000),
    # Each send in flight holds a connection (a file descriptor).
    "concurrency": Range(1, 1024),
    # Renewed every third; longer leases only delay the recovery of a crashed gateway's jobs.
    "lease_ms": Range(1000, 600_000),
    "max_stalls": Range(1, 100),
    "max_attempts": Range(1, 100),
    "backoff_base_ms": Range(10, 600_000),
    "backoff_max_ms": Range(100, 86_400_000),
    "keep_completed": Range(0, 10_000_000),
    "keep_failed": Range(0, 10_000_000),
    "keep_age_s": Range(60, 365 * 24 * 3600),
    "idempotency_ttl_s": Range(60, 30 * 24 * 3600),
    "bot_pause_chats": Range(1, 1000),
    "bot_pause_window_ms": Range(100, 3_600_000),
    "bot_pause_max_ms": Range(1000, 300_000),
    "bot_pause_flood_chats": Range(1, 1000),
    "send_connect_timeout_s": Range(0.1, 120),
    "send_read_timeout_s": Range(1, 600),
    "shutdown_grace_s": Range(0.1, 3600),
    "redis_timeout_s": Range(0.05, 60),
    "health_interval_s": Range(0.05, 60),
    # The API's own limit per SendBatch (validation.MAX_BATCH).
    "max_batch": Range(1, 1000),
    "send_linger_ms": Range(0, 1000),
    "max_message_bytes": Range(64 << 10, 64 << 20),
    "upload_max_bytes": Range(1, 2_000_000_000),
    "upload_budget_bytes": Range(1 << 20, 1 << 40),
    "upload_ttl_s": Range(60, 30 * 24 * 3600),
    "events_max": Range(1000, 100_000_000, off=0),
    "events_max_age_s": Range(60, 30 * 24 * 3600),
    "webhook_max_age_s": Range(60, 30 * 24 * 3600),
    "webhook_timeout_s": Range(0.1, 120),
    "webhook_concurrency": Range(1, 1024),
    # The gRPC port's connection limits (notigate.connection_limits); 0 turns some off.
    "grpc_handshake_timeout_ms": Range(1000, 120_000),
    "grpc_max_connections": Range(10, 100_000, off=0),
    "grpc_max_connection_idle_ms": Range(10_000, 86_400_000, off=0),
    "grpc_max_connection_age_ms": Range(60_000, 86_400_000, off=0),
    "grpc_max_connection_age_grace_ms": Range(1000, 600_000),
    "grpc_keepalive_time_ms": Range(10_000, 7_200_000),
    "grpc_keepalive_timeout_ms": Range(1000, 60_000),
    "grpc_min_ping_interval_ms": Range(1000, 300_000),
    "grpc_max_ping_strikes": Range(1, 10, off=0),
    "grpc_max_concurrent_streams": Range(10, 1000),
    # WAIT on a shard with more replicas than it has never returns enough of them.
    "redis_wait_replicas": Range(0, 16),
    "redis_wait_timeout_ms": Range(10, 60_000),
    "dashboard_session_s": Range(60, 30 * 24 * 3600),
    "alert_failure_rate": Range(0.01, 1),
    # Throughput is sampled every 10 s over the last hour (GetThroughput).
    "alert_failure_window_s": Range(60, 3600),
    "alert_failure_min_jobs": Range(1, 1_000_000),
    "alert_backlog_age_s": Range(10, 7 * 24 * 3600),
}


@dataclass(frozen=True, slots=True)
class Relation:
    """``left`` must be ``op`` ``factor * right`` (``op``: "<=" or ">="), because ``why``."""

    left: str
    op: str
    right: str
    why: str
    factor: float = 1

    def holds(self, left: float, right: float) -> bool:
        bound = self.factor * right
        return left <= bound if self.op == "<=" else left >= bound


# Settings that are each in range but do not work together.
RELATIONS: tuple[Relation, ...] = (
    Relation("backoff_base_ms", "<=", "backoff_max_ms", "the backoff's cap is its largest step"),
    # Renewals start every third of the lease: one that takes the whole Redis timeout
    # must still land before the lease ends, or a slow Redis makes live sends look stalled.
    Relation(
        "lease_ms",
        ">=",
        "redis_timeout_s",
        "a renewal, a third into the lease, may take the whole Redis timeout",
        factor=1500,
    ),
)

# Settings with a fixed set of values.
CHOICES: dict[str, tuple[str, ...]] = {
    "log_format": ("text", "json"),
    "embedded_fsync": ("everysec", "always", "no"),
}


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _BOOL_TRUE:
        return True
    if value in _BOOL_FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _parse_int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _parse_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


# Environment variable -> (field, parser). Limits fields live in `limits`.
_ENV: dict[str, tuple[str, str]] = {
    "REDIS_URL": ("redis_url", "str"),
    "BOT_TOKEN": ("bot_token", "str"),
    "TELEGRAM_API_URL": ("telegram_api_url", "str"),
    "NOTIGATE_LISTEN": ("listen", "str"),
    "NOTIGATE_DATA_DIR": ("data_dir", "path"),
    "NOTIGATE_SANDBOX_LISTEN": ("sandbox_listen", "str"),
    "NOTIGATE_QUEUE": ("queue_name", "str"),
    "NOTIGATE_BOTS_FILE": ("bots_file", "path"),
    "NOTIGATE_REDIS_CLUSTER": ("redis_cluster", "bool"),
    "NOTIGATE_REDIS_SENTINELS": ("redis_sentinels", "tokens"),
    "NOTIGATE_REDIS_SENTINEL_MASTER": ("redis_sentinel_master", "str"),
    "NOTIGATE_REDIS_WAIT_REPLICAS": ("redis_wait_replicas", "int"),
    "NOTIGATE_REDIS_WAIT_TIMEOUT_MS": ("redis_wait_timeout_ms", "int1"),
    "NOTIGATE_PAID_BROADCAST": ("paid_broadcast", "bool"),
    "NOTIGATE_CONCURRENCY": ("concurrency", "int1"),
    "NOTIGATE_LEASE_MS": ("lease_ms", "int1"),
    "NOTIGATE_MAX_ATTEMPTS": ("max_attempts", "int1"),
    "NOTIGATE_BACKOFF_BASE_MS": ("backoff_base_ms", "int"),
    "NOTIGATE_BACKOFF_MAX_MS": ("backoff_max_ms", "int"),
    "NOTIGATE_KEEP_COMPLETED": ("keep_completed", "int"),
    "NOTIGATE_KEEP_FAILED": ("keep_failed", "int"),
    "NOTIGATE_KEEP_AGE_S": ("keep_age_s", "int"),
    "NOTIGATE_SHUTDOWN_GRACE_S": ("shutdown_grace_s", "float"),
    "NOTIGATE_SEND_LINGER_MS": ("send_linger_ms", "int"),
    "NOTIGATE_UPLOAD_MAX_BYTES": ("upload_max_bytes", "int1"),
    "NOTIGATE_UPLOAD_BUDGET_BYTES": ("upload_budget_bytes", "int1"),
    "NOTIGATE_UPLOAD_TTL_S": ("upload_ttl_s", "int1"),
    "NOTIGATE_BOT_PAUSE_MAX_MS": ("bot_pause_max_ms", "int1"),
    "NOTIGATE_EVENTS_MAX": ("events_max", "int"),
    "NOTIGATE_EVENTS_MAX_AGE": ("events_max_age_s", "int"),
    "NOTIGATE_WEBHOOK_URL": ("webhook_url", "str"),
    "NOTIGATE_WEBHOOK_SECRET": ("webhook_secret", "str"),
    "NOTIGATE_WEBHOOK_STATES": ("webhook_states", "tokens"),
    "NOTIGATE_WEBHOOK_MAX_AGE": ("webhook_max_age_s", "int"),
    "NOTIGATE_WEBHOOK_TIMEOUT_S": ("webhook_timeout_s", "float"),
    "NOTIGATE_WEBHOOK_CONCURRENCY": ("webhook_concurrency", "int1"),
    "NOTIGATE_API_TOKEN": ("api_tokens", "tokens"),
    "NOTIGATE_REFLECTION_OPEN": ("reflection_open", "bool"),
    "NOTIGATE_TLS_CERT": ("tls_cert_file", "path"),
    "NOTIGATE_TLS_KEY": ("tls_key_file", "path"),
    "NOTIGATE_TLS_CLIENT_CA": ("tls_client_ca_file", "path"),
    "NOTIGATE_METRICS_LISTEN": ("metrics_listen", "str"),
    "NOTIGATE_READONLY_TOKEN": ("readonly_tokens", "tokens"),
    "NOTIGATE_DASHBOARD_LISTEN": ("dashboard_listen", "str"),
    "NOTIGATE_DASHBOARD_OPEN": ("dashboard_open", "bool"),
    "NOTIGATE_DASHBOARD_SESSION_S": ("dashboard_session_s", "int1"),
    "NOTIGATE_ALERT_FAILURE_RATE": ("alert_failure_rate", "float"),
    "NOTIGATE_ALERT_FAILURE_WINDOW_S": ("alert_failure_window_s", "int1"),
    "NOTIGATE_ALERT_FAILURE_MIN_JOBS": ("alert_failure_min_jobs", "int1"),
    "NOTIGATE_ALERT_BACKLOG_AGE_S": ("alert_backlog_age_s", "int1"),
    "NOTIGATE_LOG_FORMAT": ("log_format", "str"),
    "NOTIGATE_EMBEDDED_FSYNC": ("embedded_fsync", "str"),
    "NOTIGATE_GRPC_HANDSHAKE_TIMEOUT_MS": ("grpc_handshake_timeout_ms", "int1"),
    "NOTIGATE_GRPC_MAX_CONNECTIONS": ("grpc_max_connections", "int"),
    "NOTIGATE_GRPC_MAX_CONNECTION_IDLE_MS": ("grpc_max_connection_idle_ms", "int"),
    "NOTIGATE_GRPC_MAX_CONNECTION_AGE_MS": ("grpc_max_connection_age_ms", "int"),
    "NOTIGATE_GRPC_MAX_CONNECTION_AGE_GRACE_MS": ("grpc_max_connection_age_grace_ms", "int"),
    "NOTIGATE_GRPC_KEEPALIVE_TIME_MS": ("grpc_keepalive_time_ms", "int1"),
    "NOTIGATE_GRPC_KEEPALIVE_TIMEOUT_MS": ("grpc_keepalive_timeout_ms", "int1"),
    "NOTIGATE_GRPC_MIN_PING_INTERVAL_MS": ("grpc_min_ping_interval_ms", "int"),
    "NOTIGATE_GRPC_MAX_PING_STRIKES": ("grpc_max_ping_strikes", "int"),
    "NOTIGATE_GRPC_MAX_CONCURRENT_STREAMS": ("grpc_max_concurrent_streams", "int1"),
}
_ENV_LIMITS: dict[str, str] = {
    "NOTIGATE_GLOBAL_RATE": "global_rate",
    "NOTIGATE_PRIVATE_RATE": "private_rate",
    "NOTIGATE_GROUP_RATE": "group_rate",
    "NOTIGATE_GROUP_WINDOW_MS": "group_window_ms",
    "NOTIGATE_GLOBAL_MARGIN_MS": "global_margin_ms",
    "NOTIGATE_CHAT_MARGIN_MS": "chat_margin_ms",
}


# Old names still read, with a notice; the value goes to the new name's field.
_DEPRECATED: dict[str, str] = {
    # The clients read NOTIGATE_API_TOKEN: one name for both sides of a deployment.
    "NOTIGATE_API_TOKENS": "NOTIGATE_API_TOKEN",
}

ENV_VARS: tuple[str, ...] = (*_ENV, *_ENV_LIMITS, *_DEPRECATED)
"""Every environment variable :func:`from_env` reads."""


def _convert(name: str, kind: str, raw: str, bounds: Range | None = None) -> Any:
    """``raw`` as a value of ``kind``; with ``bounds``, checking them is left to ``_problems``."""
    if kind == "str":
        # An empty value means "not set", as in most deployments.
        return raw or None
    if kind == "tokens":
        return tuple(t.strip() for t in raw.split(",") if t.strip())
    if kind == "path":
        return Path(raw) if raw else None
    if kind == "bool":
        return _parse_bool(name, raw)
    if bounds is not None:
        return _parse_ranged(name, kind, raw, bounds)
    if kind == "float":
        return _parse_float(name, raw)
    return _parse_int(name, raw, minimum=1 if kind == "int1" else 0)


def _parse_ranged(name: str, kind: str, raw: str, bounds: Range) -> float:
    number = "a number" if kind == "float" else "an integer"
    try:
        return float(raw) if kind == "float" else int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {number} {bounds.text()}, got {raw!r}") from None


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from environment variables; ``overrides`` (CLI flags) win.

    Raises :class:`ConfigError` listing every problem found, not only the first.
    """
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    notices: list[str] = []
    problems: list[str] = []
    for name, (attr, kind) in _ENV.items():
        try:
            value = _convert(name, kind, source[name], RANGES.get(attr)) if name in source else None
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if value is not None:
            values[attr] = value
    for old, new in _DEPRECATED.items():
        # Empty counts as unset: compose files often pass `${VAR:-}` through.
        if not source.get(old, "").strip():
            continue
        if source.get(new, "").strip():
            notices.append(f"{old} is deprecated and ignored: {new} is set")
            continue
        notices.append(f"{old} is deprecated: rename it to {new} (same comma-separated format)")
        attr, kind = _ENV[new]
        values[attr] = _convert(old, kind, source[old])
    limit_values: dict[str, int] = {}
    for name, attr in _ENV_LIMITS.items():
        if name in source:
            try:
                limit_values[attr] = _convert(
                    name, "int", source[name], RANGES.get(f"limits.{attr}")
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("redis_url") and "embedded_fsync" in values:
        notices.append(
            "NOTIGATE_EMBEDDED_FSYNC has no effect with REDIS_URL: set appendfsync on that Redis"
        )
    if "global_rate" in values:
        limit_values["global_rate"] = values.pop("global_rate")
    limits = Limits(**limit_values)
    if values.get("bots_file") is not None:
        try:
            values["bots"], values["token_bindings"] = load_bots_file(
                values["bots_file"], source, limits
            )
        except ConfigError as exc:
            problems.extend(exc.problems)
    token = values.get("bot_token")
    if values.get("bots") and token and all(b.token != token for b in values["bots"]):
        notices.append(
            "BOT_TOKEN is ignored: NOTIGATE_BOTS_FILE names the bots "
            '(a bot\'s token_env = "BOT_TOKEN" reads it)'
        )
    settings = Settings(**values, limits=limits, notices=tuple(notices))
    problems += _problems(settings, flags={k for k, v in overrides.items() if v is not None})
    if problems:
        raise ConfigError(*problems)
    return settings


def validate(settings: Settings) -> None:
    """Reject settings that cannot work: one :class:`ConfigError` naming every problem."""
    problems = _problems(settings)
    if problems:
        raise ConfigError(*problems)


_FIELD_VARS: dict[str, str] = {
    **{attr: name for name, (attr, _) in _ENV.items()},
    **{f"limits.{attr}": name for name, attr in _ENV_LIMITS.items()},
}


def env_var(path: str) -> str | None:
    """The environment variable of a setting (``lease_ms``, ``limits.group_rate``), if any."""
    return _FIELD_VARS.get(path)


def _label(path: str, flags: Set[str] = frozenset()) -> str:
    """How a refusal names a setting: its flag when that set it, else its variable.
    (Every flag of ``serve`` mirrors a variable; an override without one is a field.)"""
    name = env_var(path)
    attr = path.removeprefix("limits.")
    if name is not None and attr in flags:
        return f"--{attr.replace('_', '-')}"
    return name or path


def _named(path: str, value: Any, flags: Set[str] = frozenset()) -> str:
    """``NOTIGATE_LEASE_MS=1``, or ``--concurrency=0 (NOTIGATE_CONCURRENCY)`` from a flag."""
    label = _label(path, flags)
    name = env_var(path)
    text = f"{label}={_number(value)}"
    return f"{text} ({name})" if name and label != name else text


def _value(settings: Settings, path: str) -> Any:
    owner: Any = settings
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def _unit(path: str) -> str:
    for suffix, unit in (("_ms", " ms"), ("_s", " s"), ("_bytes", " bytes")):
        if path.endswith(suffix):
            return unit
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _problems(settings: Settings, flags: Set[str] = frozenset()) -> list[str]:
    problems = []
    for path, bounds in RANGES.items():
        value = _value(settings, path)
        if not bounds.allows(value):
            off = "" if bounds.off is None else f", or {_number(bounds.off)} (off)"
            refusal = f"is out of range: must be {bounds.text()}{_unit(path)}{off}"
            problems.append(f"{_named(path, value, flags)} {refusal}")
    for rel in RELATIONS:
        left, right = _value(settings, rel.left), _value(settings, rel.right)
        in_range = all(
            RANGES[p].allows(v) for p, v in ((rel.left, left), (rel.right, right)) if p in RANGES
        )
        if in_range and not rel.holds(left, right):
            bound = _named(rel.right, right, flags)
            if rel.factor != 1:
                bound = f"{_number(rel.factor * right)} ({_number(rel.factor)} * {bound})"
            problems.append(f"{_named(rel.left, left, flags)} must be {rel.op} {bound}: {rel.why}")
    for attr, allowed in CHOICES.items():
        value = getattr(settings, attr)
        if value not in allowed:
            options = f"{', '.join(allowed[:-1])} or {allowed[-1]}"
            problems.append(f"{_label(attr, flags)} must be {options}, got {value!r}")
    url = settings.telegram_api_url
    if not url.startswith(("http://", "https://")):
        problems.append(f"TELEGRAM_API_URL must be an http(s) URL, got {url!r}")
    if settings.redis_url is not None and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        problems.append("REDIS_URL must start with redis://, rediss:// or unix://")
    host, sep, port = settings.listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        problems.append(f"NOTIGATE_LISTEN must be host:port, got {settings.listen!r}")
    host, sep, port = settings.sandbox_listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        problems.append(
            f"NOTIGATE_SANDBOX_LISTEN must be host:port (port 0: any free one), "
            f"got {settings.sandbox_listen!r}"
        )
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        problems.append("NOTIGATE_TLS_CERT and NOTIGATE_TLS_KEY must be set together")
    problems += _webhook_problems(settings)
    problems += _redis_problems(settings)
    problems += _dashboard_problems(settings)
    if settings.bots and not settings.sandbox:
        missing = [bot.name for bot in settings.bots if not bot.token]
        if missing:
            problems.append(
                f"NOTIGATE_BOTS_FILE: no token for bot(s) {', '.join(missing)} "
                "(token or token_env; only sandbox mode makes them up)"
            )
    for bot in settings.bots:
        if bot.api_url is not None and not bot.api_url.startswith(("http://", "https://")):
            problems.append(
                f"NOTIGATE_BOTS_FILE: [bots.{bot.name}]: api_url must be an http(s) URL, "
                f"got {bot.api_url!r}"
            )
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        problems.append("NOTIGATE_TLS_CLIENT_CA needs NOTIGATE_TLS_CERT and NOTIGATE_TLS_KEY")
    return problems


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is loopback."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dashboard_problems(settings: Settings) -> list[str]:
    problems = []
    listen = settings.dashboard_listen
    if listen is not None and listen != "off":
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            problems.append(
                f"NOTIGATE_DASHBOARD_LISTEN must be host:port (port 0: any free one) or off, "
                f"got {listen!r}"
            )
        elif not (settings.has_tokens or is_loopback(host) or settings.dashboard_open):
            problems.append(
                f"NOTIGATE_DASHBOARD_LISTEN={listen} is beyond loopback, but no API token "
                "guards the dashboard: set NOTIGATE_API_TOKEN (or NOTIGATE_READONLY_TOKEN), "
                "or NOTIGATE_DASHBOARD_OPEN=1 to serve it to anyone who can reach it"
            )
    both = set(settings.readonly_tokens) & set(settings.api_tokens)
    if both:
        problems.append(
            f"{len(both)} token(s) are both in NOTIGATE_API_TOKEN and NOTIGATE_READONLY_TOKEN: "
            "a token is either read-only or not"
        )
    return problems


# The states a webhook may ask for (JobState names, lower case).
WEBHOOK_STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled")


def _webhook_problems(settings: Settings) -> list[str]:
    problems = []
    url = settings.webhook_url
    if url is not None and not url.startswith(("http://", "https://")):
        problems.append(f"NOTIGATE_WEBHOOK_URL must be an http(s) URL, got {url!r}")
    if url is not None and not settings.webhook_secret:
        problems.append("NOTIGATE_WEBHOOK_URL needs NOTIGATE_WEBHOOK_SECRET (events are signed)")
    if url is not None and settings.events_max == 0:
        problems.append("NOTIGATE_WEBHOOK_URL needs the event stream (NOTIGATE_EVENTS_MAX > 0)")
    unknown = [s for s in settings.webhook_states if s not in WEBHOOK_STATES]
    if unknown or not settings.webhook_states:
        problems.append(
            f"NOTIGATE_WEBHOOK_STATES must be a comma-separated list of "
            f"{', '.join(WEBHOOK_STATES)}, got {','.join(settings.webhook_states)!r}"
        )
    return problems


def _redis_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.redis_sentinels:
        if settings.redis_cluster:
            problems.append(
                "NOTIGATE_REDIS_SENTINELS and NOTIGATE_REDIS_CLUSTER exclude each other"
            )
        if not settings.redis_sentinel_master:
            problems.append("NOTIGATE_REDIS_SENTINELS needs NOTIGATE_REDIS_SENTINEL_MASTER")
        for address in settings.redis_sentinels:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                problems.append(f"NOTIGATE_REDIS_SENTINELS: {address!r} is not host:port")
    elif settings.redis_sentinel_master:
        problems.append("NOTIGATE_REDIS_SENTINEL_MASTER needs NOTIGATE_REDIS_SENTINELS")
    if settings.redis_cluster and not settings.redis_url:
        problems.append("NOTIGATE_REDIS_CLUSTER needs REDIS_URL (any node of the cluster)")
    return problems


# -- the bots file ---------------------------------------------------------------

# Keys of a [bots.<name>] table that override a Limits field of the gateway's.
_BOT_LIMITS = ("global_rate", "private_rate", "private_window_ms", "group_rate", "group_window_ms")
_BOT_KEYS = {"token", "token_env", "api_url", "paid_broadcast", "concurrency", *_BOT_LIMITS}
_BINDING_KEYS = {"token", "token_env", "sha256", "bots"}


def load_bots_file(
    path: Path, env: Mapping[str, str], limits: Limits
) -> tuple[tuple[BotSettings, ...], tuple[TokenBinding, ...]]:
    """The bots and token bindings of the TOML file at ``path`` (see the README's "Several
    bots"); ``env`` resolves ``token_env``, ``limits`` are the gateway's, which a bot's
    table overrides field by field. Raises :class:`ConfigError` naming every problem."""
    where = f"NOTIGATE_BOTS_FILE {path}"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    problems: list[str] = []
    unknown = set(doc) - {"bots", "api_tokens"}
    if unknown:
        problems.append(f"{where}: unknown table(s) {', '.join(sorted(unknown))}")
    tables = doc.get("bots")
    if not isinstance(tables, dict) or not tables:
        problems.append(f"{where}: no [bots.<name>] table")
        tables = {}
    bots = []
    for name, table in tables.items():
        bot = _bot(f"{where}: [bots.{name}]", name, table, env, limits, problems)
        if bot is not None:
            bots.append(bot)
    names = frozenset(tables)
    bindings = []
    entries = doc.get("api_tokens", [])
    if not isinstance(entries, list):
        problems.append(f"{where}: api_tokens must be an array of tables ([[api_tokens]])")
        entries = []
    for i, entry in enumerate(entries):
        binding = _binding(f"{where}: api_tokens[{i}]", entry, env, names, problems)
        if binding is not None:
            bindings.append(binding)
    if problems:
        raise ConfigError(*problems)
    return tuple(bots), tuple(bindings)


def _token(
    where: str, table: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> str | None:
    """The table's ``token``, or the variable its ``token_env`` names (None: neither)."""
    if "token" in table and "token_env" in table:
        problems.append(f"{where}: token and token_env exclude each other")
        return None
    if "token_env" in table:
        var = table["token_env"]
        if not isinstance(var, str) or not env.get(var, "").strip():
            problems.append(f"{where}: token_env names {var!r}, which is not set")
            return None
        return str(env[var]).strip()
    token = table.get("token")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        problems.append(f"{where}: token must be a non-empty string")
        return None
    return token.strip() if isinstance(token, str) else None


def _bot(
    where: str,
    name: str,
    table: Any,
    env: Mapping[str, str],
    limits: Limits,
    problems: list[str],
) -> BotSettings | None:
    if not BOT_NAME.fullmatch(name):
        problems.append(
            f"{where}: a bot name is 1-32 of a-z, 0-9, '_' and '-' (not first), got {name!r}"
        )
        return None
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table")
        return None
    unknown = set(table) - _BOT_KEYS
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_BOT_KEYS))}"
        )
    before = len(problems)
    overrides: dict[str, int] = {}
    for key in _BOT_LIMITS:
        if key in table:
            value = table[key]
            bounds = RANGES[f"limits.{key}"]
            if isinstance(value, bool) or not isinstance(value, int) or not bounds.allows(value):
                problems.append(f"{where}: {key} must be an integer {bounds.text()}, got {value!r}")
            else:
                overrides[key] = value
    concurrency = table.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not RANGES["concurrency"].allows(concurrency)
    ):
        problems.append(
            f"{where}: concurrency must be an integer {RANGES['concurrency'].text()}, "
            f"got {concurrency!r}"
        )
    paid = table.get("paid_broadcast")
    if paid is not None and not isinstance(paid, bool):
        problems.append(f"{where}: paid_broadcast must be true or false, got {paid!r}")
    api_url = table.get("api_url")
    if api_url is not None and not isinstance(api_url, str):
        problems.append(f"{where}: api_url must be a string")
    token = _token(where, table, env, problems)
    if len(problems) > before:
        return None
    return BotSettings(
        name=name,
        token=token,
        api_url=api_url,
        limits=dataclasses.replace(limits, **overrides) if overrides else None,
        paid_broadcast=paid,
        concurrency=concurrency,
    )


def _binding(
    where: str,
    entry: Any,
    env: Mapping[str, str],
    names: frozenset[str],
    problems: list[str],
) -> TokenBinding | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    unknown = set(entry) - _BINDING_KEYS
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    before = len(problems)
    bots = entry.get("bots")
    if not isinstance(bots, list) or not bots or not all(isinstance(b, str) for b in bots):
        problems.append(f"{where}: bots must be a non-empty list of bot names")
    else:
        strangers = sorted(set(bots) - names)
        if strangers:
            problems.append(
                f"{where}: no bot {', '.join(strangers)} (the bots are {', '.join(sorted(names))})"
            )
    digest: bytes | None = None
    if "sha256" in entry:
        if "token" in entry or "token_env" in entry:
            problems.append(f"{where}: sha256 excludes token and token_env")
        raw = entry["sha256"]
        if not isinstance(raw, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
            problems.append(f"{where}: sha256 must be 64 hex digits (sha256sum of the token)")
        else:
            digest = bytes.fromhex(raw)
    else:
        token = _token(where, entry, env, problems)
        if token is None and len(problems) == before:
            problems.append(f"{where}: needs token, token_env or sha256")
        elif token is not None:
            digest = hashlib.sha256(token.encode()).digest()
    if len(problems) > before or digest is None:
        return None
    return TokenBinding(sha256=digest, bots=frozenset(bots or ()))
