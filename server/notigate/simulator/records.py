"""What the simulator remembers about the traffic it served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RequestRecord", "SentMessage"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted send (sendMessage, or sendPhoto/sendDocument with the caption as text).

    ``params`` holds every request parameter, decoded (JSON-encoded form fields become
    dicts, lists, ints and bools). ``received_at`` is ``time.monotonic()`` at acceptance.
    """

    chat_id: str
    text: str
    message_id: int
    params: dict[str, Any]
    received_at: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Bot API request and the HTTP status it was answered with."""

    method: str
    chat_id: str | None
    status: int
    received_at: float
    retry_after: int | None
