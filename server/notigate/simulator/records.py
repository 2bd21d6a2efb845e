"""What the simulator remembers about the traffic it served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RequestRecord", "SentMessage"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted send (sendMessage, or sendPhoto/sendDocument with the caption as text).

    ``params`` holds every request parameter, decoded (JSON-encoded form fields become
    dicts, lists, ints and bools). ``received_at`` is ``time.monotonic()`` at acceptance,
    for measuring intervals; ``date`` is the wall clock (``time.time()``) at the same
    moment, for people. ``seq`` numbers the simulator's accepted sends from 1 and is never
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


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Bot API request and the HTTP status it was answered with."""

    method: str
    chat_id: str | None
    status: int
    received_at: float
    retry_after: int | None
