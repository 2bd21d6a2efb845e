"""Telegram's parse_mode MarkdownV2 and Markdown, ported from TDLib's ``parse_markdown_v2`` and
``parse_markdown`` (td/telegram/MessageEntity.cpp)."""

from __future__ import annotations

import re

from notigate.markup import (
    _PAD,
    _SPACE,
    ParsedText,
    _emoji_or_date,
    _Ent,
    _error,
    _Fail,
    _finish,
    _link_user_id,
    _Open,
)

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
