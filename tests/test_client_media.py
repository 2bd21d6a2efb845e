"""The clients' media calls against a running gateway: uploads, media and album sends,
edits and deletes of messages still queued and already delivered.

What Telegram "got" is read from the Bot API simulator: its accepted sends
(``messages_after``) and every request it answered (``requests``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notigate.app import Gateway
from notigate.simulator import BotApiSimulator
from notigate_client import (
    AsyncNotificationClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    NotificationClient,
    document,
    item,
    media,
    media_group,
    pb,
    photo,
    video,
)
from notigate_client._common import build_edit_request, build_send_request
from notigate_client.uploads import MAX_CHUNK_SIZE, plan_upload
from tests.conftest import TOKEN, Stub, wait_for, wait_state

# The smallest valid PNG (1x1, transparent): what a photo upload carries.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
KEYBOARD = pb.InlineKeyboardMarkup(
    rows=[pb.InlineKeyboardRow(buttons=[pb.InlineKeyboardButton(text="Open", url="https://x.y")])]
)


def target(gw: Gateway) -> str:
    return f"127.0.0.1:{gw.port}"


@pytest.fixture
async def client(gateway: tuple[Gateway, Stub]) -> AsyncIterator[AsyncNotificationClient]:
    async with AsyncNotificationClient(target(gateway[0])) as c:
        yield c


def methods(sim: BotApiSimulator, status: int = 200) -> list[str]:
    return [r.method for r in sim.requests if r.status == status]


async def answered(sim: BotApiSimulator, method: str) -> None:
    async def seen() -> bool:
        return method in methods(sim)

    await wait_for(seen)


# -- building requests (no server) ----------------------------------------------------


def test_media_builders() -> None:
    assert photo(url="https://x/a.jpg", has_spoiler=True) == pb.Media(
        kind=pb.MEDIA_KIND_PHOTO, url="https://x/a.jpg", has_spoiler=True
    )
    reply = pb.UploadFileResponse(upload_id="up_12345678")
    assert document(upload_id=reply, filename="r.pdf").upload_id == "up_12345678"
    assert media("VOICE", file_id="AbC").kind == pb.MEDIA_KIND_VOICE
    assert media("media_kind_audio", file_id="AbC").kind == pb.MEDIA_KIND_AUDIO
    with pytest.raises(ValueError, match="exactly one"):
        photo(url="https://x", file_id="y")
    with pytest.raises(ValueError, match="exactly one"):
        photo()
    with pytest.raises(ValueError, match="unknown media kind"):
        media("sticker", url="https://x")
    album = media_group([photo(url="u1"), item(video(url="u2"), "second")])
    assert [i.caption for i in album.items] == ["", "second"]
    assert media_group(album) is album


def test_send_request_with_media_and_album() -> None:
    req = build_send_request("1", "caption", media=photo(url="https://x/a.jpg"))
    assert req.media.url == "https://x/a.jpg" and req.text == "caption"
    req = build_send_request("1", "", media_group=[photo(url="a"), photo(url="b")])
    assert len(req.media_group.items) == 2 and not req.HasField("media")
    assert not build_send_request("1", "x").HasField("media_group")


def test_edit_mask_names_what_is_given() -> None:
    assert list(build_edit_request("j", text="t").update_mask.paths) == ["text"]
    # text="" clears a caption: given, so in the mask.
    assert list(build_edit_request("j", text="").update_mask.paths) == ["text"]
    removed = build_edit_request("j", remove_keyboard=True)
    assert list(removed.update_mask.paths) == ["reply_markup"]
    assert not removed.HasField("reply_markup")
    both = build_edit_request("j", parse_mode="HTML", media=photo(url="u"), reply_markup=KEYBOARD)
    assert list(both.update_mask.paths) == ["parse_mode", "reply_markup", "media"]
    explicit = build_edit_request("j", text="t", update_mask=["text", "link_preview"])
    assert list(explicit.update_mask.paths) == ["text", "link_preview"]
    with pytest.raises(ValueError, match="changes nothing"):
        build_edit_request("j")
    with pytest.raises(ValueError, match="not both"):
        build_edit_request("j", reply_markup=KEYBOARD, remove_keyboard=True)


def test_upload_plans(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4 x")
    plan = plan_upload(path)
    assert plan.metadata == pb.UploadMetadata(
        filename="report.pdf", content_type="application/pdf", size=10
    )
    assert plan.restartable
    # A file object is read from where it stands.
    buffer = io.BytesIO(b"headerDATA")
    buffer.seek(6)
    plan = plan_upload(buffer, filename="d.bin", chunk_size=3)
    assert plan.metadata.size == 4 and plan.metadata.content_type == "application/octet-stream"
    chunks = [r.chunk for r in plan.requests()][1:]
    assert chunks == [b"DAT", b"A"]
    assert [r.chunk for r in plan.requests()][1:] == chunks  # rewound for a retry
    with pytest.raises(ValueError, match="filename"):
        plan_upload(io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="chunk_size"):
        plan_upload(path, chunk_size=2 * 1024 * 1024)
    with pytest.raises(FileNotFoundError):
        plan_upload(tmp_path / "missing.jpg")
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        with pytest.raises(ValueError, match="size="):
            plan_upload(pipe, filename="p.bin")
        plan = plan_upload(pipe, filename="p.bin", size=5)
        assert plan.metadata.size == 5 and not plan.restartable


# -- uploads --------------------------------------------------------------------------


async def test_a_file_of_several_megabytes_goes_in_chunks(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    reply = await client.upload_file(path, chunk_size=256 * 1024, timeout_s=60)
    assert (reply.size, reply.sha256) == (len(data), digest)
    assert reply.upload_id

    # The blocking client, from a file object positioned past a header, in the largest
    # chunks a gateway with its default message limit takes.
    def blocking() -> pb.UploadFileResponse:
        with NotificationClient(target(gateway[0])) as sync, path.open("rb") as f:
            f.seek(1000)
            return sync.upload_file(f, chunk_size=MAX_CHUNK_SIZE, timeout_s=60)

    again = await asyncio.to_thread(blocking)
    assert (again.size, again.sha256) == (len(data) - 1000, hashlib.sha256(data[1000:]).hexdigest())


async def test_a_pipe_uploads_with_its_size(gateway: tuple[Gateway, Stub]) -> None:
    data = os.urandom(700_000)
    read, write = os.pipe()

    def feed() -> None:
        # A refused upload closes the pipe early; the test fails on the reply instead.
        with contextlib.suppress(BrokenPipeError), os.fdopen(write, "wb") as w:
            w.write(data)

    def upload() -> pb.UploadFileResponse:
        with NotificationClient(target(gateway[0])) as sync, os.fdopen(read, "rb") as pipe:
            return sync.upload_file(pipe, filename="stream.bin", size=len(data))

    writer = threading.Thread(target=feed)
    writer.start()
    reply = await asyncio.to_thread(upload)
    writer.join()
    assert (reply.size, reply.sha256) == (len(data), hashlib.sha256(data).hexdigest())


# -- media sends ----------------------------------------------------------------------


async def test_send_a_photo_by_url(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    url = "https://example.com/cat.jpg"
    sent = await client.send("1001", "<b>A cat</b>", parse_mode="HTML", media=photo(url=url))
    job = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    assert job.kind == pb.JOB_KIND_SEND
    [message] = simulator.messages_after(chat_id="1001")
    assert message.params["photo"] == url
    assert message.params["caption"] == "<b>A cat</b>"
    assert job.telegram_message_id == message.message_id
    assert list(job.telegram_message_ids) in ([], [message.message_id])


async def test_send_an_uploaded_photo_twice(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    upload = await client.upload_file(io.BytesIO(PNG), filename="dot.png")
    assert upload.size == len(PNG)
    first = await client.send("1002", "first", media=photo(upload_id=upload))
    await wait_state(stub, first.job_id, pb.JOB_STATE_COMPLETED)
    second = await client.send("1003", "second", media=photo(upload_id=upload.upload_id))
    await wait_state(stub, second.job_id, pb.JOB_STATE_COMPLETED)
    [one] = simulator.messages_after(chat_id="1002")
    [two] = simulator.messages_after(chat_id="1003")
    assert (one.kind, one.text, two.kind, two.text) == ("photo", "first", "photo", "second")
    assert one.params["photo"]["size"] == len(PNG)  # the bytes went once...
    # ...and the second send named the file_id Telegram gave the first.
    assert isinstance(two.params["photo"], str)
    assert simulator.uploads(TOKEN).count == 1


async def test_send_a_document_by_upload_with_its_name(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    upload = await client.upload_file(io.BytesIO(b"%PDF-1.4 invoice"), filename="invoice.pdf")
    sent = await client.send("1004", "Invoice 42", media=document(upload_id=upload))
    job = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    assert job.request.media.upload_id == upload.upload_id
    [message] = simulator.messages_after(chat_id="1004")
    assert (message.kind, message.text) == ("document", "Invoice 42")
    assert message.params["document"]["file_name"] == "invoice.pdf"


async def test_send_an_album(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    album = [
        item(photo(url="https://example.com/1.jpg"), "first"),
        photo(url="https://example.com/2.jpg"),
        item(photo(url="https://example.com/3.jpg"), "third"),
    ]
    sent = await client.send("1005", media_group=album)
    job = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    assert len(job.request.media_group.items) == 3
    assert len(job.telegram_message_ids) == 3 and all(job.telegram_message_ids)
    assert "sendMediaGroup" in methods(simulator)
    shown = simulator.chat_messages("1005")
    assert [m.message_id for m in shown] == list(job.telegram_message_ids)
    assert [m.text for m in shown] == ["first", "", "third"]
    assert len({m.media_group_id for m in shown}) == 1 and shown[0].media_group_id


async def test_invalid_media_is_refused_with_its_field(client: AsyncNotificationClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.send("1006", "x" * 1025, media=photo(url="https://example.com/a.jpg"))
    assert any(field == "text" for field, _ in caught.value.violations)
    with pytest.raises(InvalidArgumentError):
        await client.send("1006", media_group=[photo(url="https://example.com/a.jpg")])


# -- edits and deletes ----------------------------------------------------------------


async def test_edit_of_a_queued_message_rewrites_it_in_place(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    sent = await client.send("1010", "draft", delay=600, reply_markup=KEYBOARD)
    job = await client.edit(sent.job_id, text="final", parse_mode="HTML")
    assert (job.job_id, job.kind, job.state) == (
        sent.job_id,
        pb.JOB_KIND_SEND,
        pb.JOB_STATE_DELAYED,
    )
    assert job.request.text == "final" and job.request.parse_mode == pb.PARSE_MODE_HTML
    assert job.request.reply_markup == KEYBOARD  # left alone: not in the mask

    job = await client.edit(sent.job_id, remove_keyboard=True)
    assert not job.request.HasField("reply_markup") and job.request.text == "final"
    stored = await client.get_job(sent.job_id)
    assert stored.request.text == "final" and not stored.request.HasField("reply_markup")

    # validate_only checks and changes nothing.
    checked = await client.edit(sent.job_id, text="other", validate_only=True)
    assert checked.job_id == sent.job_id
    assert (await client.get_job(sent.job_id)).request.text == "final"
    assert simulator.messages_after(chat_id="1010") == []


async def test_edit_of_a_queued_photo_replaces_file_and_caption(
    client: AsyncNotificationClient,
) -> None:
    sent = await client.send("1011", "old", delay=600, media=photo(url="https://e.com/a.jpg"))
    job = await client.edit(sent.job_id, text="", media=photo(url="https://e.com/b.jpg"))
    assert job.request.media.url == "https://e.com/b.jpg" and job.request.text == ""
    # Still queued, a text message may even become a photo: Telegram sees only the result.
    text = await client.send("1011", "see attached", delay=600)
    job = await client.edit(text.job_id, media=photo(url="https://e.com/c.jpg"))
    assert job.request.media.url == "https://e.com/c.jpg" and job.request.text == "see attached"


async def test_delete_of_a_queued_message_cancels_it(
    client: AsyncNotificationClient, simulator: BotApiSimulator
) -> None:
    sent = await client.send("1012", "never", delay=600)
    checked = await client.delete(sent.job_id, validate_only=True)
    assert checked.state == pb.JOB_STATE_DELAYED
    job = await client.delete(sent.job_id)
    assert (job.job_id, job.kind, job.state) == (
        sent.job_id,
        pb.JOB_KIND_SEND,
        pb.JOB_STATE_CANCELLED,
    )
    assert simulator.messages_after(chat_id="1012") == []


async def test_edit_after_delivery_is_an_edit_job(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    sent = await client.send("1013", "v1", reply_markup=KEYBOARD)
    original = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)

    edit = await client.edit(sent.job_id, text="v2")
    assert edit.kind == pb.JOB_KIND_EDIT and edit.target_job_id == sent.job_id
    assert edit.job_id != sent.job_id
    await wait_state(stub, edit.job_id, pb.JOB_STATE_COMPLETED)
    await answered(simulator, "editMessageText")
    # The send job holds what the chat shows now, keyboard kept.
    shown = await client.get_job(sent.job_id)
    assert shown.request.text == "v2" and shown.request.reply_markup == KEYBOARD
    assert shown.telegram_message_id == original.telegram_message_id
    chat = simulator.message("1013", original.telegram_message_id)
    assert chat is not None and chat.text == "v2" and chat.edit_count == 1
    assert chat.reply_markup is not None

    # Telegram cannot turn a sent text message into a photo.
    with pytest.raises(InvalidArgumentError):
        await client.edit(sent.job_id, media=photo(url="https://e.com/1.jpg"))

    drop = await client.edit(sent.job_id, remove_keyboard=True)
    await wait_state(stub, drop.job_id, pb.JOB_STATE_COMPLETED)
    await answered(simulator, "editMessageReplyMarkup")
    assert not (await client.get_job(sent.job_id)).request.HasField("reply_markup")
    chat = simulator.message("1013", original.telegram_message_id)
    assert chat is not None and not chat.reply_markup and chat.text == "v2"


async def test_caption_edit_after_delivery(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    sent = await client.send("1014", "old", media=photo(url="https://e.com/a.jpg"))
    original = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    edit = await client.edit(sent.job_id, text="new caption")
    await wait_state(stub, edit.job_id, pb.JOB_STATE_COMPLETED)
    await answered(simulator, "editMessageCaption")
    chat = simulator.message("1014", original.telegram_message_id)
    assert chat is not None and (chat.kind, chat.text) == ("photo", "new caption")


async def test_delete_after_delivery_is_a_delete_job(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    sent = await client.send("1015", "oops")
    original = await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    job = await client.delete(sent.job_id)
    assert job.kind == pb.JOB_KIND_DELETE and job.target_job_id == sent.job_id
    await wait_state(stub, job.job_id, pb.JOB_STATE_COMPLETED)
    await answered(simulator, "deleteMessage")
    assert simulator.chat_messages("1015") == []
    chat = simulator.message("1015", original.telegram_message_id)
    assert chat is not None and chat.deleted


async def test_changes_that_cannot_be(client: AsyncNotificationClient) -> None:
    with pytest.raises(NotFoundError):
        await client.edit("999999999", text="x")
    with pytest.raises(NotFoundError):
        await client.delete("999999999")
    album = await client.send(
        "1016", media_group=[photo(url="https://e.com/1.jpg"), photo(url="https://e.com/2.jpg")]
    )
    with pytest.raises(FailedPreconditionError):
        await client.edit(album.job_id, text="caption")
    text = await client.send("1016", "plain", delay=600)
    cancelled = await client.delete(text.job_id)
    assert cancelled.state == pb.JOB_STATE_CANCELLED
    with pytest.raises(FailedPreconditionError):
        await client.delete(text.job_id)


async def test_delete_of_a_delivered_album_removes_every_item(
    client: AsyncNotificationClient, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    sent = await client.send(
        "1017", media_group=[photo(url="https://e.com/1.jpg"), photo(url="https://e.com/2.jpg")]
    )
    await wait_state(stub, sent.job_id, pb.JOB_STATE_COMPLETED)
    assert len(simulator.chat_messages("1017")) == 2
    job = await client.delete(sent.job_id)
    await wait_state(stub, job.job_id, pb.JOB_STATE_COMPLETED)
    assert simulator.chat_messages("1017") == []
