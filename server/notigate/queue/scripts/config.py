"""The static configuration every script receives, packed once per queue.

It travels as one JSON object at ARGV[2] of every script (``cjson.decode`` in Lua), so a
script reads ``cfg.lease_ms`` by name: no value rides at an offset that differs between
scripts. The object is built once per :class:`~notigate.queue.Queue`; a test holds the
names the scripts read against these fields.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from notigate.config import Settings

# The most entries the dequeue script promotes per set in one call, so one
# call stays short even after a long outage left many due jobs.
PROMOTE_BATCH = 200


@dataclass(frozen=True, slots=True)
class ScriptConfig:
    """What the scripts need of the settings, with the scripts' names for it."""

    # Per-chat sliding windows (chat_limit.lua) and the margin added to them.
    private_rate: int
    private_window_ms: int
    group_rate: int
    group_window_ms: int
    chat_margin_ms: int
    # Bot-wide limit: a sliding window plus even spacing (dequeue.lua).
    bot_rate: int
    bot_window_ms: int
    bot_margin_ms: int
    bot_burst_ms: int
    lease_ms: int
    max_stalls: int
    # Attempts of a job that did not set its own.
    max_attempts: int
    # Retention: completed (and cancelled) jobs kept, failed jobs kept, and the age
    # past which either goes (0 = no limit).
    keep_completed: int
    keep_failed: int
    keep_age_ms: int
    idempotency_ttl_ms: int
    # When 429s from several chats pause the whole bot (defer.lua).
    bot_pause_chats: int
    bot_pause_window_ms: int
    bot_pause_max_ms: int
    bot_pause_flood_chats: int
    promote_batch: int
    # How long an upload no unfinished job references is kept (upload_refs.lua).
    upload_ttl_ms: int
    # The event stream's cap (0: no events) and the age past which events go.
    events_max: int
    events_max_age_ms: int
    # Who publishes a wake message: a gateway skips its own (it woke itself already).
    origin: str
    # What job ids start with: '' for the default bot, "<bot>:" for another.
    id_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, origin: str, id_prefix: str = "") -> ScriptConfig:
        """The configuration of a queue run with ``settings`` by the gateway ``origin``."""
        lim = settings.limits
        return cls(
            private_rate=lim.private_rate,
            private_window_ms=lim.private_window_ms,
            group_rate=lim.group_rate,
            group_window_ms=lim.group_window_ms,
            chat_margin_ms=lim.chat_margin_ms,
            bot_rate=settings.global_rate,
            bot_window_ms=lim.global_window_ms,
            bot_margin_ms=lim.global_margin_ms,
            bot_burst_ms=lim.global_burst_ms,
            lease_ms=settings.lease_ms,
            max_stalls=settings.max_stalls,
            max_attempts=settings.max_attempts,
            keep_completed=settings.keep_completed,
            keep_failed=settings.keep_failed,
            keep_age_ms=settings.keep_age_s * 1000,
            idempotency_ttl_ms=settings.idempotency_ttl_s * 1000,
            bot_pause_chats=settings.bot_pause_chats,
            bot_pause_window_ms=settings.bot_pause_window_ms,
            bot_pause_max_ms=settings.bot_pause_max_ms,
            bot_pause_flood_chats=settings.bot_pause_flood_chats,
            promote_batch=PROMOTE_BATCH,
            upload_ttl_ms=settings.upload_ttl_s * 1000,
            events_max=settings.events_max,
            events_max_age_ms=settings.events_max_age_s * 1000,
            origin=origin,
            id_prefix=id_prefix,
        )

    def packed(self) -> str:
        """The ARGV[2] of every script."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))
