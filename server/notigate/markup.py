"""What the ports of Telegram's entity parsers share: the parsed text, entities, errors.

See :mod:`notigate.formatting` for what the parsers are and how they are used.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_MESSAGE_LENGTH = 4096
# The Bot API refuses a text longer than this before parsing it ("text is too long").
MAX_RAW_BYTES = 1 << 15


class EntityParseError(ValueError):
    """Markup Telegram refuses.

    ``message`` is TDLib's wording; ``offset`` is the code point index in the raw text the
    problem was found at (also for messages that name no position) and ``byte_offset`` the
    same position in UTF-8 bytes, the unit TDLib's messages use.
    """

    def __init__(self, message: str, offset: int, byte_offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.byte_offset = byte_offset


class Entity(NamedTuple):
    """One parsed entity; ``offset`` and ``length`` in UTF-16 code units, as in the Bot API.

    ``type`` is TDLib's name (Bold, Italic, Underline, Strikethrough, Spoiler, Code, Pre,
    PreCode, TextUrl, MentionName, CustomEmoji, Date, BlockQuote, ExpandableBlockQuote).
    ``argument`` holds the link as written (Telegram also normalizes it and drops an entity
    whose link is invalid, which changes neither validity nor length), the language of a
    PreCode, the custom emoji or user id, or the date format.
    """

    type: str
    offset: int
    length: int
    argument: str = ""


class ParsedText(NamedTuple):
    """The text without markup, its entities, and where its first entity starts.

    ``first_entity_start`` is a code point index into ``text`` (``len(text)`` without
    entities): Telegram trims leading whitespace only before it.
    """

    text: str
    entities: tuple[Entity, ...]
    first_entity_start: int


class _Fail(Exception):
    """Raised deep in a parser; turned into EntityParseError once, with the byte offset.

    TDLib's messages that name a position read "<head> at byte offset N<tail>"; ``tail=None``
    is a message that names none.
    """

    def __init__(self, offset: int, head: str, tail: str | None = "") -> None:
        super().__init__(head)
        self.offset = offset
        self.head = head
        self.tail = tail


def _error(text: str, fail: _Fail) -> EntityParseError:
    byte_offset = len(text[: fail.offset].encode("utf-8", "surrogatepass"))
    message = fail.head
    if fail.tail is not None:
        message = f"{message} at byte offset {byte_offset}{fail.tail}"
    return EntityParseError(message, fail.offset, byte_offset)


# TDLib's is_space: note '\0' (the end of a C string) and no '\f'.
_SPACE = frozenset(" \t\r\n\0\v")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _ALPHA | _DIGITS
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PRIORITY = {
    "Bold": 90,
    "Italic": 91,
    "Code": 20,
    "Pre": 11,
    "PreCode": 10,
    "TextUrl": 49,
    "MentionName": 49,
    "Underline": 92,
    "Strikethrough": 93,
    "BlockQuote": 0,
    "Spoiler": 94,
    "CustomEmoji": 99,
    "ExpandableBlockQuote": 0,
    "Date": 30,
}
_MAX_USER_ID = (1 << 40) - 1


# std::string reads as '\0' at its end, which TDLib's loops rely on; the parsers walk the text
# with this padding so that t[i + k] past the end reads the same.
_PAD = "\0\0\0\0"


def _ascii_lower(s: str) -> str:
    # TDLib's to_lower changes ASCII letters only (str.lower would also fold e.g. U+212A).
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def _to_integer_safe(value: str, bits: int) -> int | None:
    # td::to_integer_safe: the canonical decimal spelling of an in-range value only. (The
    # length check first: int() refuses strings of thousands of digits.)
    if len(value) > 21 or not re.fullmatch(r"-?[0-9]+", value) or str(int(value)) != value:
        return None
    number = int(value)
    return number if -(1 << (bits - 1)) <= number < (1 << (bits - 1)) else None


def _tg_query(url: str, host: str) -> str | None:
    """The query of a tg://<host>?... link (LinkManager::check_tg_url_host), else None."""
    lower = _ascii_lower(url)
    if not lower.startswith("tg:"):
        return None
    lower, url = lower[3:], url[3:]
    if lower.startswith("//"):
        lower, url = lower[2:], url[2:]
    if not lower.startswith(host) or (len(url) > len(host) and url[len(host)] not in "/?#"):
        return None
    url = url[len(host) :]
    if url.startswith("/"):
        url = url[1:]
    if not url.startswith("?"):
        return None
    return url[1:].partition("#")[0]


def _query_params(query: str) -> list[tuple[str, str]]:
    return [(key, value) for key, _, value in (p.partition("=") for p in query.split("&"))]


def _link_user_id(url: str) -> int | None:
    # get_link_user_id lower-cases the whole link first, so its query too.
    query = _tg_query(_ascii_lower(url), "user")
    for key, value in _query_params(query) if query is not None else []:
        if key == "id":
            user_id = _to_integer_safe(value, 64)
            return user_id if user_id is not None and 0 < user_id <= _MAX_USER_ID else None
    return None


def _date_format_ok(date_format: str) -> bool:
    # FormattedDate::get_date_flags
    return date_format in ("r", "R") or all(c in "tTdDwW" for c in date_format)


def _emoji_or_date(url: str) -> tuple[str, str] | None:
    """(entity type, argument) of a tg://emoji?id= or tg://time?unix= link, else None."""
    query = _tg_query(url, "emoji")
    if query is not None:
        for key, value in _query_params(query):
            if key == "id":
                emoji_id = _to_integer_safe(value, 64)
                return ("CustomEmoji", value) if emoji_id else None
        return None
    query = _tg_query(url, "time")
    if query is None:
        return None
    date, date_format = 0, ""
    for key, value in _query_params(query):
        if key == "unix":
            parsed = _to_integer_safe(value, 32)
            if parsed is None or parsed <= 0:
                return None
            date = parsed
        if key == "format":
            date_format = value
    if date == 0 or not _date_format_ok(date_format):
        return None
    return "Date", date_format


class _Ent:
    """An entity while parsing: code point offsets; mutable for HTML's <pre><code> merge."""

    __slots__ = ("argument", "kind", "length", "offset")

    def __init__(self, kind: str, offset: int, length: int, argument: str = "") -> None:
        self.kind = kind
        self.offset = offset
        self.length = length
        self.argument = argument


class _Open(NamedTuple):
    """An entity whose end is not found yet."""

    kind: str
    argument: str
    offset: int  # in the parsed text, code points
    start: int  # of the markup in the raw text, code points
    piece: int  # index of the first output piece inside it


def _finish(text: str, raw: list[_Ent], with_entities: bool) -> ParsedText:
    """Sort entities like TDLib (offset, longer first, type priority) and convert offsets from
    code points to UTF-16 code units."""
    first = min((e.offset for e in raw), default=len(text))
    if not with_entities:
        return ParsedText(text, (), first)
    items = [(e.offset, e.length, e.kind, e.argument) for e in raw]
    if not text.isascii() and items:
        bounds = sorted({b for offset, length, _, _ in items for b in (offset, offset + length)})
        units: dict[int, int] = {}
        pos = unit = 0
        for bound in bounds:
            unit += len(text[pos:bound].encode("utf-16-le", "surrogatepass")) // 2
            units[bound] = unit
            pos = bound
        items = [(units[o], units[o + n] - units[o], t, a) for o, n, t, a in items]
    items.sort(key=lambda e: (e[0], -e[1], _PRIORITY.get(e[2], 50)))
    return ParsedText(text, tuple(Entity(t, o, n, a) for o, n, t, a in items), first)
