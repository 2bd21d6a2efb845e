"""Telegram's entity parsing for parse_mode HTML, MarkdownV2 and Markdown, ported from TDLib.

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


# -- HTML ---------------------------------------------------------------------------------

_HTML_SIMPLE = {
    "i": "Italic",
    "em": "Italic",
    "b": "Bold",
    "strong": "Bold",
    "s": "Strikethrough",
    "strike": "Strikethrough",
    "del": "Strikethrough",
    "u": "Underline",
    "ins": "Underline",
    "tg-spoiler": "Spoiler",
    "span": "Spoiler",
}
_HTML_TAGS = frozenset(_HTML_SIMPLE) | {"a", "tg-emoji", "tg-time", "pre", "code", "blockquote"}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TOKEN = re.compile(
    r"([^&<]+)|<([A-Za-z][A-Za-z-]*)>|</([A-Za-z][A-Za-z-]*)>|&(lt|gt|amp|quot)(?![A-Za-z]);?|[&<]"
)
_TAG_NAME_END = re.compile("[ \t\r\n\0\v>]")
_ATTRIBUTE_NAME_END = re.compile("[ \t\r\n\0\v=>/\"']")


_ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]*)|#([0-9]*)|([A-Za-z]*))(;?)")


def _decode_html_entity(t: str, pos: int) -> tuple[int, int]:
    """(code point, position after the entity) of the reference at ``pos``; code 0: none.

    decode_html_entity: "&#x" + hex digits, "&#" + digits (1..0x10FFFE, under 10 characters
    in all) or one of four names, then an optional ';'.
    """
    match = _ENTITY.match(t, pos)
    if match is None:  # cannot happen: every group may be empty
        return 0, pos
    hex_digits, digits, name, _ = match.groups()
    number = hex_digits if hex_digits is not None else digits
    if number is not None:
        end = match.end(2 if hex_digits is None else 1)
        # A spelling of 10 characters or more is refused, so int() never sees a long one.
        if not number or end - pos >= 10:
            return 0, pos
        code = int(number, 16 if hex_digits is not None else 10)
        if code == 0 or code >= 0x10FFFF:
            return 0, pos
    else:
        named = _HTML_NAMED.get(name)
        if named is None:
            return 0, pos  # unsupported named entities stay in the text as written
        code = ord(named)
    return code, match.end()


def _html_quoted(t: str, i: int, quote: str) -> tuple[str, int]:
    """A quoted attribute value from ``i`` with its references decoded, and the position after
    it (after the closing quote, or at the end of the text)."""
    chars: list[str] = []
    while t[i] != quote and t[i] != "\0":
        if t[i] == "&":
            code, end = _decode_html_entity(t, i)
            if code:
                chars.append(chr(code))
                i = end
                continue
        chars.append(t[i])
        i += 1
    if t[i] == quote:
        i += 1
    return "".join(chars), i


def _html_attributes(t: str, i: int, tag: str, begin: int) -> tuple[int, str, int]:
    """Parse a start tag's attributes from ``i``; return (index of '>', argument, date)."""
    argument, date = "", 0
    while t[i] != ">":
        while t[i] != "\0" and t[i] in _SPACE:
            i += 1
        if t[i] == ">":
            break
        name_begin = i
        match = _ATTRIBUTE_NAME_END.search(t, i)
        i = match.start() if match else len(t) - 1
        name = t[name_begin:i]
        if not name:
            raise _Fail(begin, f'Empty attribute name in the tag "{tag}"')
        while t[i] != "\0" and t[i] in _SPACE:
            i += 1
        if t[i] != "=":
            if t[i] == "\0":
                raise _Fail(begin, f'Unclosed start tag "{tag}"')
            if tag == "blockquote" and name == "expandable":
                argument = "1"
            continue
        i += 1
        while t[i] != "\0" and t[i] in _SPACE:
            i += 1
        if t[i] == "\0":
            raise _Fail(begin, f'Unclosed start tag "{tag}"')
        quote = t[i]
        if quote not in "'\"":
            # A name token: letters, digits, periods or hyphens, not case sensitive.
            token_begin = i
            while t[i] in _ALNUM or t[i] in ".-":
                i += 1
            value = _ascii_lower(t[token_begin:i])
            if t[i] not in _SPACE and t[i] != ">":
                raise _Fail(token_begin, "Unexpected end of name token")
        else:
            i += 1
            end = t.find(quote, i)
            if end >= 0 and "&" not in t[i:end] and "\0" not in t[i:end]:
                value, i = t[i:end], end + 1  # nothing to decode: the value as written
            else:
                value, i = _html_quoted(t, i, quote)
        if t[i] == "\0":
            raise _Fail(begin, "Unclosed start tag")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[9:]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "1"
        elif tag == "tg-time" and name == "unix":
            # td::to_integer reads an optional '-' and the leading digits; only the sign
            # matters here (a positive date makes an entity), so a few digits are enough.
            digits = re.match(r"-?[0-9]{0,9}", value)
            number = digits.group() if digits else ""
            date = int(number) if number.lstrip("-") else 0
        elif tag == "tg-time" and name == "format":
            argument = value
    return i, argument, date


def _html_close(
    ents: list[_Ent],
    tag: str,
    argument: str,
    date: int,
    offset: int,
    length: int,
    content: str,
    begin: int,
) -> None:
    simple = _HTML_SIMPLE.get(tag)
    if simple is not None:
        ents.append(_Ent(simple, offset, length, ""))
    elif tag == "tg-emoji":
        if not _to_integer_safe(argument, 64):
            raise _Fail(begin, "Invalid custom emoji identifier specified", None)
        ents.append(_Ent("CustomEmoji", offset, length, argument))
    elif tag == "tg-time":
        if not _date_format_ok(argument):
            raise _Fail(begin, "Invalid date format used", None)
        if date > 0:
            ents.append(_Ent("Date", offset, length, argument))
    elif tag == "a":
        url = argument or content
        user_id = _link_user_id(url)
        if user_id is not None:
            ents.append(_Ent("MentionName", offset, length, str(user_id)))
        elif url:
            ents.append(_Ent("TextUrl", offset, length, url))
    elif tag == "pre":
        last = ents[-1] if ents else None
        if (
            last
            and (last.kind, last.offset, last.length) == ("Code", offset, length)
            and last.argument
        ):
            last.kind = "PreCode"
        else:
            ents.append(_Ent("Pre", offset, length, ""))
    elif tag == "code":
        last = ents[-1] if ents else None
        if last and (last.kind, last.offset, last.length) == ("Pre", offset, length) and argument:
            last.kind, last.argument = "PreCode", argument
        else:
            ents.append(_Ent("Code", offset, length, argument))
    else:  # blockquote
        ents.append(_Ent("ExpandableBlockQuote" if argument else "BlockQuote", offset, length, ""))


def parse_html(text: str, *, with_entities: bool = True) -> ParsedText:
    """Parse ``text`` as Telegram's HTML parse mode does; raise :class:`EntityParseError`.

    ``with_entities=False`` skips building the entity list (validation needs only the text).
    """
    try:
        return _parse_html(text, with_entities)
    except _Fail as fail:
        raise _error(text, fail) from None


def _parse_html(text: str, with_entities: bool) -> ParsedText:
    n = len(text)
    t = text + _PAD
    out: list[str] = []
    olen = 0
    ents: list[_Ent] = []
    # tag, argument, date, entity offset, index into out, start tag position
    stack: list[tuple[str, str, int, int, int, int]] = []
    surrogate_at = -1
    i = 0
    while i < n:
        # Ordinary runs, <name>, </name> and the four named references are decided here, as
        # the general code below would; anything else stops the run and takes that code.
        for token in _HTML_TOKEN.finditer(t, i, n):
            group = token.lastindex
            if group == 1:
                out.append(token.group(1))
                olen += token.end() - token.start()
            elif group == 2:
                tag = _ascii_lower(token.group(2))
                if tag not in _HTML_TAGS or tag == "span":
                    break
                stack.append((tag, "", 0, olen, len(out), token.start()))
            elif group == 3:
                if not stack or stack[-1][0] != _ascii_lower(token.group(3)):
                    break
                tag, argument, date, offset, piece, start = stack.pop()
                if olen > offset:
                    content = "".join(out[piece:]) if tag == "a" and not argument else ""
                    _html_close(ents, tag, argument, date, offset, olen - offset, content, start)
            elif group == 4:
                out.append(_HTML_NAMED[token.group(4)])
                olen += 1
            else:
                break
        else:
            break
        i = token.start()
        if t[i] == "&":
            code, end = _decode_html_entity(t, i)
            if code:
                if 0xD800 <= code <= 0xDFFF and surrogate_at < 0:
                    surrogate_at = i
                out.append(chr(code))
            else:
                out.append("&")
                end = i + 1
            olen += 1
            i = end
            continue
        begin = i
        i += 1
        if t[i] != "/":
            match = _TAG_NAME_END.search(t, i)
            i = match.start() if match else n
            if t[i] == "\0":
                raise _Fail(begin, "Unclosed start tag")
            tag = _ascii_lower(t[begin + 1 : i])
            if tag not in _HTML_TAGS:
                raise _Fail(begin, f'Unsupported start tag "{tag}"')
            i, argument, date = _html_attributes(t, i, tag, begin)
            if tag == "span" and argument != "spoiler":
                raise _Fail(begin, 'Tag "span" must have class "tg-spoiler"')
            stack.append((tag, argument, date, olen, len(out), begin))
            i += 1
            continue
        if not stack:
            raise _Fail(begin, "Unexpected end tag")
        while t[i] not in _SPACE and t[i] != ">":
            i += 1
        end_tag = _ascii_lower(t[begin + 2 : i])
        while t[i] in _SPACE and t[i] != "\0":
            i += 1
        if t[i] != ">":
            raise _Fail(begin, "Unclosed end tag")
        tag, argument, date, offset, piece, start = stack.pop()
        if end_tag and end_tag != tag:
            raise _Fail(begin, "Unmatched end tag", f', expected "</{tag}>", found "</{end_tag}>"')
        if olen > offset:
            content = "".join(out[piece:]) if tag == "a" and not argument else ""
            _html_close(ents, tag, argument, date, offset, olen - offset, content, start)
        i += 1
    if stack:
        tag = stack[-1][0]
        raise _Fail(stack[-1][5], f'Can\'t find end tag corresponding to start tag "{tag}"', None)
    if surrogate_at >= 0:
        raise _Fail(
            surrogate_at,
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units",
            None,
        )
    for entity in ents:
        if entity.kind == "Code":
            entity.argument = ""
    return _finish("".join(out), ents, with_entities)


# -- MarkdownV2 ---------------------------------------------------------------------------

_MDV2_SCAN = re.compile(r"[\\_*\[\]()~`>#+\-=|{}.!\n]")
_MDV2_CODE_SCAN = re.compile(r"[\\`]")
_CODE_TYPES = frozenset({"Code", "Pre", "PreCode"})


def _reserved(offset: int, char: str) -> _Fail:
    return _Fail(
        offset, f"Character '{char}' is reserved and must be escaped with the preceding '\\'", None
    )


def _mdv2_url(t: str, i: int) -> tuple[int, str]:
    """Read a link from ``i`` (just after '(') up to ')', undoing backslash escapes."""
    begin = i
    n = len(t) - len(_PAD)
    close = t.find(")", i, n)
    if close >= 0 and "\\" not in t[i:close]:
        return close, t[i:close]  # no escapes: the first ')' ends it
    chars: list[str] = []
    while i < n and t[i] != ")":
        if t[i] == "\\" and 0 < ord(t[i + 1]) <= 126:
            chars.append(t[i + 1])
            i += 2
            continue
        chars.append(t[i])
        i += 1
    if t[i] != ")":
        raise _Fail(begin, "Can't find end of a URL")
    return i, "".join(chars)


def parse_markdown_v2(text: str, *, with_entities: bool = True) -> ParsedText:
    """Parse ``text`` as Telegram's MarkdownV2 parse mode does; raise :class:`EntityParseError`
    (``with_entities`` as for :func:`parse_html`)."""
    try:
        return _parse_markdown_v2(text, with_entities)
    except _Fail as fail:
        raise _error(text, fail) from None


def _parse_markdown_v2(text: str, with_entities: bool) -> ParsedText:
    n = len(text)
    t = text + _PAD
    out: list[str] = []
    olen = 0
    ents: list[_Ent] = []
    # type, argument, entity offset, start position in text, index into out
    stack: list[_Open] = []
    have_blockquote = False
    can_start_blockquote = True
    i = 0
    while i < n:
        in_code = bool(stack) and stack[-1].kind in _CODE_TYPES
        match = (_MDV2_CODE_SCAN if in_code else _MDV2_SCAN).search(t, i, n)
        j = match.start() if match else n
        if j > i:
            chunk = t[i:j]
            out.append(chunk)
            olen += j - i
            if chunk.strip("\r"):
                can_start_blockquote = False
            i = j
            if i == n:
                break
        c = t[i]
        if c == "\\":
            nxt = t[i + 1]
            if 0 < ord(nxt) <= 126:
                out.append(nxt)
                olen += 1
                if nxt != "\r":
                    can_start_blockquote = nxt == "\n"
                i += 2
            else:  # not an escape: an ordinary backslash
                out.append(c)
                olen += 1
                can_start_blockquote = False
                i += 1
            continue
        top = stack[-1].kind if stack else ""
        if not stack:
            is_end = False
        elif have_blockquote and c == "\n" and t[i + 1] != ">":
            is_end = True
        elif top == "Bold":
            is_end = c == "*"
        elif top == "Italic":
            is_end = c == "_" and t[i + 1] != "_"
        elif top == "Code":
            is_end = c == "`"
        elif top in ("Pre", "PreCode"):
            is_end = c == "`" and t[i + 1] == "`" and t[i + 2] == "`"
        elif top in ("TextUrl", "CustomEmoji"):
            is_end = c == "]"
        elif top == "Underline":
            is_end = c == "_" and t[i + 1] == "_"
        elif top == "Strikethrough":
            is_end = c == "~"
        elif top == "Spoiler":
            is_end = c == "|" and t[i + 1] == "|"
        else:  # BlockQuote ends only at a line that does not start with '>'
            is_end = False
        if not is_end:
            begin = i
            argument = ""
            kind: str | None
            if c == "_":
                if t[i + 1] == "_":
                    kind = "Underline"
                    i += 1
                else:
                    kind = "Italic"
            elif c == "*":
                kind = "Bold"
            elif c == "~":
                kind = "Strikethrough"
            elif c == "|":
                if t[i + 1] != "|":
                    raise _reserved(i, c)
                i += 1
                kind = "Spoiler"
            elif c == "[":
                kind = "TextUrl"
            elif c == "`":
                if t[i + 1] == "`" and t[i + 2] == "`":
                    i += 3
                    kind = "Pre"
                    language_end = i
                    while t[language_end] not in _SPACE and t[language_end] != "`":
                        language_end += 1
                    if i != language_end and language_end < n and t[language_end] != "`":
                        kind = "PreCode"
                        argument = t[i:language_end]
                        i = language_end
                    # one line break right after the opening fence belongs to the markup
                    if t[i] in "\n\r":
                        if t[i + 1] in "\n\r" and t[i] != t[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "Code"
            elif c == "!":
                if t[i + 1] != "[":
                    raise _reserved(i, c)
                i += 1
                kind = "CustomEmoji"
            elif c == "\n":
                out.append("\n")
                olen += 1
                can_start_blockquote = True
                kind = None
            elif c == ">":
                if not can_start_blockquote:
                    raise _reserved(i, c)
                if have_blockquote:
                    kind = None
                else:
                    kind = "BlockQuote"
                    have_blockquote = True
            else:
                raise _reserved(i, c)
            if kind is not None:
                stack.append(_Open(kind, argument, olen, begin, len(out)))
            i += 1
            continue
        kind = top
        if c == "\n" and kind != "BlockQuote":
            start = stack[-1].start
            last_is_cr = bool(out) and out[-1].endswith("\r")
            if kind != "Spoiler" or not (start == i - 2 or (start == i - 3 and last_is_cr)):
                raise _Fail(start, f"Can't find end of {kind} entity")
            stack.pop()
            kind = stack[-1].kind
            if kind != "BlockQuote":
                raise _Fail(stack[-1].start, f"Can't find end of {kind} entity")
            kind = "ExpandableBlockQuote"
        _, argument, offset, start, piece = stack[-1]
        skip = olen == offset
        if kind in ("Underline", "Spoiler"):
            i += 1
        elif kind in ("Pre", "PreCode"):
            i += 2
        elif kind == "TextUrl":
            if t[i + 1] != "(":
                url = "".join(out[piece:])  # the link's text is its URL
            else:
                i, url = _mdv2_url(t, i + 2)
            user_id = _link_user_id(url)
            if user_id is not None:
                kind, argument = "MentionName", str(user_id)
            elif url:
                argument = url
            else:
                skip = True
        elif kind == "CustomEmoji":
            if t[i + 1] != "(":
                raise _Fail(start, "The entity must contain a tg://emoji or tg://time URL", None)
            i, url = _mdv2_url(t, i + 2)
            found = _emoji_or_date(url)
            if found is None:
                raise _Fail(start, "Invalid tg://emoji or tg://time URL specified", None)
            kind, argument = found
        elif kind in ("BlockQuote", "ExpandableBlockQuote"):
            have_blockquote = False
            out.append(t[i])
            olen += 1
            can_start_blockquote = True
            skip = False
        if not skip:
            ents.append(_Ent(kind, offset, olen - offset, argument))
        stack.pop()
        i += 1
    if have_blockquote:
        kind = "BlockQuote"
        if stack[-1].kind == "Spoiler" and stack[-1].start == n - 2:
            stack.pop()
            kind = "ExpandableBlockQuote"
        if stack[-1].kind == "BlockQuote":
            offset = stack[-1].offset
            if olen != offset:
                ents.append(_Ent(kind, offset, olen - offset, ""))
            stack.pop()
    if stack:
        raise _Fail(stack[-1].start, f"Can't find end of {stack[-1].kind} entity")
    return _finish("".join(out), ents, with_entities)


# -- Markdown (legacy) --------------------------------------------------------------------

_MD_SCAN = re.compile(r"[\\_*`\[]")
_MD_TYPES = {"_": "Italic", "*": "Bold", "`": "Code", "[": "TextUrl"}


def parse_markdown(text: str, *, with_entities: bool = True) -> ParsedText:
    """Parse ``text`` as Telegram's legacy Markdown parse mode does; raise
    :class:`EntityParseError` (``with_entities`` as for :func:`parse_html`)."""
    try:
        return _parse_markdown(text, with_entities)
    except _Fail as fail:
        raise _error(text, fail) from None


def _parse_markdown(text: str, with_entities: bool) -> ParsedText:
    n = len(text)
    t = text + _PAD
    out: list[str] = []
    olen = 0
    ents: list[_Ent] = []
    i = 0
    while i < n:
        match = _MD_SCAN.search(t, i, n)
        j = match.start() if match else n
        if j > i:
            out.append(t[i:j])
            olen += j - i
            i = j
            if i == n:
                break
        c = t[i]
        if c == "\\":
            if t[i + 1] in "_*`[":
                out.append(t[i + 1])
                olen += 1
                i += 2
            else:
                out.append(c)
                olen += 1
                i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        i += 1
        if c == "`" and t[i] == "`" and t[i + 1] == "`":
            i += 2
            is_pre = True
            language_end = i
            while t[language_end] not in _SPACE and t[language_end] != "`":
                language_end += 1
            if i != language_end and language_end < n and t[language_end] != "`":
                language = t[i:language_end]
                i = language_end
            if t[i] in "\n\r":
                if t[i + 1] in "\n\r" and t[i] != t[i + 1]:
                    i += 2
                else:
                    i += 1
        offset = olen
        # Entity content is copied as written: legacy Markdown has no escapes inside.
        end = t.find("```", i, n) if is_pre else t.find(end_char, i, n)
        if end < 0:
            raise _Fail(begin, "Can't find end of the entity starting")
        out.append(t[i:end])
        olen += end - i
        i = end
        if olen != offset:
            kind, argument = _MD_TYPES[c], ""
            if c == "[":
                if t[i + 1] != "(":
                    argument = t[begin + 1 : i]
                else:
                    close = t.find(")", i + 2, n)
                    argument = t[i + 2 : close if close >= 0 else n]
                    i = close if close >= 0 else n
                user_id = _link_user_id(argument)
                if user_id is not None:
                    kind, argument = "MentionName", str(user_id)
            elif is_pre:
                kind, argument = ("PreCode", language) if language else ("Pre", "")
            if c != "[" or argument:
                ents.append(_Ent(kind, offset, olen - offset, argument))
        if is_pre:
            i += 2
        i += 1
    return _finish("".join(out), ents, with_entities)


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
        if text and text[0] > " " and text[-1] > " " and not _may_shrink(text, data):
            # The common case on the Send path: plain text that Telegram neither trims nor
            # shortens (all it trims are control characters and spaces).
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
