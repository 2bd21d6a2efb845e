"""Chats that blocked the bot (any 403) or do not exist (400 chat not found) are
suppressed: later jobs to them fail without a request to Telegram, until the chat is
lifted with UnsuppressChat or a job is sent with ignore_suppression.

A real Valkey, a gateway on port 0 and the Bot API simulator over HTTP; the simulator's
request log shows which jobs reached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from redis.asyncio import Redis

from notigate.answers import classify_answer
from notigate.app import Gateway
from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.outcomes import PermanentError, Unreachable
from notigate.pagination import PageToken, encode_page_token
from notigate.queue import Queue, SuppressionCursor
from notigate.simulator import BotApiSimulator
from notigate.simulator.answers import answer_shape
from notigate_client import (
    AsyncNotificationClient,
    InvalidArgumentError,
    NotFoundError,
    NotificationClient,
    pb,
)
from tests.conftest import Stub, gateway_settings, running_gateway, wait_state
from tests.test_cli import cli, target
from tests.test_metrics import scrape, value

FAILED, COMPLETED = pb.JOB_STATE_FAILED, pb.JOB_STATE_COMPLETED
BLOCKED = "Forbidden: bot was blocked by the user"
NOT_FOUND = "Bad Request: chat not found"


def msg(chat: str, text: str = "hi", **kw: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text=text, **kw)  # type: ignore[arg-type]


async def send(stub: Stub, request: pb.SendRequest) -> str:
    return str((await stub.Send(request, timeout=10)).job_id)


async def suppress(stub: Stub, sim: BotApiSimulator, chat: str, status: int = 403) -> str:
    """Block ``chat`` in the simulator and send one job there: it fails and suppresses."""
    sim.block_chat(chat, status=status)
    job_id = await send(stub, msg(chat, "first"))
    job = await wait_state(stub, job_id, FAILED)
    assert job.last_error == (BLOCKED if status == 403 else NOT_FOUND)
    return job_id


async def listed(stub: Stub, page_size: int = 0) -> list[pb.SuppressedChat]:
    reply = await stub.ListSuppressedChats(pb.ListSuppressedChatsRequest(page_size=page_size))
    return list(reply.chats)


async def requests_over_http(sim: BotApiSimulator, chat: str) -> int:
    """How many Bot API requests the simulator got for ``chat`` (its control endpoint)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.base_url}/_sim/requests", params={"chat_id": chat}) as resp,
    ):
        assert resp.status == 200
        found = await resp.json()
    assert all(r["chat_id"] == chat for r in found)
    return len(found)


async def failed_events(stub: Stub, job_ids: list[str]) -> dict[str, str]:
    """The error of each job's FAILED event, read from the event stream's start."""
    errors: dict[str, str] = {}
    request = pb.WatchEventsRequest(start_cursor="0-0", job_ids=job_ids, states=[FAILED])
    call = stub.WatchEvents(request, timeout=20)
    async for response in call:
        if response.HasField("event"):
            errors[response.event.job_id] = response.event.error
        if len(errors) == len(job_ids):
            break
    call.cancel()
    return errors


# -- classification ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, b'{"ok":false,"error_code":403,"description":"' + BLOCKED.encode() + b'"}', True),
        (
            403,
            b'{"ok":false,"error_code":403,"description":"Forbidden: user is deactivated"}',
            True,
        ),
        (403, b'{"ok":false,"error_code":403}', True),
        (400, b'{"ok":false,"error_code":400,"description":"' + NOT_FOUND.encode() + b'"}', True),
        (
            400,
            b'{"ok":false,"error_code":400,"description":"Bad Request: message to edit not found"}',
            False,
        ),
        # A proxy's page says nothing about the chat: a plain permanent error.
        (403, b"<html><body>403 Forbidden</body></html>", False),
    ],
)
def test_only_telegrams_unreachable_answers_suppress(
    status: int, body: bytes, expected: bool
) -> None:
    outcome = classify_answer(status, body)
    assert isinstance(outcome, Unreachable if expected else PermanentError)


# -- delivery --------------------------------------------------------------------------


async def test_a_403_suppresses_the_chat_and_later_jobs_fail_without_a_request(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    first = await suppress(stub, simulator, "501")
    [chat] = await listed(stub)
    assert (chat.chat_id, chat.reason, chat.job_id) == ("501", BLOCKED, first)
    assert chat.suppress_time.ToMilliseconds() > 0

    soon = Duration(nanos=300_000_000)
    batch = [msg("501", "waiting 1"), msg("501", "waiting 2"), msg("501", "later", delay=soon)]
    batch.append(msg("502", "another chat"))
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    later = [r.job_id for r in reply.results[:3]]
    later.append(await send(stub, msg("501", "new")))
    for job_id in later:
        job = await wait_state(stub, job_id, FAILED)
        assert job.last_error == f"suppressed: {BLOCKED}"
        assert job.attempts == 0
    await wait_state(stub, reply.results[3].job_id, COMPLETED)

    # Only the first job ever reached the simulator; the other chat was served.
    assert len(simulator.requests_to("501")) == 1
    assert await requests_over_http(simulator, "501") == 1
    assert [m.text for m in simulator.messages] == ["another chat"]
    errors = await failed_events(stub, [first, *later])
    assert errors == {first: BLOCKED, **{j: f"suppressed: {BLOCKED}" for j in later}}

    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.suppressed_chats, stats.failed, stats.total_failed) == (1, 5, 5)
    assert (
        gw.metrics.registry.get_sample_value("notigate_jobs_suppressed_total", {"bot": "default"})
        == 4
    )


async def test_a_400_chat_not_found_suppresses_but_other_400s_do_not(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.script_answer("511", answer_shape("no_description", error_code=400))
    job = await wait_state(stub, await send(stub, msg("511")), FAILED)
    assert job.last_error == "Bad Request (error_code 400, no description)"
    assert await listed(stub) == []

    simulator.configure(missing_chats=frozenset({"512"}))
    first = await wait_state(stub, await send(stub, msg("512")), FAILED)
    assert first.last_error == NOT_FOUND
    [chat] = await listed(stub)
    assert (chat.chat_id, chat.reason) == ("512", NOT_FOUND)
    second = await wait_state(stub, await send(stub, msg("512")), FAILED)
    assert second.last_error == f"suppressed: {NOT_FOUND}"
    assert len(simulator.requests_to("512")) == 1


async def test_ignore_suppression_is_sent_and_a_403_again_refreshes_the_suppression(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    first = await suppress(stub, simulator, "521")
    [before] = await listed(stub)

    # Still blocked: the job reaches Telegram, fails with its words, suppresses anew.
    again = await send(stub, msg("521", "try anyway", ignore_suppression=True))
    job = await wait_state(stub, again, FAILED)
    assert job.last_error == BLOCKED
    assert len(simulator.requests_to("521")) == 2
    [after] = await listed(stub)
    assert after.job_id == again != first
    assert after.suppress_time.ToMilliseconds() >= before.suppress_time.ToMilliseconds()

    # Unblocked: the flagged job is delivered; an unflagged one still is not sent.
    simulator.unblock_chat("521")
    await wait_state(
        stub, await send(stub, msg("521", "flagged", ignore_suppression=True)), COMPLETED
    )
    plain = await wait_state(stub, await send(stub, msg("521", "plain")), FAILED)
    assert plain.last_error == f"suppressed: {BLOCKED}"
    assert [m.text for m in simulator.messages] == ["flagged"]


async def test_unsuppress_lets_the_next_job_deliver(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    first = await suppress(stub, simulator, "531")
    simulator.unblock_chat("531")

    checked = await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="531", validate_only=True))
    assert (checked.chat.chat_id, checked.chat.reason, checked.chat.job_id) == (
        "531",
        BLOCKED,
        first,
    )
    assert [c.chat_id for c in await listed(stub)] == ["531"]  # validate_only changed nothing

    lifted = await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="531"))
    assert lifted.chat == checked.chat
    assert await listed(stub) == []
    assert (await stub.GetStats(pb.GetStatsRequest())).suppressed_chats == 0
    await wait_state(stub, await send(stub, msg("531", "welcome back")), COMPLETED)
    assert [m.text for m in simulator.messages] == ["welcome back"]


async def test_an_edit_refused_with_403_suppresses_the_chat(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    original = await send(stub, msg("541", "order placed"))
    await wait_state(stub, original, COMPLETED)
    simulator.block_chat("541")
    reply = await stub.EditMessage(pb.EditMessageRequest(job_id=original, text="shipped"))
    edit = await wait_state(stub, reply.job.job_id, FAILED)
    assert edit.last_error == BLOCKED
    [chat] = await listed(stub)
    assert (chat.chat_id, chat.job_id) == ("541", edit.job_id)


async def test_an_album_refused_midway_suppresses_the_chat(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.fail_album_item("-100551", 2, BLOCKED)
    items = [
        pb.MediaGroupItem(
            media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, url=f"https://example.com/{i}.jpg"),
            caption=f"#{i}",
        )
        for i in range(3)
    ]
    request = pb.SendRequest(chat_id="-100551", media_group=pb.MediaGroup(items=items))
    job = await wait_state(stub, await send(stub, request), FAILED)
    assert job.last_error == BLOCKED
    assert [m.text for m in simulator.chat_messages("-100551")] == ["#0"]
    [chat] = await listed(stub)
    assert (chat.chat_id, chat.reason) == ("-100551", BLOCKED)


# -- the RPCs ----------------------------------------------------------------------------


async def test_list_suppressed_chats_pages_newest_first(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    for chat in ("561", "562", "563"):
        await suppress(stub, simulator, chat)
    everything = await listed(stub)
    times = [(c.suppress_time.ToMilliseconds(), c.chat_id) for c in everything]
    assert times == sorted(times, reverse=True) and len(times) == 3

    seen: list[str] = []
    token = ""
    for _ in range(3):
        page = await stub.ListSuppressedChats(
            pb.ListSuppressedChatsRequest(page_size=1, page_token=token)
        )
        assert len(page.chats) == 1
        seen.append(page.chats[0].chat_id)
        token = page.next_page_token
    assert token == ""
    assert seen == [c.chat_id for c in everything]

    bad = [
        pb.ListSuppressedChatsRequest(page_token="not-a-token"),
        pb.ListSuppressedChatsRequest(page_token=encode_page_token(PageToken(1, 1.0, "5"))),
        pb.ListSuppressedChatsRequest(page_size=1001),
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListSuppressedChats(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_chats_suppressed_in_the_same_ms_page_without_loss_or_repeat(redis: Redis) -> None:
    # Written as fail.lua writes them, all at one time: the cursor's chat id decides.
    queue = Queue(redis, Settings(queue_name="ties"))
    chats = [f"{n}" for n in range(570, 577)]
    for chat in chats:
        await redis.hset(queue.keys.suppressed, chat, f'{{"r":"x","t":1000,"j":"{chat}"}}')
        await redis.zadd(queue.keys.suppressed_by_time, {chat: 1000})
    await redis.hset(queue.keys.suppressed, "9", '{"r":"x","t":900,"j":"1"}')
    await redis.zadd(queue.keys.suppressed_by_time, {"9": 900})
    seen: list[str] = []
    after: SuppressionCursor | None = None
    while True:
        page, after = await queue.suppressed(after, 2)
        seen += [c.chat_id for c in page]
        if after is None:
            break
    assert seen == [*sorted(chats, reverse=True), "9"]


async def test_unsuppress_refuses_unknown_and_invalid_chats(
    gateway: tuple[Gateway, Stub],
) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(target(gw)) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.unsuppress_chat("581")
        assert (missing.value.resource_type, missing.value.resource_name) == ("chat", "581")
        assert missing.value.reason == "CHAT_NOT_SUPPRESSED"
        with pytest.raises(NotFoundError):
            await client.unsuppress_chat(581, validate_only=True)
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.unsuppress_chat("not a chat")
        assert [field for field, _ in invalid.value.violations] == ["chat_id"]


async def test_both_clients_list_and_lift_suppressions(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    await suppress(stub, simulator, "591")
    await suppress(stub, simulator, "592")
    async with AsyncNotificationClient(target(gw)) as client:
        page = await client.list_suppressed_chats(page_size=1)
        assert len(page.chats) == 1 and page.next_page_token
        rest = await client.list_suppressed_chats(page_token=page.next_page_token)
        assert {page.chats[0].chat_id, rest.chats[0].chat_id} == {"591", "592"}
        lifted = await client.unsuppress_chat("591")
        assert lifted.chat_id == "591" and lifted.reason == BLOCKED

    def blocking() -> tuple[list[str], str]:
        with NotificationClient(target(gw)) as sync:
            listed_now = [c.chat_id for c in sync.list_suppressed_chats().chats]
            return listed_now, sync.unsuppress_chat(592).chat_id

    assert await asyncio.to_thread(blocking) == (["592"], "592")
    assert await listed(stub) == []


# -- metrics and the command line ----------------------------------------------------------


@pytest.fixture
async def metered(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> AsyncIterator[tuple[Gateway, Stub]]:
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as pair:
        yield pair


async def test_metrics_count_jobs_failed_because_suppressed(
    metered: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = metered
    await suppress(stub, simulator, "601")
    for text in ("a", "b"):
        await wait_state(stub, await send(stub, msg("601", text)), FAILED)
    got = await scrape(gw.metrics_port)
    assert value(got, "notigate_jobs_suppressed_total") == 2
    assert value(got, "notigate_jobs_failed_total") == 3
    assert value(got, "notigate_telegram_requests_total", outcome="unreachable") == 1


async def test_cli_lists_and_removes_suppressed_chats(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, stub = gateway
    code, out, _ = await cli(capsys, "suppressed", "list", "--target", target(gw))
    assert code == 0 and out.strip() == "no suppressed chats"
    first = await suppress(stub, simulator, "611")

    code, out, _ = await cli(capsys, "suppressed", "list", "--target", target(gw))
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["CHAT", "SINCE", "JOB", "REASON"]
    assert row.split()[0] == "611" and row.split()[3] == first and row.endswith(BLOCKED)
    code, out, _ = await cli(capsys, "suppressed", "list", "--json", "--target", target(gw))
    assert code == 0 and '"chat_id": "611"' in out

    args = ["suppressed", "remove", "611", "--target", target(gw)]
    code, out, _ = await cli(capsys, *args, "--dry-run")
    assert code == 0 and "nothing changed" in out
    assert [c.chat_id for c in await listed(stub)] == ["611"]
    code, out, _ = await cli(capsys, *args)
    assert code == 0 and out.strip() == f"chat 611: no longer suppressed (was: {BLOCKED})"
    assert await listed(stub) == []
    code, _, err = await cli(capsys, *args)
    assert code == 1 and "NOT_FOUND" in err and "611" in err
