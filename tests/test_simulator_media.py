"""The Bot API simulator's media over real HTTP: uploads and file ids, albums, edits, deletes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from telegram.error import BadRequest, Forbidden, RetryAfter

from notigate.simulator import BotApiSimulator
from notigate.simulator.files import decode_file_id
from notigate.simulator.limits import SlidingWindow
from notigate.simulator.wire import MAX_UPLOAD
from tests.conftest import TOKEN
from tests.test_simulator import OTHER_TOKEN, _sim_server  # noqa: F401 (a fixture)

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


@pytest.fixture
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def bot(
    _sim: BotApiSimulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[telegram.Bot]:
    # Stock PTB 22.x warns about integer durations and retry_after unless this opt-in is set.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with telegram.Bot(TOKEN, base_url=f"{_sim.base_url}/bot") as ptb:
        yield ptb


@pytest.fixture
async def other_bot(_sim: BotApiSimulator, bot: telegram.Bot) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(OTHER_TOKEN, base_url=f"{_sim.base_url}/bot") as ptb:
        yield ptb


async def _call(
    http: aiohttp.ClientSession, sim: BotApiSimulator, method: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    async with http.post(f"{sim.base_url}/bot{TOKEN}/{method}", data=form) as resp:
        return resp.status, await resp.json()


async def _upload(
    http: aiohttp.ClientSession,
    sim: BotApiSimulator,
    method: str,
    files: dict[str, tuple[str, bytes]],
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    for name, value in params.items():
        form.add_field(name, value if isinstance(value, str) else json.dumps(value))
    for name, (file_name, content) in files.items():
        form.add_field(name, content, filename=file_name)
    async with http.post(f"{sim.base_url}/bot{TOKEN}/{method}", data=form) as resp:
        return resp.status, await resp.json()


async def _sim_get(http: aiohttp.ClientSession, sim: BotApiSimulator, path: str) -> Any:
    async with http.get(f"{sim.base_url}/_sim/{path}") as resp:
        return resp.status, await resp.json()


async def _sim_post(
    http: aiohttp.ClientSession, sim: BotApiSimulator, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    async with http.post(f"{sim.base_url}/_sim/{path}", json=body) as resp:
        return resp.status, await resp.json()


def _exactly(description: str) -> str:
    """A pattern for PTB's BadRequest text of ``description`` (PTB drops the "Bad Request: "
    prefix and re-cases the rest, so the match ignores case)."""
    return f"(?i)^{re.escape(description)}$"


def _starting(description: str) -> str:
    return f"(?i)^{re.escape(description)}"


def _keyboard(label: str) -> telegram.InlineKeyboardMarkup:
    return telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton(label, callback_data=label)]]
    )


# -- uploads and file ids --------------------------------------------------------------


async def test_photo_upload_issues_a_per_bot_file_id(
    _sim: BotApiSimulator, bot: telegram.Bot, other_bot: telegram.Bot
) -> None:
    sent = await bot.send_photo(42, PNG, caption="pic", has_spoiler=True, filename="p.png")
    sizes = sent.photo
    assert len(sizes) >= 2
    assert [s.width for s in sizes] == sorted(s.width for s in sizes)
    largest = sizes[-1]
    assert largest.file_size == len(PNG)
    assert sent.caption == "pic" and sent.has_media_spoiler is True
    assert decode_file_id(largest.file_id) is not None
    kind, bot_id, digest, _ = decode_file_id(largest.file_id) or ("", 0, b"", 0)
    assert (kind, bot_id) == ("photo", 123456)
    assert digest == hashlib.sha256(PNG).digest()[:16]
    assert _sim.uploads(TOKEN).count == 1 and _sim.uploads(TOKEN).bytes == len(PNG)

    again = await bot.send_photo(43, largest.file_id)
    assert again.photo[-1].file_unique_id == largest.file_unique_id
    assert _sim.uploads(TOKEN).count == 1, "a file_id reuse is no upload"
    fresh = await bot.send_photo(44, PNG, filename="p.png")
    assert fresh.photo[-1].file_unique_id == largest.file_unique_id

    with pytest.raises(BadRequest, match=_exactly("Wrong file identifier/HTTP URL specified")):
        await other_bot.send_photo(42, largest.file_id)
    with pytest.raises(BadRequest, match=_exactly("Wrong file identifier/HTTP URL specified")):
        await bot.send_photo(42, "AgACAgIAAxkBAAIBZ2Vunknown")
    assert _sim.uploads(OTHER_TOKEN).count == 0
    record = _sim.message("42", sent.message_id)
    assert record is not None
    assert (record.kind, record.text, record.file_id) == ("photo", "pic", largest.file_id)
    [first, *_] = _sim.messages
    assert (first.kind, first.text, first.file_id) == ("photo", "pic", largest.file_id)


async def test_file_ids_keep_their_kind(bot: telegram.Bot) -> None:
    document = await bot.send_document(5, b"%PDF-1.4 body", filename="report.pdf")
    assert document.document is not None
    assert document.document.file_name == "report.pdf"
    assert document.document.mime_type == "application/pdf"
    with pytest.raises(BadRequest, match=_exactly("Can't use file of type Document as Photo")):
        await bot.send_photo(5, document.document.file_id)
    photo = await bot.send_photo(6, PNG)
    with pytest.raises(BadRequest, match=_exactly("Can't use file of type Photo as Document")):
        await bot.send_document(6, photo.photo[-1].file_id)
    # Document-like kinds stand in for each other, as in TDLib.
    video = await bot.send_video(7, document.document.file_id)
    assert video.video is not None


async def test_every_send_method_returns_its_media(bot: telegram.Bot) -> None:
    video = await bot.send_video(
        9, b"video bytes", filename="clip.mp4", width=640, height=360, duration=3
    )
    assert video.video is not None
    assert (video.video.width, video.video.height, video.video.mime_type) == (640, 360, "video/mp4")
    animation = await bot.send_animation(-100900, b"gif bytes", filename="fun.gif", caption="ha")
    assert animation.animation is not None and animation.document is not None
    assert animation.document.file_id == animation.animation.file_id
    assert animation.caption == "ha"
    audio = await bot.send_audio(
        -100900, b"mp3 bytes", filename="song.mp3", title="Song", performer="Me"
    )
    assert audio.audio is not None
    assert (audio.audio.title, audio.audio.performer) == ("Song", "Me")
    assert audio.audio.file_name == "song.mp3" and audio.audio.mime_type == "audio/mpeg"
    voice = await bot.send_voice(-100900, b"ogg bytes", filename="note.ogg")
    assert voice.voice is not None and voice.voice.mime_type == "audio/ogg"
    for message in (video, animation, audio, voice):
        media = message.effective_attachment
        assert getattr(media, "file_id", None) and getattr(media, "file_unique_id", None)


async def test_big_uploads_and_the_size_limits(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    big = b"\x00" * MAX_UPLOAD
    status, body = await _upload(
        _http, _sim, "sendDocument", {"document": ("big.bin", big)}, chat_id="1"
    )
    assert status == 200, body
    assert body["result"]["document"]["file_size"] == MAX_UPLOAD
    assert _sim.uploads(TOKEN).bytes == MAX_UPLOAD
    status, body = await _upload(
        _http, _sim, "sendDocument", {"document": ("huge.bin", big + b"!")}, chat_id="2"
    )
    assert (status, body["description"]) == (413, "Request Entity Too Large")
    photo = b"\xff" * (10 * 1024 * 1024 + 1)
    status, body = await _upload(_http, _sim, "sendPhoto", {"photo": ("p.jpg", photo)}, chat_id="3")
    assert (status, body["description"]) == (
        400,
        "Bad Request: file of size 10485761 bytes is too big for a photo; "
        "the maximum size is 10485760 bytes",
    )
    status, body = await _upload(
        _http, _sim, "sendDocument", {"document": ("e.txt", b"")}, chat_id="4"
    )
    assert (status, body["description"]) == (400, "Bad Request: file must be non-empty")
    assert [m.chat_id for m in _sim.messages] == ["1"]


async def test_urls_are_fetched_unless_they_cannot_be(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    ok = await _call(_http, _sim, "sendPhoto", chat_id="1", photo="https://example.com/cat.jpg")
    assert ok[0] == 200 and ok[1]["result"]["photo"]
    cases = [
        (
            "sendPhoto",
            "photo",
            "https://cdn.example.invalid/cat.jpg",
            "failed to get HTTP URL content",
        ),
        (
            "sendDocument",
            "document",
            "https://example.com/notes.txt",
            "wrong type of the web page content",
        ),
        ("sendDocument", "document", "report.pdf", "wrong file identifier/HTTP URL specified"),
    ]
    for chat, (method, field, value, description) in enumerate(cases, 2):
        status, body = await _call(_http, _sim, method, chat_id=str(chat), **{field: value})
        assert (status, body["description"]) == (400, f"Bad Request: {description}")
    for path in ("a.pdf", "b.zip", "c.GIF"):
        status, body = await _call(
            _http, _sim, "sendDocument", chat_id="9", document=f"https://example.com/{path}"
        )
        assert status == 200, body
        _sim.limiter.clear()
    assert _sim.uploads(TOKEN).count == 0


async def test_captions_are_checked_like_message_texts(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    url = "https://example.com/p.jpg"
    status, body = await _call(_http, _sim, "sendPhoto", chat_id="1", photo=url, caption="x" * 1025)
    assert (status, body["description"]) == (400, "Bad Request: message caption is too long")
    status, body = await _call(
        _http, _sim, "sendPhoto", chat_id="1", photo=url, caption="<b>x", parse_mode="HTML"
    )
    assert status == 400 and body["description"].startswith("Bad Request: can't parse entities")
    status, body = await _call(
        _http,
        _sim,
        "sendPhoto",
        chat_id="1",
        photo=url,
        caption="<b>" + "x" * 1024 + "</b>",
        parse_mode="HTML",
    )
    assert status == 200, body


# -- albums ----------------------------------------------------------------------------


async def test_album_of_uploads(_sim: BotApiSimulator, bot: telegram.Bot) -> None:
    media = [
        telegram.InputMediaPhoto(PNG + bytes([i]), caption=f"p{i}", filename=f"{i}.png")
        for i in range(3)
    ]
    sent = await bot.send_media_group(-100777, media)
    assert len(sent) == 3
    assert len({m.media_group_id for m in sent}) == 1 and sent[0].media_group_id
    ids = [m.message_id for m in sent]
    assert ids == list(range(ids[0], ids[0] + 3))
    assert [m.caption for m in sent] == ["p0", "p1", "p2"]
    assert _sim.uploads(TOKEN).count == 3
    assert [(m.kind, m.text, m.media_group_id) for m in _sim.messages] == [
        ("photo", f"p{i}", sent[0].media_group_id) for i in range(3)
    ]
    assert [r.method for r in _sim.requests if r.method != "getMe"] == ["sendMediaGroup"]
    # A file id from the album is reusable in the next one.
    reused = await bot.send_media_group(
        -100777, [telegram.InputMediaPhoto(m.photo[-1].file_id) for m in sent[:2]]
    )
    assert [m.photo[-1].file_unique_id for m in reused] == [
        m.photo[-1].file_unique_id for m in sent[:2]
    ]


def _item(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "media": f"https://example.com/{kind}.pdf", **extra}


@pytest.mark.parametrize(
    ("media", "description"),
    [
        ([_item("photo")], "wrong number of media items"),
        ([], "there are no messages to send"),
        ([_item("photo")] * 11, "too many messages to send as an album"),
        ([_item("photo"), _item("document")], "document can't be mixed with other media types"),
        ([_item("audio"), _item("video")], "audio can't be mixed with other media types"),
        (
            [_item("photo", show_caption_above_media=True), _item("video")],
            "parameter show_caption_above_media must be the same for all messages",
        ),
        (
            [_item("photo"), _item("animation")],
            "can't parse InputMedia: type \"animation\" can't be used in sendMediaGroup",
        ),
        ([_item("photo"), _item("photo", caption="x" * 1025)], "message caption is too long"),
        (
            [_item("photo"), {"type": "photo", "media": "attach://missing"}],
            "can't parse InputMedia: media not found",
        ),
        (
            [_item("photo"), {"type": "photo", "media": "nope"}],
            "wrong file identifier/HTTP URL specified",
        ),
    ],
)
async def test_album_validation_rejects_the_whole_album(
    _sim: BotApiSimulator,
    _http: aiohttp.ClientSession,
    media: list[dict[str, Any]],
    description: str,
) -> None:
    status, body = await _call(_http, _sim, "sendMediaGroup", chat_id="-100", media=media)
    assert (status, body["description"]) == (400, f"Bad Request: {description}")
    assert _sim.messages == []


async def test_documents_and_audios_form_albums_of_their_own(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    for kind in ("document", "audio"):
        status, body = await _call(
            _http, _sim, "sendMediaGroup", chat_id=f"-10{len(kind)}", media=[_item(kind)] * 2
        )
        assert status == 200, body
        assert all(kind in m for m in body["result"])


async def test_album_failing_at_an_item_keeps_the_items_before_it(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    media = [_item("photo"), {"type": "photo", "media": "https://x.invalid/a.jpg"}, _item("photo")]
    status, body = await _call(_http, _sim, "sendMediaGroup", chat_id="-5", media=media)
    assert (status, body["description"]) == (
        400,
        'Bad Request: failed to send message #2 with the error message "WEBPAGE_CURL_FAILED"',
    )
    [first] = _sim.messages
    assert first.kind == "photo" and first.media_group_id
    record = _sim.message("-5", first.message_id)
    assert record is not None and not record.deleted


async def test_scripted_album_item_fault_is_one_shot(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    status, _ = await _sim_post(
        _http,
        _sim,
        "fail_album_item",
        {"chat_id": "-6", "position": 1, "description": "Too Many Requests: retry after 8"},
    )
    assert status == 200
    media = [_item("photo"), _item("photo")]
    status, body = await _call(_http, _sim, "sendMediaGroup", chat_id="-6", media=media)
    assert (status, body["description"]) == (
        400,
        "Bad Request: failed to send message #1 with the error message "
        '"Too Many Requests: retry after 8"',
    )
    assert _sim.messages == []
    _sim.fail_album_item("-6", 2, "PHOTO_INVALID_DIMENSIONS")
    status, body = await _call(_http, _sim, "sendMediaGroup", chat_id="-6", media=media)
    assert status == 400 and "#2" in body["description"]
    assert len(_sim.messages) == 1
    status, _ = await _call(_http, _sim, "sendMediaGroup", chat_id="-6", media=media)
    assert status == 200
    assert (
        await _sim_post(
            _http, _sim, "fail_album_item", {"chat_id": "-6", "position": 0, "description": "x"}
        )
    )[0] == 400


# -- albums in the rate windows ---------------------------------------------------------


def test_sliding_window_takes_album_slots() -> None:
    window = SlidingWindow()
    window.add_many(100.0, 10, limit=1, window_s=1.0)
    assert len(window) == 10
    assert window.wait_s(100.5, limit=1, window_s=1.0) == pytest.approx(9.5)
    group = SlidingWindow()
    group.add(0.0)
    assert group.wait_s(0.5, limit=5, window_s=1.0, need=5) == pytest.approx(0.5)
    assert group.wait_s(0.5, limit=5, window_s=1.0, need=4) == 0.0


async def test_album_counts_as_n_sends(_sim: BotApiSimulator, _http: aiohttp.ClientSession) -> None:
    media = [_item("photo")] * 3
    status, _ = await _call(_http, _sim, "sendMediaGroup", chat_id="77", media=media)
    assert status == 200
    status, body = await _call(_http, _sim, "sendMessage", chat_id="77", text="after")
    assert status == 429
    assert body["parameters"]["retry_after"] == 3, "three slots at 1/s hold the chat ~3 s"

    _sim.configure(global_rate=5)
    _sim.limiter.clear()
    status, _ = await _call(_http, _sim, "sendMessage", chat_id="-1001", text="one")
    assert status == 200
    status, body = await _call(
        _http, _sim, "sendMediaGroup", chat_id="-1002", media=[_item("photo")] * 5
    )
    assert status == 429, "five more do not fit a window of five holding one"
    status, _ = await _call(
        _http, _sim, "sendMediaGroup", chat_id="-1002", media=[_item("photo")] * 4
    )
    assert status == 200
    status, _ = await _call(_http, _sim, "sendMessage", chat_id="-1003", text="full")
    assert status == 429


async def test_album_larger_than_the_window_is_admitted_into_an_empty_one(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    _sim.configure(global_rate=3)
    status, body = await _call(
        _http, _sim, "sendMediaGroup", chat_id="-1009", media=[_item("photo")] * 7
    )
    assert status == 200, body
    status, body = await _call(_http, _sim, "sendMessage", chat_id="-1010", text="x")
    # Slots 0-2 count now, 3-5 a window later, 6 two windows later: room again after ~2 s.
    assert status == 429 and body["parameters"]["retry_after"] == 2


# -- edits -----------------------------------------------------------------------------


async def test_edit_text_and_markup(_sim: BotApiSimulator, bot: telegram.Bot) -> None:
    sent = await bot.send_message(
        -100300, "<b>v1</b>", parse_mode="HTML", reply_markup=_keyboard("a")
    )
    edited = await bot.edit_message_text(
        "<b>v2</b>",
        chat_id=-100300,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=_keyboard("a"),
    )
    assert isinstance(edited, telegram.Message)
    assert edited.edit_date is not None and edited.text == "<b>v2</b>"
    with pytest.raises(
        BadRequest, match=_starting("Message is not modified: specified new message content")
    ):
        await bot.edit_message_text(
            "<b>v2</b>",
            chat_id=-100300,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=_keyboard("a"),
        )
    # The same visible text through other markup is no change either.
    with pytest.raises(BadRequest, match=_starting("Message is not modified")):
        await bot.edit_message_text(
            "*v2*",
            chat_id=-100300,
            message_id=sent.message_id,
            parse_mode="MarkdownV2",
            reply_markup=_keyboard("a"),
        )
    await bot.edit_message_reply_markup(-100300, sent.message_id, reply_markup=_keyboard("b"))
    with pytest.raises(BadRequest, match=_starting("Message is not modified")):
        await bot.edit_message_reply_markup(-100300, sent.message_id, reply_markup=_keyboard("b"))
    await bot.edit_message_reply_markup(-100300, sent.message_id)
    record = _sim.message("-100300", sent.message_id)
    assert record is not None
    assert (record.kind, record.text, record.edit_count) == ("text", "<b>v2</b>", 3)
    assert record.reply_markup is None
    assert [r.method for r in _sim.requests].count("editMessageText") == 3
    with pytest.raises(BadRequest, match=_exactly("Message text is empty")):
        await bot.edit_message_text("", chat_id=-100300, message_id=sent.message_id)


async def test_edits_find_only_the_bots_own_live_messages(
    _sim: BotApiSimulator, bot: telegram.Bot, other_bot: telegram.Bot
) -> None:
    sent = await bot.send_message(-100301, "mine")
    for editor, chat, message_id in (
        (bot, -100301, sent.message_id + 50),
        (bot, -100302, sent.message_id),
        (other_bot, -100301, sent.message_id),
    ):
        with pytest.raises(BadRequest, match=_exactly("Message to edit not found")):
            await editor.edit_message_text("x", chat_id=chat, message_id=message_id)
    await bot.delete_message(-100301, sent.message_id)
    with pytest.raises(BadRequest, match=_exactly("Message to edit not found")):
        await bot.edit_message_text("x", chat_id=-100301, message_id=sent.message_id)


async def test_edits_of_the_wrong_content(_sim: BotApiSimulator, bot: telegram.Bot) -> None:
    text = await bot.send_message(-100400, "text")
    photo = await bot.send_photo(-100400, PNG, caption="old")
    with pytest.raises(BadRequest, match=_exactly("There is no text in the message to edit")):
        await bot.edit_message_text("x", chat_id=-100400, message_id=photo.message_id)
    with pytest.raises(BadRequest, match=_exactly("There is no caption in the message to edit")):
        await bot.edit_message_caption(-100400, text.message_id, caption="x")
    with pytest.raises(BadRequest, match=_exactly("There is no media in the message to edit")):
        await bot.edit_message_media(
            telegram.InputMediaPhoto("https://example.com/a.jpg"), -100400, text.message_id
        )
    edited = await bot.edit_message_caption(
        -100400, photo.message_id, caption="<i>new</i>", parse_mode="HTML"
    )
    assert isinstance(edited, telegram.Message) and edited.caption == "<i>new</i>"
    assert edited.photo and edited.photo[-1].file_id == photo.photo[-1].file_id
    with pytest.raises(BadRequest, match=_starting("Message is not modified")):
        await bot.edit_message_caption(
            -100400, photo.message_id, caption="_new_", parse_mode="MarkdownV2"
        )


async def test_edit_media_uploads_and_replaces(_sim: BotApiSimulator, bot: telegram.Bot) -> None:
    photo = await bot.send_photo(-100500, PNG, caption="photo")
    edited = await bot.edit_message_media(
        telegram.InputMediaDocument(b"new report", filename="r.txt", caption="doc"),
        -100500,
        photo.message_id,
    )
    assert isinstance(edited, telegram.Message)
    assert edited.document is not None and not edited.photo
    assert edited.document.file_name == "r.txt" and edited.caption == "doc"
    record = _sim.message("-100500", photo.message_id)
    assert record is not None
    assert (record.kind, record.text, record.edit_count) == ("document", "doc", 1)
    assert record.file_id == edited.document.file_id
    assert _sim.uploads(TOKEN).count == 2
    with pytest.raises(BadRequest, match=_starting("Message is not modified")):
        await bot.edit_message_media(
            telegram.InputMediaDocument(edited.document.file_id, caption="doc"),
            -100500,
            photo.message_id,
        )
    with pytest.raises(BadRequest, match=_exactly("Failed to get HTTP URL content")):
        await bot.edit_message_media(
            telegram.InputMediaPhoto("https://a.invalid/x.jpg"), -100500, photo.message_id
        )


async def test_album_items_keep_their_album_kind(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    status, body = await _call(
        _http, _sim, "sendMediaGroup", chat_id="-8", media=[_item("photo")] * 2
    )
    assert status == 200
    first = body["result"][0]["message_id"]
    video = {"type": "video", "media": "https://example.com/v.mp4"}
    status, body = await _call(
        _http, _sim, "editMessageMedia", chat_id="-8", message_id=first, media=video
    )
    assert status == 200 and body["result"]["video"] and body["result"]["media_group_id"]
    status, body = await _call(
        _http, _sim, "editMessageMedia", chat_id="-8", message_id=first, media=_item("document")
    )
    assert (status, body["description"]) == (
        400,
        "Bad Request: can't change media type in the album",
    )


# -- deletes and the clock -------------------------------------------------------------


async def test_deletes(_sim: BotApiSimulator, bot: telegram.Bot) -> None:
    ids = [(await bot.send_message(-100600, f"m{i}")).message_id for i in range(3)]
    assert await bot.delete_message(-100600, ids[0]) is True
    with pytest.raises(BadRequest, match=_exactly("Message to delete not found")):
        await bot.delete_message(-100600, ids[0])
    assert await bot.delete_messages(-100600, [ids[1], ids[2], ids[2] + 100]) is True
    assert _sim.chat_messages("-100600") == []
    shown = _sim.chat_messages("-100600", include_deleted=True)
    assert [(m.message_id, m.deleted) for m in shown] == [(i, True) for i in ids]
    with pytest.raises(BadRequest, match=_exactly("Too many message identifiers specified")):
        await bot.delete_messages(-100600, list(range(1, 102)))


async def test_messages_older_than_48_hours_cannot_be_deleted(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession, bot: telegram.Bot
) -> None:
    old = await bot.send_message(-100700, "old")
    _sim.advance_clock(47 * 3600)
    young = await bot.send_message(-100700, "young")
    assert young.date.timestamp() - old.date.timestamp() >= 47 * 3600
    status, body = await _sim_post(_http, _sim, "clock", {"advance_s": 3600 + 1})
    assert status == 200 and body["offset_s"] == 48 * 3600 + 1
    with pytest.raises(BadRequest, match=_exactly("Message can't be deleted")):
        await bot.delete_message(-100700, old.message_id)
    assert await bot.delete_messages(-100700, [old.message_id, young.message_id]) is True
    record_old, record_young = (
        _sim.message("-100700", old.message_id),
        _sim.message("-100700", young.message_id),
    )
    assert record_old is not None and not record_old.deleted
    assert record_young is not None and record_young.deleted
    assert (await _sim_post(_http, _sim, "clock", {"advance_s": -1}))[0] == 400


# -- scripted faults apply to every method ---------------------------------------------


async def test_scripted_faults_apply_to_media_edits_and_deletes(
    _sim: BotApiSimulator, bot: telegram.Bot, _http: aiohttp.ClientSession
) -> None:
    sent = await bot.send_message(-100800, "x")
    _sim.block_chat("-100800")
    with pytest.raises(Forbidden):
        await bot.send_photo(-100800, PNG)
    with pytest.raises(Forbidden):
        await bot.edit_message_text("y", chat_id=-100800, message_id=sent.message_id)
    with pytest.raises(Forbidden):
        await bot.delete_message(-100800, sent.message_id)
    _sim.rate_limit_chat("-100800", 7)
    with pytest.raises(RetryAfter):
        await bot.send_media_group(-100800, [telegram.InputMediaPhoto(PNG)] * 2)
    _sim.unblock_chat("-100800")
    _sim.configure(error_rate=1.0, seed=1)
    status, _ = await _call(
        _http, _sim, "deleteMessage", chat_id="-100800", message_id=sent.message_id
    )
    assert status >= 500
    _sim.configure(error_rate=0.0)
    _sim.rate_limit_storm(60, 4)
    status, body = await _call(
        _http, _sim, "sendMediaGroup", chat_id="-100801", media=[_item("photo")] * 2
    )
    assert (status, body["parameters"]["retry_after"]) == (429, 4)


# -- control endpoints -----------------------------------------------------------------


async def test_control_endpoints_show_messages_uploads_and_chats(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    status, body = await _upload(
        _http, _sim, "sendDocument", {"document": ("a.txt", b"abc")}, chat_id="-9", caption="cap"
    )
    assert status == 200
    message_id = body["result"]["message_id"]
    status, record = await _sim_get(_http, _sim, f"message?chat_id=-9&message_id={message_id}")
    assert status == 200
    assert (record["kind"], record["text"], record["deleted"], record["edit_count"]) == (
        "document",
        "cap",
        False,
        0,
    )
    assert record["file_id"] == body["result"]["document"]["file_id"]
    assert (await _sim_get(_http, _sim, "message?chat_id=-9&message_id=999"))[0] == 404
    _, chat = await _sim_get(_http, _sim, "chat?chat_id=-9")
    assert [m["message_id"] for m in chat] == [message_id]
    _, uploads = await _sim_get(_http, _sim, "uploads")
    assert uploads == {"123456": {"count": 1, "bytes": 3}}
    _, mine = await _sim_get(_http, _sim, f"uploads?token={TOKEN}")
    assert mine == {"count": 1, "bytes": 3}
    _, messages = await _sim_get(_http, _sim, "messages")
    assert [(m["kind"], m["text"]) for m in messages] == [("document", "cap")]
    assert messages[0]["params"]["document"] == {"file_name": "a.txt", "size": 3}


async def test_a_text_message_is_remembered_as_it_was_returned(
    _sim: BotApiSimulator, _http: aiohttp.ClientSession
) -> None:
    markup = {"inline_keyboard": [[{"text": "go", "callback_data": "cb"}]]}
    status, body = await _call(
        _http,
        _sim,
        "sendMessage",
        chat_id="-1001234",
        text="<b>hi</b>",
        parse_mode="HTML",
        reply_markup=markup,
        message_thread_id=7,
        link_preview_options={"is_disabled": True},
    )
    assert status == 200
    record = _sim.message("-1001234", body["result"]["message_id"])
    assert record is not None
    assert record.message == body["result"]
    assert (record.kind, record.text, record.reply_markup, record.bot_id) == (
        "text",
        "<b>hi</b>",
        markup,
        123456,
    )
    status, again = await _call(
        _http,
        _sim,
        "editMessageText",
        chat_id="-1001234",
        message_id=body["result"]["message_id"],
        text="<b>hi</b>",
        parse_mode="HTML",
        reply_markup=markup,
        link_preview_options={"is_disabled": True},
    )
    assert status == 400 and again["description"].startswith("Bad Request: message is not modified")
