"""What the webhook scripts are told (ARGV[2], ``cfg`` in Lua): which events to post,
how long to keep trying one, how long a lease lasts, how many undeliverable events to keep."""

from __future__ import annotations

import json
from dataclasses import dataclass

from notigate.config import Settings
from notigate.queue.records import STATE_LETTERS, JobState

# Undeliverable events kept for inspection (the newest); the count goes on past it.
DEAD_MAX = 1000
# A lease outlives the longest POST by this much, so that a slow receiver's event is
# not leased again (and sent twice) while its answer is being recorded.
LEASE_MARGIN_MS = 5_000


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """The static configuration of the webhook scripts."""

    # State letters of the events posted (notigate.queue.records.STATE_LETTERS).
    wanted: str
    max_age_ms: int
    lease_ms: int
    dead_max: int = DEAD_MAX

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        return cls(
            wanted="".join(STATE_LETTERS[JobState(s)] for s in settings.webhook_states),
            max_age_ms=settings.webhook_max_age_s * 1000,
            lease_ms=round(settings.webhook_timeout_s * 1000) + LEASE_MARGIN_MS,
        )

    def packed(self) -> str:
        return json.dumps(
            {
                "wanted": self.wanted,
                "max_age_ms": self.max_age_ms,
                "lease_ms": self.lease_ms,
                "dead_max": self.dead_max,
            },
            separators=(",", ":"),
        )
