"""TelegramSender against the real simulator: field mapping and outcome classification."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import telegram

from notigate.sender import (
    Delivered,
    Migrated,
    PermanentError,
    RateLimited,
    TelegramSender,
    TransientError,
    Unauthorized,
    Unreachable,
)
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate.transport import AiohttpRequest
from notigate_client import pb
from tests.conftest import TOKEN


@pytest.fixture(scope="module")
async def _sim_server() -> AsyncIterator[BotApiSimulator]:
    sim = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig())
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@pytest.fixture
async def _sim_sender(_sim: BotApiSimulator) -> AsyncIterator[TelegramSender]:
    sender = TelegramSender(TOKEN, _sim.base_url, pool_size=8)
    await sender.start()
    yield sender
    await sender.close()


def _request(chat_id: str = "42", text: str = "hello", **fields: Any) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat_id, text=text, **fields)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_delivered_carries_every_field(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    request = _request(
        chat_id="-1001234567890",
        text="<b>release</b> is out",
        parse_mode=pb.PARSE_MODE_HTML,
        message_thread_id=77,
        disable_notification=True,
        protect_content=True,
        allow_paid_broadcast=True,
        reply_markup=pb.InlineKeyboardMarkup(
            rows=[
                pb.InlineKeyboardRow(
                    buttons=[
                        pb.InlineKeyboardButton(text="open", url="https://example.com"),
                        pb.InlineKeyboardButton(text="ack", callback_data="ack:1"),
                    ]
                ),
                pb.InlineKeyboardRow(
                    buttons=[
                        pb.InlineKeyboardButton(text="share", switch_inline_query="q"),
                        pb.InlineKeyboardButton(text="here", switch_inline_query_current_chat=""),
                        pb.InlineKeyboardButton(text="copy", copy_text="CODE-1"),
                    ]
                ),
            ]
        ),
        link_preview=pb.LinkPreviewOptions(
            url="https://example.com/p", prefer_small_media=True, show_above_text=True
        ),
    )
    outcome = await _sim_sender.send(request, request.chat_id)
    assert isinstance(outcome, Delivered)
    [sent] = _sim.messages
    assert sent.message_id == outcome.message_id
    assert sent.chat_id == "-1001234567890"
    assert sent.text == "<b>release</b> is out"
    params = sent.params
    assert params["parse_mode"] == "HTML"
    assert params["message_thread_id"] == 77
    assert params["disable_notification"] is True
    assert params["protect_content"] is True
    assert params["allow_paid_broadcast"] is True
    assert params["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "open", "url": "https://example.com"},
                {"text": "ack", "callback_data": "ack:1"},
            ],
            [
                {"text": "share", "switch_inline_query": "q"},
                {"text": "here", "switch_inline_query_current_chat": ""},
                {"text": "copy", "copy_text": {"text": "CODE-1"}},
            ],
        ]
    }
    assert params["link_preview_options"] == {
        "url": "https://example.com/p",
        "prefer_small_media": True,
        "show_above_text": True,
    }


async def test_defaults_are_left_out(_sim: BotApiSimulator, _sim_sender: TelegramSender) -> None:
    outcome = await _sim_sender.send(_request(), "42")
    assert isinstance(outcome, Delivered)
    assert _sim.messages[0].params == {"chat_id": "42", "text": "hello"}


async def test_link_preview_presence_is_what_counts(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    request = _request(link_preview=pb.LinkPreviewOptions(is_disabled=True))
    assert isinstance(await _sim_sender.send(request, "42"), Delivered)
    assert _sim.messages[0].params["link_preview_options"] == {"is_disabled": True}


@pytest.mark.parametrize("mode", [pb.PARSE_MODE_MARKDOWN_V2, pb.PARSE_MODE_MARKDOWN])
async def test_markdown_parse_modes(
    _sim: BotApiSimulator, _sim_sender: TelegramSender, mode: int
) -> None:
    assert isinstance(await _sim_sender.send(_request(parse_mode=mode), "42"), Delivered)
    expected = {pb.PARSE_MODE_MARKDOWN_V2: "MarkdownV2", pb.PARSE_MODE_MARKDOWN: "Markdown"}
    assert _sim.messages[0].params["parse_mode"] == expected[mode]


async def test_effective_chat_id_wins_and_usernames_pass_through(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    assert isinstance(await _sim_sender.send(_request(chat_id="-5"), "-1005"), Delivered)
    assert isinstance(await _sim_sender.send(_request(chat_id="@news"), "@news"), Delivered)
    assert [m.chat_id for m in _sim.messages] == ["-1005", "@news"]


async def test_rate_limited(_sim: BotApiSimulator, _sim_sender: TelegramSender) -> None:
    assert isinstance(await _sim_sender.send(_request(), "42"), Delivered)
    assert await _sim_sender.send(_request(), "42") == RateLimited(retry_after_s=1.0)
    _sim.rate_limit_storm(seconds=600.0, retry_after=9)
    assert await _sim_sender.send(_request(), "43") == RateLimited(retry_after_s=9.0)


async def test_migrated(_sim: BotApiSimulator, _sim_sender: TelegramSender) -> None:
    _sim.migrate_chat("-5", "-1005")
    assert await _sim_sender.send(_request(chat_id="-5"), "-5") == Migrated(new_chat_id="-1005")


async def test_permanent_errors_keep_telegram_descriptions(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    _sim.block_chat("11")
    _sim.configure(missing_chats=frozenset({"12"}), enforce_limits=False)
    # The chat cannot be reached: its own outcome (the dispatcher suppresses the chat).
    assert await _sim_sender.send(_request(), "11") == Unreachable(
        "Forbidden: bot was blocked by the user"
    )
    assert await _sim_sender.send(_request(), "12") == Unreachable("Bad Request: chat not found")
    assert await _sim_sender.send(_request(text="a" * 5000), "13") == PermanentError(
        "Bad Request: message is too long"
    )
    outcome = await _sim_sender.send(
        _request(text="<b>Unclosed", parse_mode=pb.PARSE_MODE_HTML), "13"
    )
    assert isinstance(outcome, PermanentError)
    assert outcome.description.startswith("Bad Request: can't parse entities: Can't find")


async def test_server_errors_are_transient(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    _sim.configure(error_rate=1.0)
    outcomes = [await _sim_sender.send(_request(), "42") for _ in range(4)]
    for outcome in outcomes:
        assert isinstance(outcome, TransientError)
        assert outcome.description in ("Internal Server Error", "Bad Gateway")
    assert _sim.messages == []


async def test_read_timeout_is_transient(_sim: BotApiSimulator) -> None:
    _sim.configure(latency_s=1.0)
    sender = TelegramSender(TOKEN, _sim.base_url, read_timeout_s=0.05)
    await sender.start()
    try:
        outcome = await sender.send(_request(), "42")
    finally:
        await sender.close()
    assert isinstance(outcome, TransientError)
    assert outcome.description.startswith("Timed out")


async def test_closed_port_is_transient_and_hides_the_token() -> None:
    sender = TelegramSender(TOKEN, f"http://127.0.0.1:{_closed_port()}", connect_timeout_s=2.0)
    await sender.start()
    try:
        outcome = await sender.send(_request(), "42")
        health = await sender.get_me()
    finally:
        await sender.close()
    assert isinstance(outcome, TransientError)
    assert isinstance(health, TransientError)
    assert TOKEN not in outcome.description and "TEST-TOKEN" not in outcome.description


async def test_revoked_token_is_unauthorized(
    _sim: BotApiSimulator, _sim_sender: TelegramSender
) -> None:
    _sim.revoke_token(TOKEN)
    outcome = await _sim_sender.send(_request(), "42")
    assert outcome == Unauthorized("Unauthorized")
    assert await _sim_sender.get_me() == Unauthorized("Unauthorized")


async def test_get_me_returns_the_username(_sim_sender: TelegramSender) -> None:
    assert await _sim_sender.get_me() == "notigate_sandbox_bot"


async def test_debug_logs_do_not_show_the_token(
    _sim: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = TelegramSender(TOKEN, _sim.base_url)
    await sender.start()
    try:
        assert isinstance(await sender.send(_request(), "42"), Delivered)
    finally:
        await sender.close()
    assert not any("TEST-TOKEN" in r.getMessage() for r in caplog.records)


async def test_sender_can_restart(_sim: BotApiSimulator) -> None:
    sender = TelegramSender(TOKEN, _sim.base_url + "/")
    await sender.start()
    await sender.close()
    await sender.start()
    try:
        assert isinstance(await sender.send(_request(), "42"), Delivered)
    finally:
        await sender.close()


async def test_transport_uploads_multipart(_sim: BotApiSimulator) -> None:
    request = AiohttpRequest(connection_pool_size=2)
    await request.initialize()
    try:
        bot = telegram.Bot(
            TOKEN, base_url=f"{_sim.base_url}/bot", request=request, get_updates_request=request
        )
        message = await bot.send_document(7, b"file body", filename="notes.txt", caption="doc")
    finally:
        await request.shutdown()
    assert message.document is not None and message.document.file_name == "notes.txt"
    assert _sim.messages[0].params["document"] == {"file_name": "notes.txt", "size": 9}
    assert _sim.messages[0].text == "doc"


@pytest.mark.parametrize("paid_broadcast", [False, True])
async def test_paid_broadcast_mode_allows_it_on_every_send(
    _sim: BotApiSimulator, paid_broadcast: bool
) -> None:
    sender = TelegramSender(TOKEN, _sim.base_url, paid_broadcast=paid_broadcast)
    await sender.start()
    try:
        assert isinstance(await sender.send(_request(), "42"), Delivered)
    finally:
        await sender.close()
    [sent] = _sim.messages
    assert sent.params.get("allow_paid_broadcast") is (True if paid_broadcast else None)
