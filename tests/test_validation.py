"""Request validation: every rule with its exact field path, plus property tests."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notigate import formatting
from notigate.pagination import PageToken, encode_page_token
from notigate.parse_modes import PARSE_MODE_NAMES
from notigate.validation import (
    MAX_TEXT_CHARS,
    validate_batch,
    validate_job_id,
    validate_list,
    validate_send,
)
from notigate_client import pb


def fields(violations: Sequence[Any]) -> list[str]:
    return [v.field for v in violations]


def ok(**kw: Any) -> pb.SendRequest:
    base: dict[str, Any] = {"chat_id": "123456789", "text": "hello"}
    base.update(kw)
    return pb.SendRequest(**base)


def button(**kw: Any) -> pb.InlineKeyboardButton:
    return pb.InlineKeyboardButton(**{"text": "b", **kw})


def markup(*rows: list[pb.InlineKeyboardButton]) -> pb.InlineKeyboardMarkup:
    return pb.InlineKeyboardMarkup(rows=[pb.InlineKeyboardRow(buttons=r) for r in rows])


def test_minimal_request_is_valid() -> None:
    assert validate_send(ok()) == []


@pytest.mark.parametrize(
    "chat_id",
    [
        "1",
        "-1001234567890",
        "9223372036854775807",
        "-9223372036854775808",
        "@abcde",
        "@" + "a" * 32,
        "@A_1_b",
    ],
)
def test_valid_chat_ids(chat_id: str) -> None:
    assert validate_send(ok(chat_id=chat_id)) == []


@pytest.mark.parametrize(
    "chat_id",
    [
        "",
        "0",
        "-0",
        "000",
        "--1",
        "1.5",
        " 1",
        "1\n",
        "12a",
        "\u0661\u0662\u0663",
        "9" * 21,
        "-" + "9" * 21,
        "9223372036854775808",
        "@abcd",
        "@" + "a" * 33,
        "@1abcde",
        "@_abcde",
        "@abc-de",
        "abcde",
        "@",
        "@abcdé",
    ],
)
def test_invalid_chat_ids(chat_id: str) -> None:
    vs = validate_send(ok(chat_id=chat_id))
    assert fields(vs) == ["chat_id"]
    assert vs[0].description


def test_text_rules() -> None:
    assert fields(validate_send(ok(text=""))) == ["text"]
    assert fields(validate_send(ok(text=" \n\t\u3000"))) == ["text"]
    assert validate_send(ok(text="x" * MAX_TEXT_CHARS)) == []
    vs = validate_send(ok(text="x" * (MAX_TEXT_CHARS + 1)))
    assert fields(vs) == ["text"]
    assert vs[0].description == "text is 4,097 characters; Telegram allows 4096"
    # Telegram counts code points (TDLib's utf8_length), so an emoji counts once although it
    # is two UTF-16 units: 4096 fit, 4097 do not.
    assert validate_send(ok(text="\U0001f600" * 4096)) == []
    vs = validate_send(ok(text="\U0001f600" * 4097))
    assert fields(vs) == ["text"] and "4,097 characters" in vs[0].description


def test_text_is_checked_in_its_parse_mode() -> None:
    md, html = pb.PARSE_MODE_MARKDOWN_V2, pb.PARSE_MODE_HTML
    assert validate_send(ok(text=r"Version 1\.2 released\!", parse_mode=md)) == []
    vs = validate_send(ok(text="Version 1.2 released!", parse_mode=md), prefix="messages[3].")
    assert fields(vs) == ["messages[3].text"]
    assert vs[0].description == (
        "can't parse MarkdownV2 entities: Character '.' is reserved and must be escaped with "
        "the preceding '\\' (character offset 9)"
    )
    # Without a parse mode the same text is plain, and so it is with an unknown one.
    assert validate_send(ok(text="Version 1.2 released!")) == []
    assert fields(validate_send(ok(text="<b>x", parse_mode=17))) == ["parse_mode"]
    # 4,000 visible characters in 4,210 raw are accepted; the limit names what it counted.
    text = "<b>" + "a" * 1000 + "</b><i>" + "b" * 3000 + "</i>" + "<u></u>" * 28
    assert len(text) == 4210 and validate_send(ok(text=text, parse_mode=html)) == []
    vs = validate_send(ok(text="<b>" + "a" * 4105 + "</b>", parse_mode=html))
    assert [v.description for v in vs] == [
        "text is 4,105 characters after HTML parsing (4,112 raw); Telegram allows 4096"
    ]
    vs = validate_send(ok(text="<i></i>" * 5000 + "x", parse_mode=html))
    assert [v.description for v in vs] == [
        "text is 35,001 bytes in UTF-8; Telegram accepts at most 32,768 before parsing"
    ]
    vs = validate_send(ok(text="<b>\u200b</b>", parse_mode=html))
    assert [v.description for v in vs] == [
        'text is empty after HTML parsing: Telegram says "text must be non-empty"'
    ]
    # Telegram's notion of empty, not Python's isspace: NEL shows, NBSP and U+2800 do not.
    assert validate_send(ok(text="\u0085")) == []
    assert fields(validate_send(ok(text="\u00a0\u2800"))) == ["text"]


def test_lone_surrogate_rejected() -> None:
    # protobuf itself refuses to store a lone surrogate in a string field, so the check can
    # only be reached through the text rule directly.
    from notigate.validation import _validate_text

    assert fields(_validate_text("ab\ud800", "")) == ["text"]


def test_enum_and_ranges() -> None:
    assert validate_send(ok(parse_mode=pb.PARSE_MODE_MARKDOWN_V2)) == []
    assert fields(validate_send(ok(parse_mode=17))) == ["parse_mode"]
    assert validate_send(ok(priority=10)) == []
    assert fields(validate_send(ok(priority=11))) == ["priority"]
    assert fields(validate_send(ok(priority=-1))) == ["priority"]
    assert fields(validate_send(ok(message_thread_id=-1))) == ["message_thread_id"]
    assert validate_send(ok(message_thread_id=2**63 - 1)) == []
    assert validate_send(ok(max_attempts=100)) == []
    assert fields(validate_send(ok(max_attempts=101))) == ["max_attempts"]
    assert fields(validate_send(ok(max_attempts=-1))) == ["max_attempts"]


def _with_delay(seconds: int, nanos: int) -> pb.SendRequest:
    req = ok()
    req.delay.seconds = seconds
    req.delay.nanos = nanos
    return req


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, []),
        (0, 999_999_999, []),
        (365 * 86400, 0, []),
        (365 * 86400, 1, ["delay"]),
        (365 * 86400 + 1, 0, ["delay"]),
        (-1, 0, ["delay"]),
        (0, -1, ["delay"]),
        (-1, -5, ["delay"]),
        (1, -1, ["delay"]),
        (-1, 1, ["delay"]),
        (0, 1_000_000_000, ["delay.nanos"]),
        (0, -1_000_000_000, ["delay.nanos"]),
        (315_576_000_001, 0, ["delay.seconds"]),
        (-(2**63), 0, ["delay.seconds"]),
    ],
)
def test_delay(seconds: int, nanos: int, expected: list[str]) -> None:
    assert fields(validate_send(_with_delay(seconds, nanos))) == expected


def test_unset_delay_is_fine() -> None:
    assert not ok().HasField("delay")
    assert validate_send(ok()) == []


def test_idempotency_key() -> None:
    assert validate_send(ok(idempotency_key="k" * 256)) == []
    assert validate_send(ok(idempotency_key="order 42 / ünïcode")) == []
    assert fields(validate_send(ok(idempotency_key="k" * 257))) == ["idempotency_key"]
    for bad in ("a\nb", "a\x00b", "a\u200bb", "a\x7fb"):
        assert fields(validate_send(ok(idempotency_key=bad))) == ["idempotency_key"]


def test_reply_markup_valid() -> None:
    m = markup(
        [button(url="https://example.com/x?y=1"), button(url="tg://user?id=1")],
        [button(callback_data="x" * 64), button(switch_inline_query="")],
        [button(switch_inline_query_current_chat="q"), button(copy_text="copy me")],
    )
    assert validate_send(ok(reply_markup=m)) == []
    assert validate_send(ok(reply_markup=pb.InlineKeyboardMarkup())) == []


def test_reply_markup_paths() -> None:
    m = markup(
        [button(url="https://ok.example")],
        [button(url="ftp://x"), button(text="", callback_data="a"), button()],
        [],
        [button(callback_data="é" * 33), button(callback_data=""), button(copy_text="")],
        [button(url="http://"), button(url="tg://"), button(url="https://a b.example")],
    )
    assert fields(validate_send(ok(reply_markup=m))) == [
        "reply_markup.rows[1].buttons[0].url",
        "reply_markup.rows[1].buttons[1].text",
        "reply_markup.rows[1].buttons[2]",
        "reply_markup.rows[2].buttons",
        "reply_markup.rows[3].buttons[0].callback_data",
        "reply_markup.rows[3].buttons[1].callback_data",
        "reply_markup.rows[3].buttons[2].copy_text",
        "reply_markup.rows[4].buttons[0].url",
        "reply_markup.rows[4].buttons[1].url",
        "reply_markup.rows[4].buttons[2].url",
    ]


def test_reply_markup_sizes() -> None:
    row = [button(callback_data=str(i)) for i in range(8)]
    assert validate_send(ok(reply_markup=markup(*[row] * 12, row[:4]))) == []  # 100 buttons
    assert fields(validate_send(ok(reply_markup=markup(*[row] * 12, row[:5])))) == [
        "reply_markup.rows"
    ]
    nine = [*row, button(callback_data="9")]
    assert fields(validate_send(ok(reply_markup=markup(nine)))) == ["reply_markup.rows[0].buttons"]


def test_link_preview() -> None:
    lp = pb.LinkPreviewOptions
    assert validate_send(ok(link_preview=lp(url="https://example.com"))) == []
    assert validate_send(ok(link_preview=lp(is_disabled=True))) == []
    assert fields(validate_send(ok(link_preview=lp(url="tg://resolve?domain=x")))) == [
        "link_preview.url"
    ]
    both = lp(prefer_small_media=True, prefer_large_media=True)
    assert fields(validate_send(ok(link_preview=both))) == ["link_preview.prefer_large_media"]


def test_prefix_applies_to_every_path() -> None:
    req = ok(chat_id="", text="", priority=99, reply_markup=markup([button()]))
    assert fields(validate_send(req, prefix="messages[3].")) == [
        "messages[3].chat_id",
        "messages[3].text",
        "messages[3].priority",
        "messages[3].reply_markup.rows[0].buttons[0]",
    ]


def test_batch() -> None:
    assert fields(validate_batch(pb.SendBatchRequest())) == ["messages"]
    good = pb.SendBatchRequest(messages=[ok(), ok(idempotency_key="a"), ok()])
    assert validate_batch(good) == []
    assert fields(validate_batch(good, max_batch=2)) == ["messages"]
    bad = pb.SendBatchRequest(
        messages=[ok(idempotency_key="k"), ok(text=""), ok(idempotency_key="k"), ok()]
    )
    vs = validate_batch(bad)
    assert fields(vs) == ["messages[1].text", "messages[2].idempotency_key"]
    assert "messages[0]" in vs[1].description
    assert validate_batch(pb.SendBatchRequest(messages=[ok()] * 1000)) == []
    assert fields(validate_batch(pb.SendBatchRequest(messages=[ok()] * 1001))) == ["messages"]


@pytest.mark.parametrize("job_id", ["1", "42", "9" * 20])
def test_valid_job_ids(job_id: str) -> None:
    assert validate_job_id(job_id) == []


@pytest.mark.parametrize("job_id", ["", "0", "01", "abc", "-1", "1 ", "9" * 21, "\u0661"])
def test_invalid_job_ids(job_id: str) -> None:
    assert fields(validate_job_id(job_id)) == ["job_id"]
    assert fields(validate_job_id(job_id, field="jobs[2]")) == ["jobs[2]"]


def test_every_parse_mode_has_its_bot_api_name() -> None:
    # A mode without a name would be refused as unknown, and could not be sent.
    assert set(PARSE_MODE_NAMES) == set(pb.ParseMode.values()) - {pb.PARSE_MODE_UNSPECIFIED}


def test_validate_list() -> None:
    assert validate_list(pb.ListJobsRequest()) == []
    assert validate_list(pb.ListJobsRequest(state=pb.JOB_STATE_FAILED, page_size=1000)) == []
    assert fields(validate_list(pb.ListJobsRequest(state=pb.JobState.ValueType(42)))) == ["state"]
    assert fields(validate_list(pb.ListJobsRequest(page_size=1001))) == ["page_size"]
    assert fields(validate_list(pb.ListJobsRequest(page_size=-1))) == ["page_size"]
    assert fields(validate_list(pb.ListJobsRequest(page_token="nope"))) == ["page_token"]
    token = encode_page_token(PageToken(pb.JOB_STATE_WAITING, 100.0, "7"))
    assert validate_list(pb.ListJobsRequest(state=pb.JOB_STATE_WAITING, page_token=token)) == []
    other = pb.ListJobsRequest(state=pb.JOB_STATE_FAILED, page_token=token)
    assert fields(validate_list(other)) == ["page_token"]
    # Listing all states walks them in turn, so any concrete state may continue it...
    assert validate_list(pb.ListJobsRequest(page_token=token)) == []
    # ...but a token naming no state cannot.
    unspecified = encode_page_token(PageToken(pb.JOB_STATE_UNSPECIFIED))
    assert fields(validate_list(pb.ListJobsRequest(page_token=unspecified))) == ["page_token"]


# --- properties -------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Text that sometimes looks valid: hypothesis's unicode text never has lone surrogates,
# which protobuf would refuse anyway.
TEXT = st.one_of(
    st.text(max_size=50),
    st.text(max_size=5000),
    st.just("\U0001f600" * 2049),
    st.sampled_from(["", " ", "hi", "123", "-100123", "@channel_1", "https://x.y", "tg://x"]),
)


SHORT_TEXT = st.text(min_size=1, max_size=20).filter(lambda t: not t.isspace())


@st.composite
def buttons(draw: st.DrawFn, wild: bool) -> pb.InlineKeyboardButton:
    b = pb.InlineKeyboardButton(text=draw(TEXT if wild else SHORT_TEXT))
    actions = ["url", "callback_data", "switch_inline_query", "copy_text"]
    action = draw(st.sampled_from([None, *actions] if wild else actions))
    if action is None:
        return b
    if wild:
        setattr(b, action, draw(TEXT))
    elif action == "url":
        b.url = draw(st.sampled_from(["https://example.com/a", "tg://user?id=1"]))
    elif action == "callback_data":
        b.callback_data = draw(st.text(string.ascii_letters, min_size=1, max_size=64))
    else:
        setattr(b, action, draw(SHORT_TEXT))
    return b


@st.composite
def send_requests(draw: st.DrawFn) -> pb.SendRequest:
    """Arbitrary requests; about half of them are valid except in at most one field."""
    names = [
        "chat_id",
        "text",
        "parse_mode",
        "priority",
        "thread",
        "key",
        "attempts",
        "delay",
        "markup",
        "preview",
    ]
    if draw(st.booleans()):
        wild_fields = set(names)
    else:
        wild_fields = set(draw(st.lists(st.sampled_from(names), max_size=1)))

    def pick(name: str, wild: st.SearchStrategy[Any], tame: st.SearchStrategy[Any]) -> Any:
        return draw(wild if name in wild_fields else tame)

    req = pb.SendRequest(
        chat_id=pick(
            "chat_id",
            st.one_of(TEXT, st.from_regex(r"-?[0-9]{1,21}", fullmatch=True)),
            st.sampled_from(["1", "-1001234567890", "@channel_1"]),
        ),
        text=pick("text", TEXT, st.text(min_size=1, max_size=300).filter(str.strip)),
        parse_mode=pick("parse_mode", INT32, st.sampled_from(pb.ParseMode.values())),
        priority=pick("priority", INT32, st.integers(0, 10)),
        message_thread_id=pick("thread", INT64, st.integers(0, 2**63 - 1)),
        idempotency_key=pick("key", TEXT, st.text(string.printable.strip(), max_size=256)),
        max_attempts=pick("attempts", INT32, st.integers(0, 100)),
        disable_notification=draw(st.booleans()),
    )
    if draw(st.booleans()):
        req.delay.seconds = pick("delay", INT64, st.integers(0, 365 * 86400 - 1))
        req.delay.nanos = pick("delay", INT32, st.integers(0, 10**9 - 1))
    if draw(st.booleans()):
        wild = "markup" in wild_fields
        row = st.lists(buttons(wild), min_size=0 if wild else 1, max_size=10 if wild else 8)
        rows = draw(st.lists(row, max_size=15 if wild else 12))
        req.reply_markup.CopyFrom(
            pb.InlineKeyboardMarkup(rows=[pb.InlineKeyboardRow(buttons=r) for r in rows])
        )
    if draw(st.booleans()):
        req.link_preview.url = pick("preview", TEXT, st.just("https://example.com"))
        req.link_preview.prefer_small_media = draw(st.booleans())
        req.link_preview.prefer_large_media = pick("preview", st.booleans(), st.just(False))
    return req


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(send_requests())
def test_validate_send_never_raises_and_valid_means_invariants(req: pb.SendRequest) -> None:
    violations = validate_send(req)
    assert all(v.field and v.description for v in violations)
    # Each violation is attributable to a field of the request.
    roots = {f.name for f in pb.SendRequest.DESCRIPTOR.fields}
    assert all(v.field.split(".")[0].split("[")[0] in roots for v in violations)
    if violations:
        return
    assert req.chat_id and (req.chat_id.startswith("@") or int(req.chat_id) != 0)
    mode = {1: "HTML", 2: "MarkdownV2", 3: "Markdown"}.get(req.parse_mode)
    parsed = formatting.parse(req.text, mode)  # raises if the markup were malformed
    assert not formatting.is_blank(parsed.text)
    assert formatting.message_length(parsed) <= MAX_TEXT_CHARS
    assert req.parse_mode in pb.ParseMode.values()
    assert 0 <= req.priority <= 10
    assert 0 <= req.max_attempts <= 100
    assert req.message_thread_id >= 0
    assert len(req.idempotency_key) <= 256 and req.idempotency_key.isprintable()
    if req.HasField("delay"):
        assert req.delay.seconds >= 0 and 0 <= req.delay.nanos < 10**9
        assert req.delay.ToTimedelta().total_seconds() <= 365 * 86400
    total = 0
    for row in req.reply_markup.rows:
        assert 1 <= len(row.buttons) <= 8
        total += len(row.buttons)
        for b in row.buttons:
            assert b.text and b.WhichOneof("action") is not None
            if b.WhichOneof("action") == "callback_data":
                assert 1 <= len(b.callback_data.encode()) <= 64
    assert total <= 100
    assert not (req.link_preview.prefer_small_media and req.link_preview.prefer_large_media)


@settings(max_examples=100, deadline=None)
@given(st.lists(send_requests(), max_size=5), st.integers(1, 5))
def test_validate_batch_never_raises(msgs: list[pb.SendRequest], max_batch: int) -> None:
    violations = validate_batch(pb.SendBatchRequest(messages=msgs), max_batch=max_batch)
    assert all(v.field.startswith("messages") for v in violations)


@given(st.text(max_size=30))
def test_job_id_validator_never_raises(job_id: str) -> None:
    if not validate_job_id(job_id):
        assert job_id.isascii() and job_id.isdigit() and int(job_id) > 0
