"""Redis key names of one queue, all under one hash tag.

Every key a script touches either comes from here through KEYS or is built in
Lua from ``prefix`` (per-job and per-chat keys); all share the ``{notigate:<queue>}``
hash tag, so one queue lives in one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    glog: str
    gtat: str
    gpause: str
    gpause_reason: str
    recent_429: str
    wake_channel: str
    meta: str
    health_probe: str

    @classmethod
    def for_queue(cls, name: str) -> QueueKeys:
        """Keys of queue ``name``."""
        p = f"{{notigate:{name}}}:v{SCHEMA_VERSION}:"
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
            glog=p + "glog",
            gtat=p + "gtat",
            gpause=p + "gpause",
            gpause_reason=p + "gpause:why",
            recent_429=p + "recent429",
            wake_channel=p + "wake",
            # The store's marker (store_watch.py): a random id and its creation time.
            meta=p + "meta",
            # Written by every health check: a store that refuses writes is not healthy.
            health_probe=p + "health-probe",
        )

    def job(self, job_id: str) -> str:
        """The hash of one job."""
        return f"{self.prefix}job:{job_id}"
