"""Parameter checks of the simulated send methods, with Telegram's error descriptions."""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["check_html", "check_parse_mode", "check_text", "visible_length"]

MAX_TEXT = 4096
MAX_CAPTION = 1024
_PARSE_MODES = frozenset({"html", "markdownv2", "markdown"})
# Tags Telegram's HTML parse mode understands.
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^<>]*>")
_ANY_TAG = re.compile(r"<[^<>]*>")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def check_html(text: str) -> str | None:
    """Return "can't parse entities: ..." for malformed HTML, else None.

    A structural check only: supported tag names, balanced and properly nested tags, and no
    stray ``<``. Attributes and entities are not validated.
    """
    stack: list[str] = []
    pos = 0
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            break
        match = _TAG.match(text, lt)
        if match is None:
            return (
                "can't parse entities: Unsupported start tag at byte offset "
                f"{_byte_offset(text, lt)}"
            )
        closing, name = match.group(1), match.group(2).lower()
        if name not in _HTML_TAGS:
            kind = "end" if closing else "start"
            return (
                f'can\'t parse entities: Unsupported {kind} tag "{name}" at byte offset '
                f"{_byte_offset(text, lt)}"
            )
        if closing:
            if not stack:
                return (
                    "can't parse entities: Unexpected end tag at byte offset "
                    f"{_byte_offset(text, lt)}"
                )
            expected = stack.pop()
            if expected != name:
                return (
                    "can't parse entities: Unmatched end tag at byte offset "
                    f'{_byte_offset(text, lt)}, expected "</{expected}>", found "</{name}>"'
                )
        else:
            stack.append(name)
        pos = match.end()
    if stack:
        return (
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return None


def visible_length(text: str, parse_mode: str | None) -> int:
    """Length after entity parsing, which is what Telegram's 4096 limit applies to."""
    if parse_mode == "html":
        return len(html.unescape(_ANY_TAG.sub("", text)))
    return len(text)


def check_parse_mode(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return (normalized parse mode or None, error description or None)."""
    mode = params.get("parse_mode")
    if mode is None or mode == "":
        return None, None
    lowered = str(mode).lower()
    if lowered not in _PARSE_MODES:
        return None, "Bad Request: unsupported parse_mode"
    return lowered, None


def check_text(
    text: str, parse_mode: str | None, *, limit: int, empty_error: str | None
) -> str | None:
    """Validate a message text or caption; return Telegram's description of the problem."""
    if not text:
        return empty_error
    if parse_mode == "html":
        problem = check_html(text)
        if problem is not None:
            return f"Bad Request: {problem}"
    if visible_length(text, parse_mode) > limit:
        return (
            "Bad Request: message is too long"
            if limit == MAX_TEXT
            else ("Bad Request: message caption is too long")
        )
    return None
