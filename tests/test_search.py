"""SearchJobs (by chat through its index, by idempotency key, by text in a bounded scan)
and ListJobEvents (one job's events from its bot's stream), against a real gateway."""

from __future__ import annotations

import sys

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.embedded import EmbeddedValkey
from notigate.queue import QueueKeys
from notigate.search import MAX_EXAMINED, search_jobs
from notigate.search_token import SearchToken, Walk, encode_search_token
from notigate.simulator import BotApiSimulator
from notigate.text_search import FOLDS_TO_ASCII, TextQuery
from notigate_client import pb
from tests.conftest import (
    Stub,
    bots_settings,
    bots_simulator,
    gateway_settings,
    running_gateway,
    wait_for,
    wait_state,
)

WAITING, DELAYED, ACTIVE = pb.JOB_STATE_WAITING, pb.JOB_STATE_DELAYED, pb.JOB_STATE_ACTIVE
COMPLETED, FAILED = pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED
LATER = {"seconds": 3600}


def msg(chat: str = "42", text: str = "hi", **fields: object) -> pb.SendRequest:
    return pb.SendRequest(chat_id=chat, text=text, **fields)  # type: ignore[arg-type]


def later(chat: str = "42", text: str = "hi", **fields: object) -> pb.SendRequest:
    """A message that stays delayed for the whole test."""
    return msg(chat, text, delay=LATER, **fields)


async def send_all(stub: Stub, messages: list[pb.SendRequest]) -> list[str]:
    ids: list[str] = []
    for i in range(0, len(messages), 1000):
        reply = await stub.SendBatch(pb.SendBatchRequest(messages=messages[i : i + 1000]))
        ids += [r.job_id for r in reply.results]
    return ids


async def search(stub: Stub, **fields: object) -> pb.SearchJobsResponse:
    return await stub.SearchJobs(pb.SearchJobsRequest(**fields))  # type: ignore[arg-type]


async def search_all(stub: Stub, **fields: object) -> tuple[list[str], int]:
    """Every page's job ids, and how many pages it took."""
    ids: list[str] = []
    token, pages = "", 0
    while True:
        reply = await search(stub, page_token=token, **fields)
        ids += [j.job_id for j in reply.jobs]
        pages += 1
        token = reply.next_page_token
        if not token:
            return ids, pages


def violation(exc: grpc.aio.AioRpcError) -> error_details_pb2.FieldViolation:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0]
    raise AssertionError("no BadRequest detail")


# -- by chat ---------------------------------------------------------------


async def test_by_chat_newest_first_in_pages(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    mine = await send_all(stub, [later("100", f"m{i}") for i in range(5)])
    await send_all(stub, [later("200", "other")])
    # Another state: the chat's index holds every retained job, whatever its state.
    done = (await stub.Send(msg("100", "delivered"))).job_id
    await wait_state(stub, done, COMPLETED)
    first = await search(stub, chat_id="100", page_size=4)
    assert [j.job_id for j in first.jobs] == [done, *reversed(mine)][:4]
    assert first.next_page_token and first.examined_jobs == 4
    rest = await search(stub, chat_id="100", page_size=4, page_token=first.next_page_token)
    assert [j.job_id for j in rest.jobs] == [mine[1], mine[0]]
    assert rest.next_page_token == ""
    assert all(j.chat_id == "100" for j in [*first.jobs, *rest.jobs])
    assert (await search(stub, chat_id="300")).jobs == []


async def test_retention_removes_trimmed_jobs_from_the_chat_index(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, keep_completed=2)
    async with running_gateway(settings) as (_, stub):
        ids = []
        for i in range(5):
            ids.append((await stub.Send(msg("300", f"n{i}"))).job_id)
            await wait_state(stub, ids[-1], COMPLETED)
        found, _ = await search_all(stub, chat_id="300")
        assert found == [ids[4], ids[3]]
    index = QueueKeys.for_queue(settings.queue_name).chat_jobs("300")
    assert await redis.zrange(index, 0, -1) == [ids[3].encode(), ids[4].encode()]


async def test_stale_index_entries_are_skipped_and_dropped(
    redis: Redis, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    [job] = await send_all(stub, [later("400")])
    index = QueueKeys.for_queue(gw.settings.queue_name).chat_jobs("400")
    # Entries whose job is gone, or goes to another chat now.
    await redis.zadd(index, {"1": 1, str(int(job) + 1): int(job) + 1})
    await redis.hset(QueueKeys.for_queue(gw.settings.queue_name).job("1"), "ch", "401")
    reply = await search(stub, chat_id="400")
    assert [j.job_id for j in reply.jobs] == [job] and reply.examined_jobs == 3
    assert await redis.zrange(index, 0, -1) == [job.encode()]


async def test_a_migrated_job_moves_to_the_new_chats_index(
    redis: Redis, gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    simulator.migrate_chat("-4021", "-1004021")
    job = (await stub.Send(msg("-4021", "moved"))).job_id
    await wait_state(stub, job, COMPLETED)
    assert [j.job_id for j in (await search(stub, chat_id="-1004021")).jobs] == [job]
    assert (await search(stub, chat_id="-4021")).jobs == []
    keys = QueueKeys.for_queue(gw.settings.queue_name)
    assert await redis.exists(keys.chat_jobs("-4021")) == 0


# -- by idempotency key ------------------------------------------------------


async def test_by_key_one_job_matching_the_other_fields(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    [job] = await send_all(stub, [later("500", "Invoice 17", idempotency_key="inv-17")])
    await send_all(stub, [later("500", "Invoice 18", idempotency_key="inv-18")])
    reply = await search(stub, idempotency_key="inv-17")
    assert [j.job_id for j in reply.jobs] == [job]
    assert reply.examined_jobs == 1 and reply.next_page_token == ""
    assert reply.jobs[0].request.idempotency_key == "inv-17"
    both = await search(stub, idempotency_key="inv-17", chat_id="500", text="INVOICE 17")
    assert [j.job_id for j in both.jobs] == [job]
    assert (await search(stub, idempotency_key="inv-17", chat_id="501")).jobs == []
    assert (await search(stub, idempotency_key="inv-17", text="invoice 18")).jobs == []
    unknown = await search(stub, idempotency_key="never-used")
    assert unknown.jobs == [] and unknown.examined_jobs == 0


# -- by text ----------------------------------------------------------------


async def test_by_text_ignores_case_and_reads_captions(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    photo = pb.Media(kind=pb.MEDIA_KIND_PHOTO, url="https://example.com/a.jpg")
    album = pb.MediaGroup(
        items=[
            pb.MediaGroupItem(media=photo, caption="first"),
            pb.MediaGroupItem(media=photo, caption="The ORDER has shipped"),
        ]
    )
    ids = await send_all(
        stub,
        [
            later("600", "Your order is ready"),
            later("601", "nothing to see"),
            later("602", "Order #5 (caption)", media=photo),
            later("603", "", media_group=album),
            later("604", "Große Straße"),
            later("605", "ПРИВЕТ, order"),
        ],
    )
    found, _ = await search_all(stub, text="ORDER")
    assert found == [ids[5], ids[3], ids[2], ids[0]]
    # Full case folding: ß is "ss", Cyrillic folds too.
    assert [j.job_id for j in (await search(stub, text="STRASSE")).jobs] == [ids[4]]
    assert [j.job_id for j in (await search(stub, text="привет")).jobs] == [ids[5]]
    reply = await search(stub, text="order")
    assert reply.examined_jobs == 6 and reply.next_page_token == ""


async def test_by_text_pages_through_the_states(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    done = (await stub.Send(msg("700", "needle delivered"))).job_id
    await wait_state(stub, done, COMPLETED)
    queued = await send_all(stub, [later("700", f"needle {i}") for i in range(3)])
    await send_all(stub, [later("701", "hay") for _ in range(3)])
    found, pages = await search_all(stub, text="Needle", page_size=2)
    # The states in JobState's order (delayed before completed), newest first in each.
    assert found == [*reversed(queued), done]
    # The second page fills at the last match: the third finds nothing more.
    assert pages == 3


async def test_a_page_may_be_empty_and_have_a_next_page(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    [oldest] = await send_all(stub, [later("800", "the one")])
    await send_all(stub, [later("800", "filler") for _ in range(MAX_EXAMINED + 500)])
    first = await search(stub, text="THE ONE")
    assert first.jobs == [] and first.next_page_token
    assert first.examined_jobs == MAX_EXAMINED
    second = await search(stub, text="THE ONE", page_token=first.next_page_token)
    assert [j.job_id for j in second.jobs] == [oldest]
    assert second.examined_jobs == 501 and second.next_page_token == ""
    # With the chat, the chat's index is walked (newest first by creation) in the same
    # bounded steps.
    by_chat = await search(stub, text="the one", chat_id="800")
    assert by_chat.jobs == [] and by_chat.examined_jobs == MAX_EXAMINED
    rest = await search(stub, text="the one", chat_id="800", page_token=by_chat.next_page_token)
    assert [j.job_id for j in rest.jobs] == [oldest] and rest.next_page_token == ""


async def test_small_bounds_stop_mid_step_and_go_on_exactly(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    texts = ["a x", "b", "c x", "d x", "e", "f", "g x"]
    ids = await send_all(stub, [later("900", t) for t in texts])
    queue = gw.bots["default"].queue
    pages: list[list[str]] = []
    examined: list[int] = []
    token: SearchToken | None = None
    while True:
        page = await search_jobs(
            queue, chat_id="", query=TextQuery("X"), size=2, token=token, max_examined=3, step=2
        )
        pages.append([r.job_id for r in page.jobs])
        examined.append(page.examined)
        token = page.token
        if token is None:
            break
    # Newest first: g x, f, e (the bound); d x, c x (a full page: stops at c x); b, a x
    # and the empty states after delayed.
    assert pages == [[ids[6]], [ids[3], ids[2]], [ids[0]]]
    assert examined == [3, 2, 2]


async def test_combined_chat_and_text(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    ids = await send_all(stub, [later("910", "alpha"), later("911", "alpha"), later("910", "beta")])
    reply = await search(stub, chat_id="910", text="ALPHA")
    assert [j.job_id for j in reply.jobs] == [ids[0]]
    assert reply.examined_jobs == 2 and reply.next_page_token == ""


async def test_other_bots_jobs_are_never_returned(redis: Redis, valkey: EmbeddedValkey) -> None:
    async with (
        bots_simulator("alerts", "news") as sim,
        running_gateway(bots_settings(valkey, sim, ["alerts", "news"])) as (_, stub),
    ):
        mine = await send_all(stub, [later("42", "shared text", bot="alerts", idempotency_key="k")])
        theirs = await send_all(stub, [later("42", "shared text", bot="news", idempotency_key="k")])
        for fields in ({"chat_id": "42"}, {"text": "shared"}, {"idempotency_key": "k"}):
            a = await search(stub, bot="alerts", **fields)
            n = await search(stub, bot="news", **fields)
            assert [j.job_id for j in a.jobs] == mine, fields
            assert [j.job_id for j in n.jobs] == theirs, fields
        # A repeat of the key is the same job on a bot of its own too.
        again = await stub.Send(later("42", "shared text", bot="news", idempotency_key="k"))
        assert again.duplicate and again.job_id == theirs[0]
        # A token of one bot's search does not page another's.
        first = await search(stub, bot="alerts", chat_id="42", page_size=1)
        token = encode_search_token(SearchToken(Walk.CHAT, 0, 1.0, mine[0]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await search(stub, bot="news", chat_id="42", page_token=token)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violation(err.value).field == "page_token"
        assert first.jobs[0].job_id == mine[0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "chat_id"),
        ({"page_size": 5}, "chat_id"),
        ({"chat_id": "1", "page_size": -1}, "page_size"),
        ({"chat_id": "1", "page_size": 1001}, "page_size"),
        ({"chat_id": "1", "page_token": "not-a-token"}, "page_token"),
        ({"chat_id": "not a chat"}, "chat_id"),
        ({"text": "x" * 5000}, "text"),
        ({"chat_id": "1", "bot": "nobody"}, "bot"),
        # A chat walk's token, given to a search of every state (and the other way).
        (
            {"text": "x", "page_token": encode_search_token(SearchToken(Walk.CHAT, 0, 1.0, "7"))},
            "page_token",
        ),
        (
            {"chat_id": "1", "page_token": encode_search_token(SearchToken(Walk.STATES, 1))},
            "page_token",
        ),
    ],
)
async def test_bad_searches_are_invalid_arguments(
    gateway: tuple[Gateway, Stub], fields: dict[str, object], field: str
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search(stub, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(err.value).field == field


def test_the_table_of_characters_folding_to_ascii_is_complete() -> None:
    folds = {}
    for point in range(0x80, sys.maxunicode + 1):
        folded = chr(point).casefold()
        ascii_part = "".join(sorted({c for c in folded if c.isascii()}))
        if ascii_part:
            folds[chr(point)] = ascii_part
    assert folds == FOLDS_TO_ASCII


# -- ListJobEvents ------------------------------------------------------------


async def events_of(stub: Stub, job_id: str, **fields: object) -> pb.ListJobEventsResponse:
    return await stub.ListJobEvents(pb.ListJobEventsRequest(job_id=job_id, **fields))  # type: ignore[arg-type]


async def test_a_delivered_jobs_events_in_pages(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    job = (await stub.Send(msg("1000"))).job_id
    other = (await stub.Send(msg("1001"))).job_id
    await wait_state(stub, job, COMPLETED)
    await wait_state(stub, other, COMPLETED)
    reply = await events_of(stub, job)
    assert [e.state for e in reply.events] == [WAITING, ACTIVE, COMPLETED]
    assert {e.job_id for e in reply.events} == {job}
    assert reply.next_page_token == "" and not reply.events_trimmed
    paged: list[pb.Event] = []
    token = ""
    while True:
        page = await events_of(stub, job, page_size=1, page_token=token)
        assert len(page.events) <= 1
        paged += page.events
        token = page.next_page_token
        if not token:
            break
    assert paged == list(reply.events)


async def test_a_retried_failure_shows_its_errors(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    simulator.configure(error_rate=1.0)
    job = (await stub.Send(msg("1002", max_attempts=2))).job_id
    failed = await wait_state(stub, job, FAILED)
    events = list((await events_of(stub, job)).events)
    assert [e.state for e in events[:3]] == [WAITING, ACTIVE, DELAYED]
    assert events[-1].state == FAILED and events[-1].attempts == 2
    assert events[2].error and events[-1].error == failed.last_error
    assert [e.state for e in events].count(ACTIVE) == 2


async def test_a_trimmed_stream_says_so(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, events_max=1000)
    async with running_gateway(settings) as (_, stub):
        first = (await stub.Send(later("1003"))).job_id
        assert not (await events_of(stub, first)).events_trimmed
        await send_all(stub, [later("1004") for _ in range(3000)])
        reply = await events_of(stub, first)
        assert reply.events_trimmed and reply.events == []
        [newest] = await send_all(stub, [later("1004")])
        kept = await events_of(stub, newest)
        assert not kept.events_trimmed and [e.state for e in kept.events] == [DELAYED]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_id": ""}, "job_id"),
        ({"job_id": "abc"}, "job_id"),
        ({"job_id": "1", "page_size": 1001}, "page_size"),
        ({"job_id": "1", "page_token": "yesterday"}, "page_token"),
    ],
)
async def test_bad_event_listings_are_invalid_arguments(
    gateway: tuple[Gateway, Stub], fields: dict[str, object], field: str
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListJobEvents(pb.ListJobEventsRequest(**fields))  # type: ignore[arg-type]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(err.value).field == field


async def test_events_of_an_unknown_job_are_not_found(
    gateway: tuple[Gateway, Stub], simulator: BotApiSimulator
) -> None:
    _, stub = gateway
    job = (await stub.Send(later("1005"))).job_id
    for missing in (str(int(job) + 10**9), "nobot:5"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await events_of(stub, missing)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    async def listed() -> bool:
        return len((await events_of(stub, job)).events) == 1

    await wait_for(listed)
