"""Telegram's parse_mode HTML, ported from TDLib's ``parse_html`` (MessageEntity.cpp)."""

from __future__ import annotations

import re

from notigate.markup import (
    _ALNUM,
    _PAD,
    _SPACE,
    ParsedText,
    _ascii_lower,
    _date_format_ok,
    _Ent,
    _error,
    _Fail,
    _finish,
    _link_user_id,
    _to_integer_safe,
)

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
