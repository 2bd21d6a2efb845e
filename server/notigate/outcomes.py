"""What one Bot API call came to, as the worker acts on it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Delivered",
    "Migrated",
    "Outcome",
    "PermanentError",
    "RateLimited",
    "TransientError",
    "Unauthorized",
]


@dataclass(frozen=True, slots=True)
class Delivered:
    """Telegram accepted the message.

    ``message_id`` is 0 when Telegram's answer said ``ok`` but carried no usable message id
    (the message was most likely sent; see :func:`notigate.answers.classify_answer`).
    """

    message_id: int


@dataclass(frozen=True, slots=True)
class RateLimited:
    """429: wait ``retry_after_s`` before sending to this chat again (not a failed attempt)."""

    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Migrated:
    """The group became a supergroup; resend to ``new_chat_id``."""

    new_chat_id: str


@dataclass(frozen=True, slots=True)
class PermanentError:
    """400/403: retrying will not help. ``description`` is Telegram's text, verbatim."""

    description: str


@dataclass(frozen=True, slots=True)
class TransientError:
    """5xx, timeout, connection failure or an unreadable answer: retry with backoff."""

    description: str


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """401/404: the token is wrong or revoked; stop delivering."""

    description: str


Outcome = Delivered | RateLimited | Migrated | PermanentError | TransientError | Unauthorized
