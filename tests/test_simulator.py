"""The Bot API simulator over real HTTP: envelopes, limits, faults, encodings, control."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter

from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate.simulator.limits import SlidingWindow
from notigate.simulator.validate import check_html
from tests.conftest import TOKEN

OTHER_TOKEN = "654321:OTHER-TOKEN"


@pytest.fixture(scope="module")
async def _sim_server() -> AsyncIterator[BotApiSimulator]:
    sim = BotApiSimulator(tokens=[TOKEN, OTHER_TOKEN], config=SimulatorConfig())
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@pytest.fixture
async def _sim_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession,
    sim: BotApiSimulator,
    method: str,
    token: str = TOKEN,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    """POST form-urlencoded the way python-telegram-bot does (non-strings JSON-encoded)."""
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    async with http.post(f"{sim.base_url}/bot{token}/{method}", data=form) as resp:
        return resp.status, await resp.json()


# -- envelopes -------------------------------------------------------------------------


async def test_get_me_returns_the_bot_user(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    status, body = await _call(_sim_http, _sim, "getMe")
    assert status == 200
    assert body["ok"] is True
    user = body["result"]
    assert user["id"] == 123456
    assert user["is_bot"] is True
    assert user["first_name"] == "notigate sandbox"
    assert user["username"] == "notigate_sandbox_bot"
    assert "can_join_groups" in user


async def test_send_message_returns_a_message(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    status, body = await _call(_sim_http, _sim, "sendMessage", chat_id="42", text="hello")
    assert status == 200
    message = body["result"]
    assert message["message_id"] == 1 or message["message_id"] > 0
    assert message["text"] == "hello"
    assert message["chat"]["id"] == 42
    assert message["chat"]["type"] == "private"
    assert message["from"]["is_bot"] is True
    assert isinstance(message["date"], int)
    [sent] = _sim.messages
    assert (sent.chat_id, sent.text, sent.message_id) == ("42", "hello", message["message_id"])
    assert [(r.method, r.chat_id, r.status) for r in _sim.requests] == [("sendMessage", "42", 200)]


async def test_message_ids_increase_per_chat(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(enforce_limits=False)
    ids = [
        (await _call(_sim_http, _sim, "sendMessage", chat_id="777", text="x"))[1]["result"][
            "message_id"
        ]
        for _ in range(3)
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("chat_id", "chat_type"),
    [("5", "private"), ("-1001234567890", "supergroup"), ("-42", "group"), ("@news", "channel")],
)
async def test_chat_types(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession, chat_id: str, chat_type: str
) -> None:
    status, body = await _call(_sim_http, _sim, "sendMessage", chat_id=chat_id, text="x")
    assert status == 200
    chat = body["result"]["chat"]
    assert chat["type"] == chat_type
    assert isinstance(chat["id"], int)
    if chat_type == "channel":
        assert chat["id"] < 0
        assert chat["username"] == "news"
        _, again = await _call(_sim_http, _sim, "sendMessage", chat_id="@news", text="y")
        assert again["result"]["chat"]["id"] == chat["id"]


async def test_unknown_and_revoked_tokens_get_401(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    status, body = await _call(_sim_http, _sim, "getMe", token="999:NOPE")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    _sim.revoke_token(TOKEN)
    status, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="x")
    assert status == 401
    _sim.accept_token(TOKEN)
    status, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="x")
    assert status == 200
    assert _sim.messages[0].chat_id == "1"
    assert _sim.count_status(401) == 2


async def test_unknown_method_is_404_and_names_ignore_case(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    status, body = await _call(_sim_http, _sim, "sendCarrierPigeon", chat_id="1")
    assert (status, body["description"]) == (404, "Not Found")
    status, body = await _call(_sim_http, _sim, "SENDMESSAGE", chat_id="1", text="x")
    assert status == 200
    assert _sim.requests[-1].method == "sendMessage"
    for method in ("close", "logOut"):
        status, body = await _call(_sim_http, _sim, method)
        assert (status, body) == (200, {"ok": True, "result": True})


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"text": "x"}, "Bad Request: chat_id is empty"),
        ({"chat_id": "", "text": "x"}, "Bad Request: chat_id is empty"),
        ({"chat_id": "1"}, "Bad Request: message text is empty"),
        ({"chat_id": "1", "text": ""}, "Bad Request: message text is empty"),
        ({"chat_id": "1", "text": "a" * 4097}, "Bad Request: message is too long"),
        ({"chat_id": "not a chat", "text": "x"}, "Bad Request: chat not found"),
        ({"chat_id": "0", "text": "x"}, "Bad Request: chat not found"),
        (
            {"chat_id": "1", "text": "x", "parse_mode": "BBCode"},
            "Bad Request: unsupported parse_mode",
        ),
    ],
)
async def test_send_message_validation(
    _sim: BotApiSimulator,
    _sim_http: aiohttp.ClientSession,
    params: dict[str, Any],
    description: str,
) -> None:
    status, body = await _call(_sim_http, _sim, "sendMessage", **params)
    assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description})
    assert _sim.messages == []
    assert _sim.requests[-1].status == 400


async def test_html_is_checked_for_balance(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(enforce_limits=False)
    status, body = await _call(
        _sim_http, _sim, "sendMessage", chat_id="1", text="<b>bold <i>x</b></i>", parse_mode="HTML"
    )
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities: ")
    status, _ = await _call(
        _sim_http, _sim, "sendMessage", chat_id="1", text="<b>ok</b> &lt;3", parse_mode="html"
    )
    assert status == 200
    # 4096 visible characters are fine even though the markup makes the text longer.
    status, _ = await _call(
        _sim_http, _sim, "sendMessage", chat_id="1", text=f"<b>{'a' * 4096}</b>", parse_mode="HTML"
    )
    assert status == 200


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("plain", True),
        ('<a href="https://e.com">x</a> <code>y</code>', True),
        ("<b>open", False),
        ("close</b>", False),
        ("<marquee>x</marquee>", False),
        ("a < b", False),
    ],
)
def test_check_html(text: str, ok: bool) -> None:
    assert (check_html(text) is None) is ok


RESERVED_DOT = "Character '.' is reserved and must be escaped with the preceding '\\'"


@pytest.mark.parametrize(
    ("text", "parse_mode", "description"),
    [
        # Telegram refuses what a regex check let through: the '.' must be escaped.
        (
            "Version 1.2 released!",
            "MarkdownV2",
            f"Bad Request: can't parse entities: {RESERVED_DOT}",
        ),
        (
            "*bold",
            "MarkdownV2",
            "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0",
        ),
        (
            "snake_case",
            "Markdown",
            "Bad Request: can't parse entities: Can't find end of the "
            "entity starting at byte offset 5",
        ),
        (
            "a < b",
            "HTML",
            'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 2',
        ),
        ("<b></b>", "HTML", "Bad Request: text must be non-empty"),
        (" \n ", None, "Bad Request: text must be non-empty"),
        ("<b>" + "a" * 4097 + "</b>", "HTML", "Bad Request: message is too long"),
        ("\U0001f600" * 4097, None, "Bad Request: message is too long"),
        ("<i></i>" * 4682, "HTML", "Bad Request: text is too long"),  # over 32 KiB raw
    ],
)
async def test_send_message_text_like_telegram(
    _sim: BotApiSimulator,
    _sim_http: aiohttp.ClientSession,
    text: str,
    parse_mode: str | None,
    description: str,
) -> None:
    params = {"chat_id": "1", "text": text} | ({"parse_mode": parse_mode} if parse_mode else {})
    status, body = await _call(_sim_http, _sim, "sendMessage", **params)
    assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description})
    assert _sim.messages == []


@pytest.mark.parametrize(
    ("text", "parse_mode"),
    [
        (r"Version 1\.2 released\!", "MarkdownV2"),
        ("`1.2` *bold* ||spoiler||", "MarkdownV2"),
        ("Version 1.2 released!", "Markdown"),
        ("AT&T &nbsp; <b>x</b>", "HTML"),
        ("\U0001f600" * 4096, None),  # Telegram counts code points, not UTF-16 units
        ("<b>" + "a" * 4000 + "</b>" + "<u></u>" * 30, "HTML"),
    ],
)
async def test_send_message_accepts_what_telegram_accepts(
    _sim: BotApiSimulator,
    _sim_http: aiohttp.ClientSession,
    text: str,
    parse_mode: str | None,
) -> None:
    _sim.configure(enforce_limits=False)
    params = {"chat_id": "1", "text": text} | ({"parse_mode": parse_mode} if parse_mode else {})
    status, body = await _call(_sim_http, _sim, "sendMessage", **params)
    assert status == 200, body


# -- limits ----------------------------------------------------------------------------


def test_sliding_window_is_exact() -> None:
    window = SlidingWindow()
    window.add(10.0)
    assert window.wait_s(10.25, limit=1, window_s=1.0) == pytest.approx(0.75)
    # An entry leaves the window once it is window_s old (t > now - window counts).
    assert window.wait_s(11.0, limit=1, window_s=1.0) == 0.0
    for t in (20.0, 20.5, 21.0):
        window.add(t)
    assert window.wait_s(21.2, limit=3, window_s=2.0) == pytest.approx(0.8)
    assert window.wait_s(21.2, limit=2, window_s=2.0) == pytest.approx(1.3)


async def test_private_chat_allows_one_per_second(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    first, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="1001", text="a")
    status, body = await _call(_sim_http, _sim, "sendMessage", chat_id="1001", text="b")
    assert first == 200
    assert (status, body) == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
    )
    assert [m.text for m in _sim.messages] == ["a"]
    assert _sim.requests[-1].retry_after == 1
    assert _sim.count_status(429) == 1


async def test_group_allows_twenty_per_minute(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(global_rate=1000)
    statuses = [
        (await _call(_sim_http, _sim, "sendMessage", chat_id="-1001", text=str(i)))[0]
        for i in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    retry_after = _sim.requests[-1].retry_after
    assert retry_after is not None and 1 <= retry_after <= 60
    assert len(_sim.messages) == 20


async def test_global_limit_per_token_and_paid_broadcast(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    # A long window keeps the test independent of machine speed.
    _sim.configure(global_rate=3, global_window_s=600.0, paid_broadcast_rate=5)
    statuses = [
        (await _call(_sim_http, _sim, "sendMessage", chat_id=str(100 + i), text="x"))[0]
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Another token has its own window.
    status, _ = await _call(_sim_http, _sim, "sendMessage", OTHER_TOKEN, chat_id="200", text="x")
    assert status == 200
    paid = [
        (
            await _call(
                _sim_http,
                _sim,
                "sendMessage",
                chat_id=str(300 + i),
                text="x",
                allow_paid_broadcast=True,
            )
        )[0]
        for i in range(3)
    ]
    assert paid == [200, 200, 429]


async def test_every_token_has_its_own_full_bot_wide_limit(
    _sim_http: aiohttp.ClientSession,
) -> None:
    # One gateway serving many bots relies on this: a bot at its limit takes nothing
    # from the others, and each is still held to its own limit, chats included.
    tokens = [f"{700_000 + k}:BOT-{k}" for k in range(4)]
    sim = BotApiSimulator(
        tokens=tokens, config=SimulatorConfig(global_rate=3, global_window_s=600.0)
    )
    await sim.start(host="127.0.0.1", port=0)
    try:
        statuses: dict[str, list[int]] = {t: [] for t in tokens}
        # Interleaved, to the same chats for every token.
        for i in range(4):
            for t in tokens:
                status, _ = await _call(
                    _sim_http, sim, "sendMessage", t, chat_id=str(500 + i), text="x"
                )
                statuses[t].append(status)
        assert statuses == {t: [200, 200, 200, 429] for t in tokens}
        # The per-chat window is the bot's too: another bot's send to chat 500 did not
        # count against this one's.
        sim.configure(global_rate=1000, private_rate=1, private_window_s=600.0)
        sim.reset()
        for t in tokens:
            status, _ = await _call(_sim_http, sim, "sendMessage", t, chat_id="900", text="x")
            assert status == 200
        status, _ = await _call(_sim_http, sim, "sendMessage", tokens[0], chat_id="900", text="y")
        assert status == 429
    finally:
        await sim.stop()


async def test_limits_can_be_disabled(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(enforce_limits=False)
    statuses = [
        (await _call(_sim_http, _sim, "sendMessage", chat_id="9", text="x"))[0] for _ in range(5)
    ]
    assert statuses == [200] * 5


# -- scripted faults -------------------------------------------------------------------


async def test_error_rate_one_answers_5xx(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(error_rate=1.0, seed=7)
    answers = [await _call(_sim_http, _sim, "sendMessage", chat_id="5", text="x") for _ in range(8)]
    for status, body in answers:
        assert status in (500, 502)
        assert body["error_code"] == status
        assert body["description"] == {500: "Internal Server Error", 502: "Bad Gateway"}[status]
    assert _sim.messages == []


async def test_error_rate_is_reproducible_with_a_seed(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    async def run() -> list[int]:
        _sim.reset()
        _sim.configure(error_rate=0.5, seed=42, enforce_limits=False)
        return [
            (await _call(_sim_http, _sim, "sendMessage", chat_id="5", text="x"))[0]
            for _ in range(20)
        ]

    first = await run()
    assert first == await run()
    assert 200 in first and set(first) - {200}


async def test_blocked_missing_and_migrated_chats(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.block_chat("11")
    _sim.block_chat("12", description="Forbidden: user is deactivated")
    _sim.configure(missing_chats=frozenset({"13"}))
    _sim.migrate_chat("-14", "-10014")
    answers = {
        chat: await _call(_sim_http, _sim, "sendMessage", chat_id=chat, text="x")
        for chat in ("11", "12", "13", "-14")
    }
    assert answers["11"] == (
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    assert answers["12"][1]["description"] == "Forbidden: user is deactivated"
    assert answers["13"] == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )
    status, body = answers["-14"]
    assert status == 400
    assert body["parameters"] == {"migrate_to_chat_id": -10014}
    assert _sim.messages == []
    status, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="-10014", text="x")
    assert status == 200


async def test_storm_answers_429_until_reset(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.rate_limit_storm(seconds=600.0, retry_after=7)
    for chat in ("1", "-2", "@chan"):
        status, body = await _call(_sim_http, _sim, "sendMessage", chat_id=chat, text="x")
        assert (status, body["parameters"]) == (429, {"retry_after": 7})
    _sim.reset()
    status, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="x")
    assert status == 200


async def test_latency_still_answers(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(latency_s=0.01, latency_jitter_s=0.01)
    status, _ = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="x")
    assert status == 200


# -- encodings -------------------------------------------------------------------------

_MARKUP = {"inline_keyboard": [[{"text": "open", "url": "https://example.com"}]]}


def _assert_decoded(sim: BotApiSimulator) -> None:
    [sent] = sim.messages
    assert sent.chat_id == "-1001"
    assert sent.text == "encoded"
    assert sent.params["reply_markup"] == _MARKUP
    assert sent.params["disable_notification"] is True
    assert sent.params["message_thread_id"] == 3


async def test_query_string_get(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    query = {
        "chat_id": "-1001",
        "text": "encoded",
        "reply_markup": json.dumps(_MARKUP),
        "disable_notification": "true",
        "message_thread_id": "3",
    }
    async with _sim_http.get(f"{_sim.base_url}/bot{TOKEN}/sendMessage", params=query) as resp:
        assert resp.status == 200
    _assert_decoded(_sim)


async def test_form_urlencoded(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    status, body = await _call(
        _sim_http,
        _sim,
        "sendMessage",
        chat_id="-1001",
        text="encoded",
        reply_markup=_MARKUP,
        disable_notification=True,
        message_thread_id=3,
    )
    assert status == 200
    assert body["result"]["reply_markup"] == _MARKUP
    assert body["result"]["message_thread_id"] == 3
    _assert_decoded(_sim)


async def test_json_body(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    payload = {
        "chat_id": -1001,
        "text": "encoded",
        "reply_markup": _MARKUP,
        "disable_notification": True,
        "message_thread_id": 3,
    }
    async with _sim_http.post(f"{_sim.base_url}/bot{TOKEN}/sendMessage", json=payload) as resp:
        assert resp.status == 200
    _assert_decoded(_sim)


async def test_multipart(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", "-1001")
    form.add_field("text", "encoded")
    form.add_field("reply_markup", json.dumps(_MARKUP))
    form.add_field("disable_notification", "true")
    form.add_field("message_thread_id", "3")
    async with _sim_http.post(f"{_sim.base_url}/bot{TOKEN}/sendMessage", data=form) as resp:
        assert resp.status == 200
    _assert_decoded(_sim)


@pytest.mark.parametrize(
    ("payload", "description"),
    [
        ({"chat_id": [1], "text": "x"}, "Bad Request: chat not found"),
        ({"chat_id": 5, "text": ["x"]}, "Bad Request: message text is empty"),
    ],
)
async def test_json_values_of_the_wrong_type(
    _sim: BotApiSimulator,
    _sim_http: aiohttp.ClientSession,
    payload: dict[str, Any],
    description: str,
) -> None:
    async with _sim_http.post(f"{_sim.base_url}/bot{TOKEN}/sendMessage", json=payload) as resp:
        assert (resp.status, (await resp.json())["description"]) == (400, description)


async def test_invalid_json_body(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    async with _sim_http.post(
        f"{_sim.base_url}/bot{TOKEN}/sendMessage",
        data=b"[1, 2",
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["ok"] is False


# -- python-telegram-bot unchanged -----------------------------------------------------


async def test_python_telegram_bot_works_unchanged(
    _sim: BotApiSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stock PTB 22.x warns when it builds a RetryAfter unless this opt-in is set.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    bot = telegram.Bot(TOKEN, base_url=f"{_sim.base_url}/bot")
    async with bot:
        assert bot.username == "notigate_sandbox_bot"
        keyboard = telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("go", callback_data="cb")]]
        )
        message = await bot.send_message(
            -100500,
            "<b>hi</b>",
            parse_mode="HTML",
            reply_markup=keyboard,
            link_preview_options=telegram.LinkPreviewOptions(is_disabled=True),
        )
        assert message.chat.type == "supergroup"
        assert message.reply_markup == keyboard
        _sim.block_chat("2")
        _sim.migrate_chat("-3", "-1003")
        with pytest.raises(Forbidden):
            await bot.send_message(2, "x")
        with pytest.raises(ChatMigrated) as migrated:
            await bot.send_message(-3, "x")
        assert migrated.value.new_chat_id == -1003
        with pytest.raises(BadRequest):
            await bot.send_message(4, "")
        await bot.send_message(5, "x")
        with pytest.raises(RetryAfter):
            await bot.send_message(5, "x")
        photo = await bot.send_photo(6, "https://example.com/p.jpg", caption="pic")
        assert photo.caption == "pic"
        document = await bot.send_document(7, b"file body", filename="notes.txt")
        assert document.document is not None
        assert document.document.file_name == "notes.txt"
    sent = _sim.messages[0]
    assert sent.params["parse_mode"] == "HTML"
    assert sent.params["link_preview_options"] == {"is_disabled": True}
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "go", "callback_data": "cb"}]]
    }
    _sim.revoke_token(TOKEN)
    with pytest.raises(InvalidToken):
        await telegram.Bot(TOKEN, base_url=f"{_sim.base_url}/bot").get_me()


# -- control endpoints -----------------------------------------------------------------


async def test_control_endpoints(_sim: BotApiSimulator, _sim_http: aiohttp.ClientSession) -> None:
    base = f"{_sim.base_url}/_sim"

    async def post(path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with _sim_http.post(f"{base}/{path}", json=payload or {}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(path: str) -> Any:
        async with _sim_http.get(f"{base}/{path}") as resp:
            assert resp.status == 200
            return await resp.json()

    status, config = await post("configure", {"enforce_limits": False, "missing_chats": ["66"]})
    assert status == 200
    assert config["enforce_limits"] is False and config["missing_chats"] == ["66"]
    assert _sim.config.missing_chats == frozenset({"66"})
    assert (await post("configure", {"no_such_knob": 1}))[0] == 400

    await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="one")
    await _call(_sim_http, _sim, "sendMessage", chat_id="66", text="missing")
    [message] = await get("messages")
    assert (message["chat_id"], message["text"], message["params"]["text"]) == ("1", "one", "one")
    assert [(r["chat_id"], r["status"]) for r in await get("requests")] == [("1", 200), ("66", 400)]
    stats = await get("stats")
    assert stats["accepted"] == 1 and stats["by_status"] == {"200": 1, "400": 1}

    assert (await post("block", {"chat_id": "2"}))[0] == 200
    assert (await post("migrate", {"old_chat_id": "-3", "new_chat_id": "-1003"}))[0] == 200
    assert (await _call(_sim_http, _sim, "sendMessage", chat_id="2", text="x"))[0] == 403
    assert (await _call(_sim_http, _sim, "sendMessage", chat_id="-3", text="x"))[0] == 400

    assert (await post("tokens/revoke", {"token": TOKEN}))[0] == 200
    assert (await _call(_sim_http, _sim, "getMe"))[0] == 401
    assert (await post("tokens/accept", {"token": TOKEN}))[0] == 200
    assert (await _call(_sim_http, _sim, "getMe"))[0] == 200

    assert (await post("storm", {"seconds": 600, "retry_after": 3}))[0] == 200
    status, body = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="x")
    assert (status, body["parameters"]["retry_after"]) == (429, 3)

    assert (await post("reset"))[0] == 200
    assert await get("messages") == [] and await get("requests") == []
    assert (await _call(_sim_http, _sim, "sendMessage", chat_id="2", text="x"))[0] == 200


async def test_messages_carry_wall_clock_time_and_a_sequence_that_survives_reset(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    before = time.time()
    _, body = await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="one")
    after = time.time()
    [first] = _sim.messages
    assert before <= first.date <= after
    assert body["result"]["date"] == int(first.date)
    _sim.reset()
    await _call(_sim_http, _sim, "sendMessage", chat_id="1", text="two")
    [second] = _sim.messages
    assert second.seq == first.seq + 1  # a reader's cursor stays valid across a reset


async def test_messages_endpoint_filters_by_cursor_and_chat(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    _sim.configure(enforce_limits=False)  # two sends to chat 1 within a second
    for chat, text in (("1", "a"), ("2", "b"), ("1", "c"), ("-5", "d")):
        await _call(_sim_http, _sim, "sendMessage", chat_id=chat, text=text)
    url = f"{_sim.base_url}/_sim/messages"

    async def get(query: str) -> list[dict[str, Any]]:
        async with _sim_http.get(f"{url}?{query}") as resp:
            assert resp.status == 200
            assert resp.headers["X-Notigate-Simulator"] == _sim.instance
            data: list[dict[str, Any]] = await resp.json()
            return data

    everything = await get("")
    assert [m["text"] for m in everything] == ["a", "b", "c", "d"]
    seqs = [m["seq"] for m in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert [m["text"] for m in await get(f"after={seqs[1]}")] == ["c", "d"]
    assert [m["text"] for m in await get("chat_id=1")] == ["a", "c"]
    assert [m["text"] for m in await get(f"chat_id=1&after={seqs[0]}")] == ["c"]
    assert await get(f"after={seqs[-1]}") == []
    assert all(isinstance(m["date"], float) for m in everything)
    for bad in ("after=x", "after=-1", "wait=soon", "wait=nan"):
        async with _sim_http.get(f"{url}?{bad}") as resp:
            assert resp.status == 400, bad


async def test_messages_long_poll_answers_with_the_first_matching_message(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    url = f"{_sim.base_url}/_sim/messages"

    async def poll() -> list[dict[str, Any]]:
        async with _sim_http.get(f"{url}?chat_id=7&wait=30") as resp:
            data: list[dict[str, Any]] = await resp.json()
            return data

    waiting = asyncio.create_task(poll())
    await _call(_sim_http, _sim, "sendMessage", chat_id="8", text="not for the poll")
    await asyncio.sleep(0.05)
    assert not waiting.done()  # another chat's message does not answer it
    await _call(_sim_http, _sim, "sendMessage", chat_id="7", text="for the poll")
    [message] = await asyncio.wait_for(waiting, 20)
    assert message["text"] == "for the poll"
    # Nothing new: the wait runs out and the answer is empty.
    async with _sim_http.get(f"{url}?after={message['seq']}&wait=0.05") as resp:
        assert await resp.json() == []
    # A cursor from another simulator instance means nothing here: answered at once
    # (well before its 60 s wait), so that the reader can start over.
    query = f"after={message['seq']}&wait=60&instance=another"
    async with asyncio.timeout(20), _sim_http.get(f"{url}?{query}") as resp:
        assert await resp.json() == []
        assert resp.headers["X-Notigate-Simulator"] == _sim.instance


async def test_block_with_status_and_unblock(
    _sim: BotApiSimulator, _sim_http: aiohttp.ClientSession
) -> None:
    base = f"{_sim.base_url}/_sim"

    async def post(path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        async with _sim_http.post(f"{base}/{path}", json=payload) as resp:
            return resp.status, await resp.json(content_type=None)

    assert (await post("block", {"chat_id": "21", "status": 400}))[0] == 200
    assert (await post("block", {"chat_id": "22"}))[0] == 200
    assert (await post("block", {"chat_id": "23", "status": 403, "description": "x"}))[0] == 200
    for status in (500, "403", True):
        assert (await post("block", {"chat_id": "24", "status": status}))[0] == 400
    answers = {
        chat: await _call(_sim_http, _sim, "sendMessage", chat_id=chat, text="x")
        for chat in ("21", "22", "23", "24")
    }
    assert answers["21"] == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )
    assert answers["22"][1]["description"] == "Forbidden: bot was blocked by the user"
    assert answers["23"][1] == {"ok": False, "error_code": 403, "description": "x"}
    assert answers["24"][0] == 200  # the rejected block changed nothing

    assert await post("unblock", {"chat_id": "21"}) == (200, {"ok": True, "was_blocked": True})
    assert await post("unblock", {"chat_id": "21"}) == (200, {"ok": True, "was_blocked": False})
    async with _sim_http.post(f"{base}/unblock", json={}) as resp:
        assert resp.status == 400 and "chat_id" in await resp.text()
    assert (await _call(_sim_http, _sim, "sendMessage", chat_id="21", text="x"))[0] == 200
    assert (await _call(_sim_http, _sim, "sendMessage", chat_id="22", text="x"))[0] == 403
