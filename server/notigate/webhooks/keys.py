"""Redis key names of the webhook's delivery state, under the queue's prefix (and so
its hash tag: one queue's events and their delivery live in one slot).

- ``events``          the queue's event stream (read through the ``webhooks`` group)
- ``wh:outbox``       hash: cursor -> the event's stream fields (JSON), until it is
  acknowledged or given up
- ``wh:times``        zset: the same cursors by the event's time (ms): the oldest pending
- ``wh:due``          zset: job id -> when its first pending event is due (ms); a leased
  job is re-scored to the end of its lease
- ``wh:tries``        hash: job id -> failed attempts of its first pending event
- ``wh:state``        hash: ``read`` entries of the stream the group has read (or found
  trimmed), counting from its first ever; ``delivered``, ``undeliverable`` counts
- ``wh:dead``         list: the last undeliverable events (JSON), newest first
- ``wh:job:<id>``     list: one job's pending cursors, oldest first (only the head is sent)
"""

from __future__ import annotations

from dataclasses import dataclass

from notigate.queue.keys import QueueKeys


@dataclass(frozen=True, slots=True)
class WebhookKeys:
    """The fixed keys of one queue's webhook delivery."""

    prefix: str
    events: str
    outbox: str
    times: str
    due: str
    tries: str
    state: str
    dead: str

    @classmethod
    def for_queue(cls, name: str) -> WebhookKeys:
        return cls.of(QueueKeys.for_queue(name))

    @classmethod
    def of(cls, queue: QueueKeys) -> WebhookKeys:
        p = queue.prefix
        return cls(
            prefix=p,
            events=queue.events,
            outbox=p + "wh:outbox",
            times=p + "wh:times",
            due=p + "wh:due",
            tries=p + "wh:tries",
            state=p + "wh:state",
            dead=p + "wh:dead",
        )

    def job(self, job_id: str) -> str:
        """The list of one job's pending events (the scripts build it from the prefix)."""
        return f"{self.prefix}wh:job:{job_id}"
