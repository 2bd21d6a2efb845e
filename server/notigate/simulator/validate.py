"""Parameter checks of the simulated send methods, with Telegram's error descriptions.

Texts and captions go through :mod:`notigate.formatting`, a port of the parser the Bot API
runs, so the simulator refuses exactly the markup Telegram refuses, with its wording.
"""

from __future__ import annotations

from typing import Any

from notigate import formatting

__all__ = ["MAX_CAPTION", "MAX_TEXT", "check_html", "check_parse_mode", "check_text"]

MAX_TEXT = formatting.MAX_MESSAGE_LENGTH
MAX_CAPTION = 1024
_PARSE_MODES = frozenset({"html", "markdownv2", "markdown"})


def check_html(text: str) -> str | None:
    """Return "can't parse entities: ..." for HTML Telegram refuses, else None."""
    try:
        formatting.parse_html(text)
    except formatting.EntityParseError as exc:
        return f"can't parse entities: {exc.message}"
    return None


def check_parse_mode(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return (normalized parse mode or None, error description or None)."""
    mode = params.get("parse_mode")
    if mode is None or mode == "":
        return None, None
    lowered = str(mode).lower()
    if lowered == "none":  # the Bot API's spelling of "no parse mode"
        return None, None
    if lowered not in _PARSE_MODES:
        return None, "Bad Request: unsupported parse_mode"
    return lowered, None


def check_text(
    text: str, parse_mode: str | None, *, limit: int, empty_error: str | None
) -> str | None:
    """Validate a message text (``empty_error`` set) or caption; return Telegram's description
    of the problem, in the order the Bot API checks."""
    if not text:
        return empty_error
    problem = formatting.check_message_text(
        text, parse_mode, limit=limit, allow_empty=empty_error is None
    )
    if problem is None:
        return None
    if problem.kind == "raw_too_long":
        return "Bad Request: text is too long"
    if problem.error is not None:
        return f"Bad Request: can't parse entities: {problem.error.message}"
    if problem.kind == "empty":
        return "Bad Request: text must be non-empty"
    return (
        "Bad Request: message is too long"
        if limit == MAX_TEXT
        else "Bad Request: message caption is too long"
    )
