"""What one Bot API call came to, as the worker acts on it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlbumPartlySent",
    "Delivered",
    "Migrated",
    "Outcome",
    "PermanentError",
    "Postponed",
    "RateLimited",
    "TransientError",
    "Unauthorized",
    "Unreachable",
]


@dataclass(frozen=True, slots=True)
class Delivered:
    """Telegram accepted the message.

    ``message_id`` is 0 when Telegram's answer said ``ok`` but carried no usable message id
    (the message was most likely sent; see :func:`notigate.answers.classify_answer`).
    """

    message_id: int
    # Every message of an album, in order (message_id is the first); empty for one message.
    message_ids: tuple[int, ...] = ()
    # (upload id, media kind, Telegram's file_id) of each upload sent as bytes: later
    # sends of the same content as the same kind reuse it.
    file_ids: tuple[tuple[str, int, str], ...] = ()


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
    """400, or a 403 not from Telegram itself: retrying will not help. ``description`` is
    Telegram's text, verbatim."""

    description: str


@dataclass(frozen=True, slots=True)
class Unreachable:
    """The chat cannot get messages from the bot: any 403 from Telegram (the user blocked
    the bot or is deactivated, the bot was kicked) or 400 "chat not found". The job fails
    and the chat is suppressed: later jobs to it fail without a request. ``description``
    is Telegram's text, verbatim."""

    description: str


@dataclass(frozen=True, slots=True)
class TransientError:
    """5xx, timeout, connection failure or an unreadable answer: retry with backoff."""

    description: str


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """401/404: the token is wrong or revoked; stop delivering."""

    description: str


@dataclass(frozen=True, slots=True)
class AlbumPartlySent:
    """Telegram sent an album's first ``sent_items`` (counted from its first item, earlier
    attempts included) and then failed one: ``outcome`` says what befell it. The items
    sent are never sent again."""

    sent_items: int
    outcome: RateLimited | PermanentError | TransientError | Unreachable


@dataclass(frozen=True, slots=True)
class Postponed:
    """Not sent: the job waits for something else (its original's delivery, a first
    upload of its file by another worker); due again in ``delay_s``, no attempt used."""

    delay_s: float
    reason: str


Outcome = (
    Delivered
    | RateLimited
    | Migrated
    | PermanentError
    | Unreachable
    | TransientError
    | Unauthorized
    | AlbumPartlySent
    | Postponed
)
