"""Telegram's entity parsing for parse_mode HTML, MarkdownV2 and Markdown, ported from TDLib.

The parsers live in :mod:`notigate.markup_html` and :mod:`notigate.markup_markdown` (what
they share: :mod:`notigate.markup`); this module is their front and what follows the parsing.

The Bot API hands a message's markup to TDLib (td/telegram/MessageEntity.cpp: ``parse_html``,
``parse_markdown_v2``, ``parse_markdown``), cleans the parsed text (``fix_formatted_text``) and
only then applies its limits. The parsers here follow that code decision for decision, so a
text they accept parses at Telegram, and one they refuse fails there with the same message
(the Bot API answers "Bad Request: can't parse entities: <message>").

TDLib walks UTF-8 bytes, but every character its parsers act on is ASCII, so walking code
points takes the same decisions; byte offsets are computed for the messages only when an error
is raised. Runs of ordinary characters are skipped with one regex search each, which keeps the
cost per text close to that of a copy.

Telegram counts a message's length in Unicode code points (TDLib's ``utf8_length``), not in
UTF-16 code units (which only entity offsets use): :func:`message_length`.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from notigate.markup import (
    MAX_MESSAGE_LENGTH,
    MAX_RAW_BYTES,
    Entity,
    EntityParseError,
    ParsedText,
)
from notigate.markup_html import parse_html
from notigate.markup_markdown import parse_markdown, parse_markdown_v2

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_RAW_BYTES",
    "Entity",
    "EntityParseError",
    "ParsedText",
    "TextProblem",
    "check_message_text",
    "is_blank",
    "message_length",
    "parse",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
]

# -- after parsing: what Telegram keeps, counts and calls empty ----------------------------

# fix_formatted_text (clean_input_string) removes these anywhere in the text ...
_REMOVED_CHARS = "\r\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u0333\u033f\u030a"
_REMOVED = re.compile(f"[{_REMOVED_CHARS}]")
# ... turns the other control characters into spaces and trims spaces and line breaks.
_CONTROLS = "".join(chr(c) for c in range(32) if c not in (10, 13))
_EDGE = " \n" + _CONTROLS + _REMOVED_CHARS
# is_empty_string: a text of only these (strip_empty_characters) is "empty".
_BLANK = (
    _EDGE
    + "\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    + "\u200b\u200c\u200d\u200e\u200f\u202f\u205f\u2800\u3000\ufffc\ufeff\u00a0"
    + "".join(chr(c) for c in range(0xE0000, 0xE0080))
)
_BLANK_SET = frozenset(_BLANK)


def is_blank(text: str) -> bool:
    """Whether Telegram finds ``text`` (after parsing) empty: "text must be non-empty"."""
    return not text or (text[0] in _BLANK_SET and not text.strip(_BLANK))


def message_length(parsed: ParsedText | str) -> int:
    """The length Telegram's 4096 limit applies to: code points of the text after parsing,
    once control characters are cleaned out and leading (before the first entity) and
    trailing spaces and line breaks are trimmed."""
    if isinstance(parsed, str):
        return _length(parsed, len(parsed))
    return _length(parsed.text, parsed.first_entity_start)


def _may_shrink(text: str, utf8: bytes) -> bool:
    """Whether ``text`` may hold a character Telegram removes; ``utf8`` is its encoding, or
    empty for ASCII (searching bytes is much cheaper than a regex over the text)."""
    if not utf8:
        return "\r" in text
    # Lead bytes of U+2028..U+202E and U+030A..U+033F; single bytes are found by memchr.
    return b"\r" in utf8 or b"\xe2" in utf8 or b"\xcc" in utf8


def _length(text: str, first_entity_start: int) -> int:
    if not text:
        return 0
    if text[-1] in _EDGE:
        text = text.rstrip(_EDGE)
        if not text:
            return 0
    if text[0] in _EDGE:
        text = text[min(len(text) - len(text.lstrip(_EDGE)), first_entity_start) :]
    if text.isascii():
        return len(text) - text.count("\r")
    return len(text) - len(_REMOVED.findall(text))


def parse(text: str, parse_mode: str | None, *, with_entities: bool = True) -> ParsedText:
    """Parse ``text`` in a Bot API parse mode (case-insensitive "HTML", "MarkdownV2",
    "Markdown"; None or "" for none); raise ValueError for another mode."""
    mode = (parse_mode or "").lower()
    if not mode:
        return ParsedText(text, (), len(text))
    if mode == "html":
        return parse_html(text, with_entities=with_entities)
    if mode == "markdownv2":
        return parse_markdown_v2(text, with_entities=with_entities)
    if mode == "markdown":
        return parse_markdown(text, with_entities=with_entities)
    raise ValueError(f"unknown parse mode {parse_mode!r}")


class TextProblem(NamedTuple):
    """Why Telegram would refuse a message text, in the order it checks.

    ``kind``: "raw_too_long" (``size`` = UTF-8 bytes before parsing, over
    :data:`MAX_RAW_BYTES`), "markup" (``error``), "empty" (nothing visible after parsing),
    "too_long" (``size`` = characters after parsing, over the limit).
    """

    kind: Literal["raw_too_long", "markup", "empty", "too_long"]
    size: int = 0
    error: EntityParseError | None = None


def check_message_text(
    text: str, parse_mode: str | None, *, limit: int = MAX_MESSAGE_LENGTH, allow_empty: bool = False
) -> TextProblem | None:
    """Check a non-empty message text (or caption: ``allow_empty``) as the Bot API does."""
    ascii_text = text.isascii()
    data = b"" if ascii_text else text.encode("utf-8", "surrogatepass")
    size = len(data) if data else len(text)
    if size > MAX_RAW_BYTES:
        return TextProblem("raw_too_long", size)
    if not parse_mode:
        if text and text[0] not in _BLANK_SET and text[-1] > " " and not _may_shrink(text, data):
            # The common case on the Send path: plain text that Telegram neither trims nor
            # shortens (all it trims are control characters and spaces), and that is not
            # blank (a blank text starts with a blank character, such as U+00A0).
            return TextProblem("too_long", len(text)) if len(text) > limit else None
        plain, first = text, len(text)
    else:
        try:
            plain, _, first = parse(text, parse_mode, with_entities=False)
        except EntityParseError as exc:
            return TextProblem("markup", error=exc)
    if is_blank(plain):
        return None if allow_empty else TextProblem("empty")
    length = _length(plain, first)
    if length > limit:
        return TextProblem("too_long", length)
    return None
