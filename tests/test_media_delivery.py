"""Media end to end: a real gateway on port 0, real Valkey, the Bot API simulator over
real HTTP. Uploads in chunks, one upload reused by file_id, albums (whole and partly
sent), edits and deletes before and after delivery."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from redis.asyncio import Redis

from notigate.config import Limits
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import TOKEN, Stub, gateway_settings, running_gateway, wait_state

CHUNK = 256 * 1024


def _chunks(data: bytes, filename: str) -> Iterator[pb.UploadFileRequest]:
    yield pb.UploadFileRequest(
        metadata=pb.UploadMetadata(filename=filename, content_type="", size=len(data))
    )
    for at in range(0, len(data), CHUNK):
        yield pb.UploadFileRequest(chunk=data[at : at + CHUNK])


async def upload(stub: Stub, data: bytes, filename: str = "report.pdf") -> pb.UploadFileResponse:
    async def stream() -> AsyncIterator[pb.UploadFileRequest]:
        for message in _chunks(data, filename):
            yield message

    reply: pb.UploadFileResponse = await stub.UploadFile(stream(), timeout=30)
    return reply


def photo_url(url: str = "https://example.com/a.jpg") -> pb.Media:
    return pb.Media(kind=pb.MEDIA_KIND_PHOTO, url=url)


async def send(stub: Stub, request: pb.SendRequest) -> str:
    reply = await stub.Send(request, timeout=10)
    return str(reply.job_id)


async def test_a_photo_by_url_goes_with_its_caption(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    job_id = await send(stub, pb.SendRequest(chat_id="42", text="Order #1", media=photo_url()))
    job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    [message] = simulator.messages_after(0, "42")
    assert (message.kind, message.text) == ("photo", "Order #1")
    assert list(job.telegram_message_ids) == [message.message_id]
    assert job.kind == pb.JOB_KIND_SEND


async def test_one_upload_sent_to_many_chats_reaches_telegram_once(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    data = os.urandom(3 * 1024 * 1024 + 17)
    uploaded = await upload(stub, data)
    assert uploaded.size == len(data)
    assert uploaded.sha256 == hashlib.sha256(data).hexdigest()
    media = pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, upload_id=uploaded.upload_id)
    reply = await stub.SendBatch(
        pb.SendBatchRequest(
            messages=[pb.SendRequest(chat_id=str(100 + i), media=media) for i in range(20)]
        ),
        timeout=10,
    )
    for result in reply.results:
        await wait_state(stub, result.job_id, pb.JOB_STATE_COMPLETED)
    sent = simulator.messages_after(0)
    assert len(sent) == 20
    assert {m.kind for m in sent} == {"document"}
    # The bytes went up once; every later send used Telegram's file_id of them.
    assert simulator.uploads(TOKEN).count == 1
    assert simulator.uploads(TOKEN).bytes == len(data)
    assert len({m.file_id for m in sent}) == 1


async def test_an_album_arrives_as_one_group_with_every_message_id(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    items = [
        pb.MediaGroupItem(media=photo_url(f"https://example.com/{i}.jpg"), caption=f"#{i}")
        for i in range(3)
    ]
    job_id = await send(
        stub, pb.SendRequest(chat_id="-1001", media_group=pb.MediaGroup(items=items))
    )
    job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    sent = simulator.messages_after(0, "-1001")
    assert [m.text for m in sent] == ["#0", "#1", "#2"]
    assert len({m.media_group_id for m in sent}) == 1
    assert list(job.telegram_message_ids) == [m.message_id for m in sent]


async def test_a_partly_sent_album_is_finished_without_resending_its_first_items(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.fail_album_item("-1002", 3, "Too Many Requests: retry after 1")
    items = [
        pb.MediaGroupItem(media=photo_url(f"https://example.com/{i}.jpg"), caption=f"#{i}")
        for i in range(4)
    ]
    job_id = await send(
        stub, pb.SendRequest(chat_id="-1002", media_group=pb.MediaGroup(items=items))
    )
    job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    # Items 1-2 went with the first attempt, 3-4 with the second: each exactly once.
    assert [m.text for m in simulator.chat_messages("-1002")] == ["#0", "#1", "#2", "#3"]
    ids = list(job.telegram_message_ids)
    assert len(ids) == 4 and ids[:2] == [0, 0] and all(ids[2:])
    assert job.attempts == 0


async def test_an_album_item_with_a_bad_url_fails_the_job_with_telegrams_words(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    items = [
        pb.MediaGroupItem(media=photo_url("https://example.com/ok.jpg")),
        pb.MediaGroupItem(media=photo_url("https://files.invalid/x.jpg")),
    ]
    job_id = await send(
        stub, pb.SendRequest(chat_id="-1003", media_group=pb.MediaGroup(items=items))
    )
    job = await wait_state(stub, job_id, pb.JOB_STATE_FAILED)
    assert "failed to send message #2" in job.last_error
    assert len(simulator.chat_messages("-1003")) == 1


async def test_an_edit_before_delivery_rewrites_the_queued_message(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    request = pb.SendRequest(chat_id="43", text="Your order is packed")
    request.delay.FromMilliseconds(1500)
    job_id = await send(stub, request)
    reply = await stub.EditMessage(
        pb.EditMessageRequest(job_id=job_id, text="Your order is shipped"), timeout=10
    )
    assert reply.job.job_id == job_id and reply.job.kind == pb.JOB_KIND_SEND
    assert reply.job.request.text == "Your order is shipped"
    await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    [message] = simulator.chat_messages("43")
    assert (message.text, message.edit_count) == ("Your order is shipped", 0)


async def test_an_edit_after_delivery_is_an_edit_job_and_not_modified_is_success(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    keyboard = pb.InlineKeyboardMarkup(
        rows=[
            pb.InlineKeyboardRow(
                buttons=[pb.InlineKeyboardButton(text="Track", url="https://t.me")]
            )
        ]
    )
    job_id = await send(stub, pb.SendRequest(chat_id="44", text="Packed", reply_markup=keyboard))
    original = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    reply = await stub.EditMessage(pb.EditMessageRequest(job_id=job_id, text="Shipped"), timeout=10)
    edit = reply.job
    assert edit.kind == pb.JOB_KIND_EDIT and edit.target_job_id == job_id
    done = await wait_state(stub, edit.job_id, pb.JOB_STATE_COMPLETED)
    assert done.telegram_message_id == original.telegram_message_id
    message = simulator.message("44", original.telegram_message_id)
    assert message is not None and message.text == "Shipped" and message.edit_count == 1
    # The keyboard the edit left alone is still there (editMessageText would drop it).
    assert message.reply_markup is not None
    again = await stub.EditMessage(pb.EditMessageRequest(job_id=job_id, text="Shipped"), timeout=10)
    await wait_state(stub, again.job.job_id, pb.JOB_STATE_COMPLETED)
    # Removing the keyboard: named in the mask, left unset.
    bare = await stub.EditMessage(
        pb.EditMessageRequest(job_id=job_id, update_mask=FieldMask(paths=["reply_markup"])),
        timeout=10,
    )
    await wait_state(stub, bare.job.job_id, pb.JOB_STATE_COMPLETED)
    message = simulator.message("44", original.telegram_message_id)
    assert message is not None and message.reply_markup is None and message.text == "Shipped"
    stored = await stub.GetJob(pb.GetJobRequest(job_id=job_id))
    assert stored.job.request.text == "Shipped" and not stored.job.request.HasField("reply_markup")


async def test_an_edit_while_the_original_is_in_flight_waits_for_its_delivery(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.configure(latency_s=0.5)
    job_id = await send(stub, pb.SendRequest(chat_id="45", text="v1"))
    await wait_state(stub, job_id, pb.JOB_STATE_ACTIVE)
    reply = await stub.EditMessage(pb.EditMessageRequest(job_id=job_id, text="v2"), timeout=10)
    assert reply.job.kind == pb.JOB_KIND_EDIT
    await wait_state(stub, reply.job.job_id, pb.JOB_STATE_COMPLETED)
    [message] = simulator.chat_messages("45")
    assert message.text == "v2"


async def test_a_delete_before_delivery_cancels_and_after_it_deletes(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    queued = pb.SendRequest(chat_id="46", text="never")
    queued.delay.FromSeconds(3600)
    queued_id = await send(stub, queued)
    reply = await stub.DeleteMessage(pb.DeleteMessageRequest(job_id=queued_id), timeout=10)
    assert reply.job.job_id == queued_id and reply.job.state == pb.JOB_STATE_CANCELLED
    sent_id = await send(stub, pb.SendRequest(chat_id="46", text="oops"))
    original = await wait_state(stub, sent_id, pb.JOB_STATE_COMPLETED)
    reply = await stub.DeleteMessage(pb.DeleteMessageRequest(job_id=sent_id), timeout=10)
    assert reply.job.kind == pb.JOB_KIND_DELETE and reply.job.target_job_id == sent_id
    await wait_state(stub, reply.job.job_id, pb.JOB_STATE_COMPLETED)
    message = simulator.message("46", original.telegram_message_id)
    assert message is not None and message.deleted
    assert simulator.chat_messages("46") == []


async def test_deletes_older_than_48_hours_are_refused_here_or_by_telegram(
    gateway: tuple[object, Stub], simulator: BotApiSimulator, redis: Redis
) -> None:
    gw, stub = gateway
    job_id = await send(stub, pb.SendRequest(chat_id="47", text="old news"))
    await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    # Telegram's clock moved on 49 hours, the gateway's record did not: Telegram refuses.
    simulator.advance_clock(49 * 3600)
    reply = await stub.DeleteMessage(pb.DeleteMessageRequest(job_id=job_id), timeout=10)
    failed = await wait_state(stub, reply.job.job_id, pb.JOB_STATE_FAILED)
    assert "message can't be deleted" in failed.last_error
    # Delivered 49 hours ago by the gateway's record: refused before anything is queued.
    key = gw.queue.keys.job(job_id)  # type: ignore[attr-defined]
    delivered = int(await redis.hget(key, "d") or 0)
    await redis.hset(key, "d", delivered - 49 * 3600 * 1000)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.DeleteMessage(pb.DeleteMessageRequest(job_id=job_id), timeout=10)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "48 hours" in str(refused.value.details())


async def test_edits_and_deletes_of_undelivered_or_wrong_jobs_are_refused(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.block_chat("48")
    job_id = await send(stub, pb.SendRequest(chat_id="48", text="blocked"))
    await wait_state(stub, job_id, pb.JOB_STATE_FAILED)
    for call in (
        stub.EditMessage(pb.EditMessageRequest(job_id=job_id, text="x"), timeout=10),
        stub.DeleteMessage(pb.DeleteMessageRequest(job_id=job_id), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    sent_id = await send(stub, pb.SendRequest(chat_id="49", text="text"))
    await wait_state(stub, sent_id, pb.JOB_STATE_COMPLETED)
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.EditMessage(pb.EditMessageRequest(job_id=sent_id, media=photo_url()), timeout=10)
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await stub.EditMessage(pb.EditMessageRequest(job_id=sent_id), timeout=10)
    assert nothing.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_album_rules_and_missing_uploads_are_checked_at_send(
    gateway: tuple[object, Stub],
) -> None:
    _, stub = gateway
    mixed = pb.MediaGroup(
        items=[
            pb.MediaGroupItem(media=photo_url()),
            pb.MediaGroupItem(
                media=pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, url="https://example.com/a.pdf")
            ),
        ]
    )
    bad = [
        pb.SendRequest(chat_id="1", media_group=mixed),
        pb.SendRequest(chat_id="1", media_group=pb.MediaGroup(items=[mixed.items[0]])),
        pb.SendRequest(
            chat_id="1",
            media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, upload_id="NoSuchUpload0000"),
        ),
        pb.SendRequest(chat_id="1", text="x" * 1025, media=photo_url()),
        pb.SendRequest(chat_id="1", media=pb.Media(url="https://example.com/a.jpg")),
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Send(request, timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, request


async def test_uploads_past_the_budget_are_refused_and_leave_nothing(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(
        valkey, simulator, upload_max_bytes=1 << 20, upload_budget_bytes=1 << 20
    )
    async with running_gateway(settings) as (gw, stub):
        first = await upload(stub, os.urandom(600_000))
        held = int(await redis.get(gw.queue.keys.prefix + "upload_bytes") or 0)  # type: ignore[union-attr]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(stub, os.urandom(600_000))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(await redis.get(gw.queue.keys.prefix + "upload_bytes") or 0) == held  # type: ignore[union-attr]
        assert first.size == 600_000


async def test_a_photo_over_10_mb_is_refused_at_send_and_goes_as_a_document(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    uploaded = await upload(stub, os.urandom(10_000_001), "scan.jpg")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Send(
            pb.SendRequest(
                chat_id="5", media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, upload_id=uploaded.upload_id)
            ),
            timeout=10,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "send it as a document" in str(refused.value.details())
    job_id = await send(
        stub,
        pb.SendRequest(
            chat_id="5", media=pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, upload_id=uploaded.upload_id)
        ),
    )
    await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    assert [m.kind for m in simulator.messages_after(0, "5")] == ["document"]


async def test_bad_urls_and_unknown_file_ids_fail_with_telegrams_description(
    gateway: tuple[object, Stub],
) -> None:
    _, stub = gateway
    bad_url = await send(
        stub, pb.SendRequest(chat_id="50", media=photo_url("https://cdn.invalid/p.jpg"))
    )
    unknown = await send(
        stub,
        pb.SendRequest(
            chat_id="51", media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, file_id="AgACAgIAAx")
        ),
    )
    failed = await wait_state(stub, bad_url, pb.JOB_STATE_FAILED)
    assert "failed to get HTTP URL content" in failed.last_error
    failed = await wait_state(stub, unknown, pb.JOB_STATE_FAILED)
    assert "wrong file identifier" in failed.last_error


async def test_a_file_id_telegram_no_longer_takes_is_forgotten_and_the_bytes_go_again(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    uploaded = await upload(stub, os.urandom(100_000))
    media = pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, upload_id=uploaded.upload_id)
    first = await send(stub, pb.SendRequest(chat_id="52", media=media))
    await wait_state(stub, first, pb.JOB_STATE_COMPLETED)
    [sent] = simulator.messages_after(0, "52")
    assert sent.file_id is not None and simulator.revoke_file_id(sent.file_id)
    job = await wait_state(
        stub, await send(stub, pb.SendRequest(chat_id="53", media=media)), pb.JOB_STATE_COMPLETED
    )
    # One attempt refused by file_id, the next sent the bytes again.
    assert job.attempts == 1
    assert simulator.uploads(TOKEN).count == 2


async def test_albums_count_every_item_so_telegram_never_answers_429(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    # A group takes 20 messages per 2 s here, on both sides: two albums of 10 fill it,
    # so a third must wait (counted as one message each, it would go at once: 429).
    simulator.configure(group_rate=20, group_window_s=2.0)
    settings = gateway_settings(
        valkey, simulator, limits=Limits(group_rate=20, group_window_ms=2000)
    )
    items = [
        pb.MediaGroupItem(media=photo_url(f"https://example.com/{i}.jpg"), caption=f"#{i}")
        for i in range(10)
    ]
    async with running_gateway(settings) as (_, stub):
        ids = [
            await send(
                stub, pb.SendRequest(chat_id="-1009", media_group=pb.MediaGroup(items=items))
            )
            for _ in range(3)
        ]
        for job_id in ids:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    assert len(simulator.chat_messages("-1009")) == 30
    assert simulator.count_status(429) == 0
