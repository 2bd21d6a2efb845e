"""notigate.formatting against Telegram's own parser: TDLib's test cases, the Bot API docs'
examples, the limits after parsing, and escaping properties."""

from __future__ import annotations

import html
import re

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import example, given
from hypothesis import strategies as st

from notigate import formatting
from notigate.formatting import (
    EntityParseError,
    check_message_text,
    is_blank,
    message_length,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
)
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, wait_state
from tests.tdlib_entity_cases import (
    TDLIB_HTML_ERRORS,
    TDLIB_HTML_OK,
    TDLIB_MDV2_ERRORS,
    TDLIB_MDV2_OK,
    Expected,
)


def _entities(parsed: formatting.ParsedText, expected: list[Expected]) -> list[Expected]:
    return [
        (e.type, e.offset, e.length, None if want[3] is None else e.argument)
        for e, want in zip(parsed.entities, expected, strict=False)
    ] + [(e.type, e.offset, e.length, e.argument) for e in parsed.entities[len(expected) :]]


@pytest.mark.parametrize(("text", "result", "entities"), TDLIB_HTML_OK)
def test_tdlib_html_accepted(text: str, result: str, entities: list[Expected]) -> None:
    parsed = parse_html(text)
    assert parsed.text == result
    assert _entities(parsed, entities) == entities


@pytest.mark.parametrize(("text", "message"), TDLIB_HTML_ERRORS)
def test_tdlib_html_refused(text: str, message: str) -> None:
    with pytest.raises(EntityParseError) as info:
        parse_html(text)
    assert info.value.message == message


@pytest.mark.parametrize(("text", "result", "entities"), TDLIB_MDV2_OK)
def test_tdlib_markdown_v2_accepted(text: str, result: str, entities: list[Expected]) -> None:
    parsed = parse_markdown_v2(text)
    assert parsed.text == result
    assert _entities(parsed, entities) == entities


@pytest.mark.parametrize(("text", "message"), TDLIB_MDV2_ERRORS)
def test_tdlib_markdown_v2_refused(text: str, message: str) -> None:
    with pytest.raises(EntityParseError) as info:
        parse_markdown_v2(text)
    assert info.value.message == message


def test_tdlib_markdown_v2_single_characters() -> None:
    # TDLib's loop over every ASCII character alone: reserved ones must be escaped.
    for code in range(1, 126):
        char = chr(code)
        if char in "_*[~`>":
            continue
        if char in "]()>#+-=|{}.!":
            with pytest.raises(EntityParseError) as info:
                parse_markdown_v2(char)
            assert info.value.message == (
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
            assert parse_markdown_v2("\\" + char).text == char
        else:
            assert parse_markdown_v2(char) == (char, (), 1)


# -- the Bot API docs' examples ----------------------------------------------------------

DOCS_HTML = """<b>bold</b>, <strong>bold</strong>
<i>italic</i>, <em>italic</em>
<u>underline</u>, <ins>underline</ins>
<s>strikethrough</s>, <strike>strikethrough</strike>, <del>strikethrough</del>
<span class="tg-spoiler">spoiler</span>, <tg-spoiler>spoiler</tg-spoiler>
<b>bold <i>italic bold <s>italic bold strikethrough <span class="tg-spoiler">italic bold \
strikethrough spoiler</span></s> <u>underline italic bold</u></i> bold</b>
<a href="http://www.example.com/">inline URL</a>
<a href="tg://user?id=123456789">inline mention of a user</a>
<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>
<code>inline fixed-width code</code>
<pre>pre-formatted fixed-width code block</pre>
<pre><code class="language-python">pre-formatted fixed-width code block written in the Python \
programming language</code></pre>
<blockquote>Block quotation started\nBlock quotation continued\nThe last line of the block \
quotation</blockquote>
<blockquote expandable>Expandable block quotation started\nExpandable block quotation \
continued\nHidden by default part of the block quotation started\nThe last line of the block \
quotation</blockquote>"""

DOCS_MARKDOWN_V2 = r"""*bold \*text*
_italic \*text_
__underline__
~strikethrough~
||spoiler||
*bold _italic bold ~italic bold strikethrough ||italic bold strikethrough spoiler||~ __underline \
italic bold___ bold*
[inline URL](http://www.example.com/)
[inline mention of a user](tg://user?id=123456789)
![👍](tg://emoji?id=5368324170671202286)
`inline fixed-width code`
```
pre-formatted fixed-width code block
```
```python
pre-formatted fixed-width code block written in the Python programming language
```
>Block quotation started
>Block quotation continued
>The last line of the block quotation
**>The expandable block quotation started right after the previous block quotation
>It is separated from the previous block quotation by an empty bold entity
>The last line of the expandable block quotation with the expandability mark||"""

DOCS_MARKDOWN = """*bold text*
_italic text_
[inline URL](http://www.example.com/)
[inline mention of a user](tg://user?id=123456789)
`inline fixed-width code`
```
pre-formatted fixed-width code block
```
```python
pre-formatted fixed-width code block written in the Python programming language
```"""


def _types(parsed: formatting.ParsedText) -> set[str]:
    return {e.type for e in parsed.entities}


def test_docs_examples_parse() -> None:
    every = {"Bold", "Italic", "Underline", "Strikethrough", "Spoiler", "TextUrl", "MentionName"}
    every |= {"CustomEmoji", "Code", "Pre", "PreCode", "BlockQuote", "ExpandableBlockQuote"}
    assert _types(parse_html(DOCS_HTML)) == every
    assert _types(parse_markdown_v2(DOCS_MARKDOWN_V2)) == every
    legacy = parse_markdown(DOCS_MARKDOWN)
    assert _types(legacy) == {"Bold", "Italic", "TextUrl", "MentionName", "Code", "Pre", "PreCode"}
    assert "*" not in legacy.text and "`" not in legacy.text
    mention = next(e for e in legacy.entities if e.type == "MentionName")
    assert mention.argument == "123456789"


# -- rejected and accepted strings per mode ----------------------------------------------

REFUSED = [
    # (mode, text, TDLib's message, code point offset)
    (
        "MarkdownV2",
        "Version 1.2 released!",
        "Character '.' is reserved and must be escaped with the preceding '\\'",
        9,
    ),
    (
        "MarkdownV2",
        "Price: 5-10",
        "Character '-' is reserved and must be escaped with the preceding '\\'",
        8,
    ),
    ("MarkdownV2", "*bold", "Can't find end of Bold entity at byte offset 0", 0),
    ("MarkdownV2", "é _x", "Can't find end of Italic entity at byte offset 3", 2),
    ("MarkdownV2", "[a](http://x", "Can't find end of a URL at byte offset 4", 4),
    (
        "MarkdownV2",
        "a | b",
        "Character '|' is reserved and must be escaped with the preceding '\\'",
        2,
    ),
    ("HTML", "a < b", 'Unsupported start tag "" at byte offset 2', 2),
    ("HTML", "<br>line", 'Unsupported start tag "br" at byte offset 0', 0),
    ("HTML", "<b>bold", 'Can\'t find end tag corresponding to start tag "b"', 0),
    (
        "HTML",
        "<b><i>x</b></i>",
        'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"',
        7,
    ),
    ("HTML", "x</b>", "Unexpected end tag at byte offset 1", 1),
    ("HTML", "🏟 <span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 5', 2),
    ("HTML", '<a href="x>y</a>', "Unclosed start tag at byte offset 0", 0),
    (
        "HTML",
        "&#xD83D;&#xDE00;",
        "Text contains invalid Unicode characters after decoding "
        "HTML entities, check for unmatched surrogate code units",
        0,
    ),
    (
        "HTML",
        '<tg-emoji emoji-id="01">x</tg-emoji>',
        "Invalid custom emoji identifier specified",
        0,
    ),
    ("Markdown", "snake_case", "Can't find end of the entity starting at byte offset 5", 5),
    ("Markdown", "2*3 = 6", "Can't find end of the entity starting at byte offset 1", 1),
    ("Markdown", "🏟 `code", "Can't find end of the entity starting at byte offset 5", 2),
    ("Markdown", "```\nunclosed", "Can't find end of the entity starting at byte offset 0", 0),
]

ACCEPTED = [
    # (mode, text, plain text)
    ("MarkdownV2", r"Version 1\.2 released\!", "Version 1.2 released!"),
    ("MarkdownV2", "`a.b-c!`", "a.b-c!"),  # only ` and \ are special inside code
    ("MarkdownV2", "```\n1 + 1 = 2\n```", "1 + 1 = 2\n"),
    ("MarkdownV2", r"\\\➡️", "\\\\➡️"),  # a backslash before non-ASCII is a backslash
    ("MarkdownV2", "> quote\nnext", " quote\nnext"),
    ("HTML", "AT&T &nbsp; &copy; 5 &gt; 3", "AT&T &nbsp; &copy; 5 > 3"),  # kept as written
    ("HTML", "&#128512; &#x1F600;", "\U0001f600 \U0001f600"),
    ("HTML", "<B>Bold</B> <a href='tg://user?id=1'>u</a>", "Bold u"),
    ("HTML", "<code>x</>", "x"),
    ("Markdown", "snake\\_case 2\\*3", "snake_case 2*3"),
    ("Markdown", "[x](http://a.b", "x"),  # an unclosed link target ends at the text's end
    ("Markdown", "_a*b_", "a*b"),  # no nesting: the content is copied as written
    ("Markdown", "a.b-c! (x) #1", "a.b-c! (x) #1"),
]


@pytest.mark.parametrize(("mode", "text", "message", "offset"), REFUSED)
def test_refused(mode: str, text: str, message: str, offset: int) -> None:
    with pytest.raises(EntityParseError) as info:
        formatting.parse(text, mode)
    assert (info.value.message, info.value.offset) == (message, offset)
    assert info.value.byte_offset == len(text[:offset].encode())


@pytest.mark.parametrize(("mode", "text", "plain"), ACCEPTED)
def test_accepted(mode: str, text: str, plain: str) -> None:
    assert formatting.parse(text, mode).text == plain


def test_entity_offsets_are_utf16_units() -> None:
    parsed = parse_html("\U0001f600 <b>é\U0001f600</b>")
    assert parsed.entities == (formatting.Entity("Bold", 3, 3),)
    assert parsed.first_entity_start == 2  # code points into parsed.text


# -- length and emptiness after parsing --------------------------------------------------


def test_length_counts_parsed_text_in_code_points() -> None:
    # 4,000 visible characters in 4,210 raw: accepted.
    text = "<b>" + "a" * 1000 + "</b>" + "<i>" + "b" * 3000 + "</i>" + "<u></u>" * 28
    assert len(text) == 4210
    assert check_message_text(text, "HTML") is None
    over = "<b>" + "a" * 4097 + "</b>"
    assert check_message_text(over, "HTML") == ("too_long", 4097, None)
    assert check_message_text(over, None) == ("too_long", 4104, None)
    # An emoji is one character for the limit (TDLib counts utf8_length), two UTF-16 units.
    assert check_message_text("\U0001f600" * 4096, None) is None
    assert check_message_text("\U0001f600" * 4097, None) == ("too_long", 4097, None)
    assert check_message_text("*" + "x" * 4096 + "*", "MarkdownV2") is None
    assert check_message_text("&lt;" * 4096, "HTML") is None
    assert check_message_text("&lt;" * 4097, "HTML") == ("too_long", 4097, None)


def test_length_after_telegram_cleans_the_text() -> None:
    # \r is removed, leading/trailing spaces and line breaks trimmed, controls become spaces.
    assert message_length("a\r\nb") == 3
    assert message_length("  \n x \n ") == 1
    assert message_length("\x00x\x01") == 1
    assert message_length("x\u2028y") == 2
    # Leading whitespace inside the first entity stays.
    assert message_length(parse_html("  <b>  x</b>  ")) == 3
    assert check_message_text("\r" * 10 + "x" * 4096, None) is None


def test_raw_text_over_32_kib_is_refused_before_parsing() -> None:
    text = "<b></b>" * 4681 + "x"  # 32,768 bytes: the most the Bot API takes
    assert len(text) == 32768 and check_message_text(text, "HTML") is None
    assert check_message_text(text + "x", "HTML") == ("raw_too_long", 32769, None)


def test_empty_after_parsing() -> None:
    for mode, text in [
        ("HTML", "<b></b>"),
        ("HTML", "<i> \n</i>"),
        ("MarkdownV2", "**"),
        ("Markdown", "``"),
        ("HTML", "&#x200B;"),
        (None, "\u3000\u00a0\u2800"),
    ]:
        assert check_message_text(text, mode) == ("empty", 0, None), (mode, text)
    assert check_message_text("<b></b>", "HTML", allow_empty=True) is None
    assert not is_blank("\u0085") and not is_blank(".")  # Telegram shows these
    assert is_blank("\u200b\ufeff\u200d \U000e0041")


def test_huge_numbers_are_refused_not_crashed_on() -> None:
    digits = "1" * 5000  # int() refuses to read this many digits
    problem = check_message_text(f'<tg-emoji emoji-id="{digits}">x</tg-emoji>', "HTML")
    assert problem is not None and problem.error is not None
    assert problem.error.message == "Invalid custom emoji identifier specified"
    assert check_message_text(f'<tg-time unix="{digits}">x</tg-time>', "HTML") is None
    problem = check_message_text(f"![x](tg://emoji?id={digits})", "MarkdownV2")
    assert problem is not None and problem.error is not None
    assert problem.error.message == "Invalid tg://emoji or tg://time URL specified"
    assert check_message_text(f"[x](tg://user?id={digits})", "MarkdownV2") is None
    assert parse_html("&#" + digits).text == "&#" + digits


def test_plain_text_is_not_parsed() -> None:
    assert check_message_text("<b>unclosed * _ [ .", None) is None
    with pytest.raises(ValueError, match="parse mode"):
        formatting.parse("x", "BBCode")


# -- properties --------------------------------------------------------------------------

_MDV2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def _escape_markdown_v2(text: str) -> str:
    return _MDV2_SPECIAL.sub(r"\\\1", text)


@given(st.text())
def test_escaped_markdown_v2_parses_back(text: str) -> None:
    parsed = parse_markdown_v2(_escape_markdown_v2(text))
    assert parsed.text == text and parsed.entities == ()


@given(st.text())
def test_escaped_html_parses_back(text: str) -> None:
    parsed = parse_html(html.escape(text, quote=False))
    assert parsed.text == text and parsed.entities == ()


@given(st.text(), st.sampled_from(["b", "i", "code", "tg-spoiler"]))
def test_escaped_html_in_a_tag_is_one_entity(text: str, tag: str) -> None:
    parsed = parse_html(f"<{tag}>{html.escape(text)}</{tag}>")
    assert parsed.text == text
    assert len(parsed.entities) == (1 if text else 0)


@given(st.text(min_size=1), st.integers(1, 8))
@example("\xa0", 1)  # blank, though above " ": the fast path once took it for text
def test_plain_fast_path_agrees_with_the_general_rules(text: str, limit: int) -> None:
    expected = None
    if is_blank(text):
        expected = ("empty", 0, None)
    elif message_length(text) > limit:
        expected = ("too_long", message_length(text), None)
    assert check_message_text(text, None, limit=limit) == expected


@given(st.text(alphabet=st.sampled_from("ab _*`[]()\\\n\r~|>#.!<&;/=\"'x#0"), max_size=40))
def test_parsers_never_fail_otherwise(text: str) -> None:
    # Any text either parses or raises EntityParseError with a position inside the text.
    for parse in (parse_html, parse_markdown_v2, parse_markdown):
        try:
            parsed = parse(text)
        except EntityParseError as exc:
            assert 0 <= exc.offset <= len(text) and exc.message
        else:
            assert len(parsed.text) <= len(text)


# -- the gateway refuses at Send what Telegram would refuse ------------------------------


def _violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


@pytest.mark.parametrize(
    ("text", "mode", "description"),
    [
        (
            "Version 1.2 released!",
            pb.PARSE_MODE_MARKDOWN_V2,
            "can't parse MarkdownV2 entities: Character '.' is reserved and must be escaped "
            "with the preceding '\\' (character offset 9)",
        ),
        (
            "🏟 <b>bold <i>x</b></i>",
            pb.PARSE_MODE_HTML,
            'can\'t parse HTML entities: Unmatched end tag at byte offset 17, expected "</i>", '
            'found "</b>" (character offset 14)',
        ),
        (
            "snake_case",
            pb.PARSE_MODE_MARKDOWN,
            "can't parse Markdown entities: Can't find end of the entity starting at byte "
            "offset 5 (character offset 5)",
        ),
        (
            "<b>" + "a" * 4105 + "</b>" + "<u></u>" * 28,
            pb.PARSE_MODE_HTML,
            "text is 4,105 characters after HTML parsing (4,308 raw); Telegram allows 4096",
        ),
        (
            "<b> </b>",
            pb.PARSE_MODE_HTML,
            'text is empty after HTML parsing: Telegram says "text must be non-empty"',
        ),
    ],
)
async def test_send_refuses_markup_telegram_refuses(
    gateway: tuple[object, Stub], text: str, mode: pb.ParseMode.ValueType, description: str
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(pb.SendRequest(chat_id="1", text=text, parse_mode=mode))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(info.value) == {"text": description}
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 0 and stats.waiting == 0


async def test_send_batch_names_the_message(gateway: tuple[object, Stub]) -> None:
    _, stub = gateway
    md = pb.PARSE_MODE_MARKDOWN_V2
    batch = pb.SendBatchRequest(
        messages=[
            pb.SendRequest(chat_id="1", text=r"Version 1\.2", parse_mode=md),
            pb.SendRequest(chat_id="2", text="Version 1.2", parse_mode=md),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SendBatch(batch)
    assert list(_violations(info.value)) == ["messages[1].text"]
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 0


async def test_long_markup_with_4000_visible_characters_is_delivered(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    text = "<b>" + "a" * 1000 + "</b>" + "<i>" + "b" * 3000 + "</i>" + "<u></u>" * 28
    assert len(text) == 4210
    reply = await stub.Send(pb.SendRequest(chat_id="5", text=text, parse_mode=pb.PARSE_MODE_HTML))
    await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
    assert [m.text for m in simulator.messages] == [text]
