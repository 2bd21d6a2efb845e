"""What the simulator remembers about the traffic it served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MessageRecord", "RequestRecord", "SentMessage", "UploadTally"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted send: sendMessage, a media send or one album item (the caption as
    ``text``; ``kind`` is "text", "photo", "document", "video", "animation", "audio" or
    "voice"; ``file_id`` the media's, the largest size of a photo; ``media_group_id``
    an album's; ``bot_id`` the sending bot's).

    ``params`` holds every request parameter, decoded (JSON-encoded form fields become
    dicts, lists, ints and bools). ``received_at`` is ``time.monotonic()`` at acceptance,
    for measuring intervals; ``date`` is the simulated wall clock (``time.time()`` plus
    what :meth:`~notigate.simulator.state.SimulatorState.advance_clock` added) at the
    same moment, for people. ``seq`` numbers the simulator's accepted sends from 1 and is never
    reused, not even after a reset: a reader that remembers the last ``seq`` it saw
    misses nothing and sees nothing twice.
    """

    chat_id: str
    text: str
    message_id: int
    params: dict[str, Any]
    received_at: float
    date: float
    seq: int
    kind: str = "text"
    file_id: str | None = None
    media_group_id: str | None = None
    bot_id: int = 0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Bot API request and the HTTP status it was answered with."""

    method: str
    chat_id: str | None
    status: int
    received_at: float
    retry_after: int | None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """What a chat shows now for one message the simulator sent.

    ``text`` is the message text or the caption (as sent, markup included; "" for none);
    ``message`` the Bot API Message object as it stands after the last edit; ``deleted``
    says it was deleted (its content is what it showed before).
    """

    chat_id: str
    message_id: int
    bot_id: int
    kind: str
    text: str
    file_id: str | None
    reply_markup: dict[str, Any] | None
    media_group_id: str | None
    date: int
    edit_date: int | None
    edit_count: int
    deleted: bool
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UploadTally:
    """File parts one bot uploaded (every multipart file part of an authorized request)."""

    count: int = 0
    bytes: int = 0
