"""Redis key names of one queue, all under one hash tag.

Every key a script touches either comes from here through KEYS (each script's wrapper
names the attributes it passes, in its header's order) or is built in Lua from
``prefix`` (per-job and per-chat keys: see :mod:`notigate.queue.records`); all share one
hash tag, so one bot's queue lives in one Redis Cluster slot: ``{notigate:<queue>}`` for
the default bot (the layout from before there were several), ``{notigate:<queue>:<bot>}``
for another, so on a cluster the bots spread over the shards.
"""

from __future__ import annotations

from dataclasses import dataclass

from notigate.config import DEFAULT_BOT
from notigate.queue.records import JobState

# Bump when the layout changes incompatibly; old data is then ignored, not misread.
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The fixed keys of one queue."""

    prefix: str
    seq: str
    waiting: str
    ready: str
    paced: str
    delayed: str
    active: str
    completed: str
    failed: str
    cancelled: str
    stats: str
    migrations: str
    # Bot-wide: recent send times, GCRA's theoretical arrival time, a pause and its reason.
    global_log: str
    global_tat: str
    global_pause: str
    global_pause_reason: str
    # Chats that answered 429 lately (defer.lua decides on a bot-wide pause from them).
    recent_429s: str
    wake_channel: str
    meta: str
    health_probe: str
    # Every job state change, appended by the script that makes it (notigate.events).
    events: str
    # Chats messages are not sent to: chat -> why (hash), and the same chats by the
    # time they were suppressed (zset, for paging newest first).
    suppressed: str
    suppressed_by_time: str
    # The throughput ring (sample.lua: one field per 10 s interval, 361 of them) and the
    # gateways whose dispatcher for the bot reported in lately (origin -> time, ms).
    throughput: str
    dispatchers: str

    @classmethod
    def for_queue(cls, name: str, bot: str = DEFAULT_BOT) -> QueueKeys:
        """Keys of ``bot``'s queue in queue ``name``."""
        tag = name if bot == DEFAULT_BOT else f"{name}:{bot}"
        p = f"{{notigate:{tag}}}:v{SCHEMA_VERSION}:"
        return cls(
            prefix=p,
            seq=p + "seq",
            waiting=p + "waiting",
            ready=p + "ready",
            paced=p + "paced",
            delayed=p + "delayed",
            active=p + "active",
            completed=p + "completed",
            failed=p + "failed",
            cancelled=p + "cancelled",
            stats=p + "stats",
            migrations=p + "migrations",
            # The stored names stay short: they are part of the layout (SCHEMA_VERSION).
            global_log=p + "glog",
            global_tat=p + "gtat",
            global_pause=p + "gpause",
            global_pause_reason=p + "gpause:why",
            recent_429s=p + "recent429",
            wake_channel=p + "wake",
            # The store's marker (store_watch.py): a random id and its creation time.
            meta=p + "meta",
            # Written by every health check: a store that refuses writes is not healthy.
            health_probe=p + "health-probe",
            events=p + "events",
            suppressed=p + "suppressed",
            suppressed_by_time=p + "suppressed:t",
            throughput=p + "throughput",
            dispatchers=p + "dispatchers",
        )

    def job(self, job_id: str) -> str:
        """The hash of one job."""
        return f"{self.prefix}job:{job_id}"

    def chat_jobs(self, chat_id: str) -> str:
        """The zset of the jobs that go to one chat (SearchJobs; see records.py)."""
        return f"{self.prefix}jc:{chat_id}"

    def idempotency(self, key: str) -> str:
        """The string an idempotency key is remembered by (``<job id>:<fingerprint>``)."""
        return f"{self.prefix}idem:{key}"

    def index(self, state: JobState) -> str:
        """The zset that indexes the jobs in ``state``."""
        return {
            JobState.WAITING: self.waiting,
            JobState.DELAYED: self.delayed,
            JobState.ACTIVE: self.active,
            JobState.COMPLETED: self.completed,
            JobState.FAILED: self.failed,
            JobState.CANCELLED: self.cancelled,
        }[state]
