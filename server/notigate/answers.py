"""Classify one Bot API answer (HTTP status and body), whatever its shape.

The body decides, not the HTTP status: Telegram's contract is the JSON envelope
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": C, "description": ...,
"parameters": {...}}``), and proxies or a broken Bot API server may pair an envelope with
any status (``200 {"ok": false, "error_code": 400}``). The HTTP status is used only when
the body is not an envelope (an HTML error page from a proxy, an empty body).

Nothing here raises: every shape maps to :class:`Accepted` or an :data:`Outcome`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeGuard

from notigate.outcomes import (
    Migrated,
    Outcome,
    PermanentError,
    RateLimited,
    TransientError,
    Unauthorized,
    Unreachable,
)

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RETRY_IN_TEXT",
    "Accepted",
    "classify_answer",
    "is_unreachable",
    "message_id_of",
]

# Longer waits are not plausible Telegram answers; the cap keeps a garbage value from
# becoming a pause Redis refuses to store (and from parking a chat for centuries).
MAX_RETRY_AFTER_S = 7 * 24 * 3600
# The start of a success envelope whose rest was lost (a truncated or corrupted body):
# Telegram said ok, so the call took effect.
_TRUNCATED_OK = re.compile(rb'\s*\{\s*"ok"\s*:\s*true\b')
# Telegram's 429 description repeats the wait: "Too Many Requests: retry after 35".
RETRY_IN_TEXT = re.compile(r"retry after (\d+)", re.IGNORECASE)
# Telegram's 400 for a chat that does not exist (or the bot never met). Matched as a
# whole description: "message to edit not found" and the like name a message, not the chat.
_CHAT_NOT_FOUND = re.compile(r"(Bad Request: )?chat not found", re.IGNORECASE)
_SNIPPET_CHARS = 120
_MAX_MESSAGE_ID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Accepted:
    """``ok: true``: the call took effect. ``result`` is whatever Telegram put there
    (None when the body was cut off after ``"ok": true``)."""

    result: Any


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _snippet(body: bytes) -> str:
    text = " ".join(body[: _SNIPPET_CHARS * 4].decode("utf-8", "replace").split())
    if not text:
        return "empty body"
    if len(text) > _SNIPPET_CHARS:
        text = text[:_SNIPPET_CHARS] + "…"
    return repr(text)


def _seconds(value: Any) -> float | None:
    """A usable ``retry_after``: a positive, finite number of seconds (capped)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, float(MAX_RETRY_AFTER_S))


def is_unreachable(description: str) -> bool:
    """Telegram's text says the chat cannot get the bot's messages: a "Forbidden: ..."
    (blocked, deactivated, kicked) or "chat not found" (used where only the text is
    known, such as the failed item of an album)."""
    text = description.strip()
    return text.startswith("Forbidden") or _CHAT_NOT_FOUND.fullmatch(text) is not None


def _by_code(code: int, description: str, parameters: Any, *, telegram: bool = True) -> Outcome:
    if isinstance(parameters, dict):
        new_chat = parameters.get("migrate_to_chat_id")
        if _is_int(new_chat) and new_chat != 0:
            return Migrated(str(new_chat))
        retry_after = _seconds(parameters.get("retry_after"))
        if retry_after is not None:
            return RateLimited(retry_after)
    if code == 429:
        found = RETRY_IN_TEXT.search(description)
        retry_after = _seconds(int(found.group(1))) if found else None
        if retry_after is not None:
            return RateLimited(retry_after)
        # No wait given: retried with backoff like a 5xx, so a broken proxy that answers
        # nothing but 429 cannot park a message forever without using its attempts.
        return TransientError(description)
    # Only Telegram's own envelope suppresses a chat: a proxy's 403 page says nothing
    # about the chat, and suppressing on it would drop later messages to a good chat.
    if telegram and code == HTTPStatus.FORBIDDEN:
        return Unreachable(description)
    if telegram and code == HTTPStatus.BAD_REQUEST and _CHAT_NOT_FOUND.fullmatch(description):
        return Unreachable(description)
    if code in (HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN):
        return PermanentError(description)
    if code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        # A file over Telegram's limit: the same request is refused the same way again.
        return PermanentError(f"{description}: the file is over Telegram's size limit")
    if code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND):
        # Telegram answers 404 to a malformed token and 401 to a revoked one.
        return Unauthorized(description)
    # 5xx, 409, 420, anything unknown: the message was not sent, another attempt may work
    # (attempts are bounded, so a wrong guess here costs retries, not a lost message).
    return TransientError(description)


def _envelope_error(status: int, data: dict[str, Any]) -> Outcome:
    raw_code = data.get("error_code")
    code: int | None = raw_code if _is_int(raw_code) and 400 <= raw_code <= 599 else None
    if code is None and not 200 <= status <= 299:
        code = status
    raw_description = data.get("description")
    described = isinstance(raw_description, str) and raw_description.strip() != ""
    if code is None:
        what = raw_description if described else "no description"
        return TransientError(f"Bot API error without an error_code (HTTP {status}): {what}")
    if described:
        description = str(raw_description)
    else:
        description = f"{_phrase(code)} (error_code {code}, no description)"
    return _by_code(code, description, data.get("parameters"))


def classify_answer(status: int, body: bytes) -> Accepted | Outcome:
    """What a Bot API answer means for the call that got it."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        ok = data.get("ok")
        if ok is True:
            return Accepted(data.get("result"))
        if ok is False or "error_code" in data:
            return _envelope_error(status, data)
    if _TRUNCATED_OK.match(body):
        return Accepted(None)
    if 200 <= status <= 299:
        # Not Telegram's answer (a proxy's page, a cut-off body without "ok": true):
        # nothing says the message went out, and retries are bounded.
        return TransientError(f"unreadable Bot API answer (HTTP {status}): {_snippet(body)}")
    description = f"{_phrase(status)} (HTTP {status}, not a Bot API answer: {_snippet(body)})"
    return _by_code(status, description, None, telegram=False)


def message_id_of(result: Any) -> int | None:
    """The ``message_id`` of a sent Message, or None when ``result`` has no usable one."""
    if isinstance(result, dict):
        message_id = result.get("message_id")
        if _is_int(message_id) and 0 < message_id <= _MAX_MESSAGE_ID:
            return int(message_id)
    return None
