"""Signed webhooks: every event of the queue's stream in the configured states POSTed
to one URL, at least once, in order per job, with the delivery state in Redis.

Layers inside the package: ``keys``, ``policy``, ``signing`` < ``source`` < ``scripts``,
``delivery``, ``stats`` < ``worker``. Receivers verify requests with
:func:`~notigate.webhooks.signing.verify`.
"""

from __future__ import annotations

from notigate.webhooks.keys import WebhookKeys
from notigate.webhooks.signing import sign, verify
from notigate.webhooks.stats import WebhookStats, undeliverable_records
from notigate.webhooks.worker import WebhookWorker

__all__ = [
    "WebhookKeys",
    "WebhookStats",
    "WebhookWorker",
    "sign",
    "undeliverable_records",
    "verify",
]
