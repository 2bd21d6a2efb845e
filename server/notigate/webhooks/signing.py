"""Webhook signatures: ``X-Notigate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.

The timestamp (``X-Notigate-Timestamp``, unix seconds when the POST was made) is signed
with the body, so a receiver that refuses old timestamps refuses replays of a captured
request; each attempt of an event is signed afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SCHEME", "TOLERANCE_S", "sign", "verify"]

SCHEME = "v1"
# How old a timestamp verify() accepts by default.
TOLERANCE_S = 300


def _digest(secret: str, timestamp: int | str, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Notigate-Signature value of ``body`` sent at ``timestamp``."""
    return f"{SCHEME}={_digest(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether a request's body, X-Notigate-Timestamp and X-Notigate-Signature came from
    a gateway holding ``secret`` less than ``tolerance_s`` ago. The signature header may
    list several ``v1=`` values (comma-separated); one matching is enough."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    for part in signature.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.encode(), expected.encode()):
            return True
    return False
