"""Several bots in one gateway: routing by name and by job id, per-bot limits, fairness,
token binding, per-bot health and stats."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_status import rpc_status
from redis.asyncio import Redis

from notigate.config import BotSettings, Limits, Settings, TokenBinding
from notigate.embedded import EmbeddedValkey
from notigate.errors import QueueUnavailable, StoreError
from notigate.health import BotHealth, HealthMonitor, HealthReason
from notigate.sender import TelegramSender
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import (
    Stub,
    bot_token,
    bots_settings,
    bots_simulator,
    running_gateway,
    wait_for,
    wait_state,
)

COMPLETED = pb.JOB_STATE_COMPLETED
BOTS = ("default", "support", "alerts")


@pytest.fixture
async def sim() -> AsyncIterator[BotApiSimulator]:
    async with bots_simulator(*BOTS, "solo", "a", "b") as simulator:
        yield simulator


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo")


def _fields(err: grpc.aio.AioRpcError) -> list[str]:
    """The fields a BadRequest detail names."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [v.field for v in bad.field_violations]
    return out


async def _send(stub: Stub, chat: str, text: str, bot: str = "") -> str:
    reply = await stub.Send(pb.SendRequest(chat_id=chat, text=text, bot=bot))
    return reply.job_id


async def test_each_bot_sends_with_its_own_token_and_ids_name_the_bot(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (_gw, stub):
        plain = await _send(stub, "10", "to default")
        named = await _send(stub, "10", "to support", bot="support")
        alert = await _send(stub, "10", "to alerts", bot="alerts")
        assert plain.isdigit()
        assert named.startswith("support:") and alert.startswith("alerts:")
        for job_id, bot in ((plain, "default"), (named, "support"), (alert, "alerts")):
            job = await wait_state(stub, job_id, COMPLETED)
            assert job.bot == bot and job.job_id == job_id
        by_bot = {m.text: m.bot_id for m in sim.messages}
        assert by_bot == {
            "to default": sim.bot_id(bot_token("default")),
            "to support": sim.bot_id(bot_token("support")),
            "to alerts": sim.bot_id(bot_token("alerts")),
        }
        # Each bot's queue lives under its own hash tag (one cluster slot per bot).
        tags = {key.split(b"}")[0] for key in await redis.keys("*job:*")}
        assert tags == {
            b"{notigate:default",
            b"{notigate:default:support",
            b"{notigate:default:alerts",
        }


async def test_calls_about_a_job_find_its_bot_by_the_id(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (_gw, stub):
        delayed = pb.SendRequest(chat_id="11", text="later", bot="support")
        delayed.delay.FromSeconds(3600)
        job_id = (await stub.Send(delayed)).job_id
        job = (await stub.CancelJob(pb.CancelJobRequest(job_id=job_id))).job
        assert job.state == pb.JOB_STATE_CANCELLED and job.bot == "support"
        listed = await stub.ListJobs(
            pb.ListJobsRequest(state=pb.JOB_STATE_CANCELLED, bot="support")
        )
        assert [j.job_id for j in listed.jobs] == [job_id]
        assert not (await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_CANCELLED))).jobs
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(pb.GetJobRequest(job_id="nobody:5"))
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert "support" in (err.value.details() or "")


async def test_an_unknown_or_missing_bot_is_refused_naming_the_bots(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, ("a", "b"))) as (_gw, stub):
        for bot in ("nope", ""):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _send(stub, "12", "x", bot=bot)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert _reason(err.value) == "BOT_UNKNOWN"
            assert "a, b" in (err.value.details() or "")
        batch = pb.SendBatchRequest(
            messages=[
                pb.SendRequest(chat_id="12", text="x", bot="a"),
                pb.SendRequest(chat_id="12", text="y", bot="b"),
            ]
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SendBatch(batch)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert _fields(err.value) == ["messages[1].bot"]
        stats = await stub.GetStats(pb.GetStatsRequest())
        assert stats.total_enqueued == 0


async def test_the_only_bot_is_the_one_an_empty_name_picks(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, ("solo",))) as (_gw, stub):
        job_id = await _send(stub, "13", "hi")
        assert job_id.startswith("solo:")
        await wait_state(stub, job_id, COMPLETED)


async def test_stats_sum_the_bots_and_break_them_down(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (_gw, stub):
        ids = [await _send(stub, "14", "one", bot="support")]
        ids += [await _send(stub, str(15 + i), "two", bot="alerts") for i in range(2)]
        for job_id in ids:
            await wait_state(stub, job_id, COMPLETED)
        total = await stub.GetStats(pb.GetStatsRequest())
        assert total.total_sent == 3 and total.completed == 3
        per_bot = {b.bot: b.stats.total_sent for b in total.bots}
        assert per_bot == {"default": 0, "support": 1, "alerts": 2}
        assert all(b.token_ok for b in total.bots)
        assert total.global_rate == sum(b.stats.global_rate for b in total.bots)
        one = await stub.GetStats(pb.GetStatsRequest(bot="alerts"))
        assert one.total_sent == 2 and not one.bots


# A low bot-wide rate on both sides (the gateway's and the simulator's), so a short test
# fills many windows.
RATE = 5


def _slow_bots(valkey: EmbeddedValkey, sim: BotApiSimulator, names: Sequence[str]) -> Settings:
    sim.configure(global_rate=RATE, private_rate=1000)
    # A wide margin: these tests are about whose limit a send counts against, not about how
    # much send jitter (on a busy shared machine, two replicas) the margin absorbs.
    limits = Limits(global_rate=RATE, private_rate=1000, global_margin_ms=200)
    bots = tuple(BotSettings(n, bot_token(n), limits=limits) for n in names)
    return bots_settings(valkey, sim, names).replace(bots=bots)


async def _deliver_backlogs(stub: Stub, names: Sequence[str], n: int) -> None:
    """Queue ``n`` messages for each bot (a chat each) and wait until all are delivered."""
    for bot in names:
        batch = [pb.SendRequest(chat_id=str(100 + i), text=bot, bot=bot) for i in range(n)]
        await stub.SendBatch(pb.SendBatchRequest(messages=batch))

    async def delivered() -> bool:
        return (await stub.GetStats(pb.GetStatsRequest())).total_sent == len(names) * n

    await wait_for(delivered)


def _sent_times(sim: BotApiSimulator) -> dict[int, list[float]]:
    times: dict[int, list[float]] = defaultdict(list)
    for message in sim.messages:
        times[message.bot_id].append(message.received_at)
    return times


async def test_several_bots_at_once_each_keep_their_own_limit(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    n = 3 * RATE
    async with running_gateway(_slow_bots(valkey, sim, ("a", "b"))) as (_gw, stub):
        await _deliver_backlogs(stub, ("a", "b"), n)
    assert not [r for r in sim.requests if r.status == 429]
    times = _sent_times(sim)
    assert sorted(len(t) for t in times.values()) == [n, n]
    assert all(_most_in_a_window(sent, 1.0) <= RATE for sent in times.values())
    # Both bots delivered side by side, neither after the other's backlog.
    a, b = times.values()
    assert min(a) < max(b) and min(b) < max(a)


async def test_replicas_share_each_bots_limit(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    n = 3 * RATE
    settings = _slow_bots(valkey, sim, ("a", "b"))
    async with running_gateway(settings) as (_one, stub), running_gateway(settings):
        await _deliver_backlogs(stub, ("a", "b"), n)
    assert not [r for r in sim.requests if r.status == 429]
    times = _sent_times(sim)
    assert sorted(len(t) for t in times.values()) == [n, n]
    assert all(_most_in_a_window(sent, 1.0) <= RATE for sent in times.values())


def _most_in_a_window(times: Sequence[float], window_s: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_one_bots_backlog_does_not_delay_another_bot(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    sim.configure(global_rate=2)
    limits = Limits(global_rate=2)
    bots = tuple(BotSettings(n, bot_token(n), limits=limits) for n in ("a", "b"))
    settings = bots_settings(valkey, sim, ("a", "b")).replace(bots=bots)
    async with running_gateway(settings) as (_gw, stub):
        backlog = [pb.SendRequest(chat_id=str(200 + i), text="bulk", bot="a") for i in range(500)]
        await stub.SendBatch(pb.SendBatchRequest(messages=backlog))
        urgent = await _send(stub, "300", "urgent", bot="b")
        await wait_state(stub, urgent, COMPLETED)
        a = await stub.GetStats(pb.GetStatsRequest(bot="a"))
        # Bot a is still working through its backlog at its own pace.
        assert a.waiting + a.active > 400


async def test_a_token_bound_to_bots_may_use_only_those(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    bound, hashed, free = "token-for-support", "token-for-alerts", "token-for-all"
    bindings = (
        TokenBinding(hashlib.sha256(bound.encode()).digest(), frozenset({"support"})),
        TokenBinding(hashlib.sha256(hashed.encode()).digest(), frozenset({"alerts"})),
    )
    settings = bots_settings(valkey, sim, BOTS, api_tokens=(free,), token_bindings=bindings)
    async with running_gateway(settings) as (_gw, stub):

        def auth(token: str) -> tuple[tuple[str, str]]:
            return (("authorization", f"Bearer {token}"),)

        own = await stub.Send(
            pb.SendRequest(chat_id="20", text="x", bot="support"), metadata=auth(bound)
        )
        alerts = await stub.Send(
            pb.SendRequest(chat_id="20", text="x", bot="alerts"), metadata=auth(hashed)
        )
        anything = await stub.Send(pb.SendRequest(chat_id="20", text="y"), metadata=auth(free))
        assert anything.job_id.isdigit()
        refused = [
            stub.Send(pb.SendRequest(chat_id="20", text="x", bot="alerts"), metadata=auth(bound)),
            stub.Send(pb.SendRequest(chat_id="20", text="x"), metadata=auth(bound)),
            stub.GetJob(pb.GetJobRequest(job_id=alerts.job_id), metadata=auth(bound)),
            stub.CancelJob(pb.CancelJobRequest(job_id=own.job_id), metadata=auth(hashed)),
            stub.GetStats(pb.GetStatsRequest(bot="default"), metadata=auth(bound)),
        ]
        for call in refused:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert _reason(err.value) == "BOT_NOT_ALLOWED"
        mine = await stub.GetStats(pb.GetStatsRequest(), metadata=auth(bound))
        assert [b.bot for b in mine.bots] == ["support"]
        every = await stub.GetStats(pb.GetStatsRequest(), metadata=auth(free))
        assert [b.bot for b in every.bots] == list(BOTS)
        assert every.total_enqueued == 3
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStats(pb.GetStatsRequest(), metadata=auth("stranger"))
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_rejected_token_stops_its_bot_only(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (gw, stub):
        sim.revoke_token(bot_token("support"))
        held = await _send(stub, "30", "held", bot="support")
        health = gw.health
        assert health is not None

        async def rejected() -> bool:
            return not health.bots["support"].token_ok

        await wait_for(rejected)
        await health.publish()
        served = await _send(stub, "30", "goes", bot="alerts")
        await wait_state(stub, served, COMPLETED)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            check = health_pb2_grpc.HealthStub(channel)

            async def status(service: str) -> int:
                reply = await check.Check(health_pb2.HealthCheckRequest(service=service))
                return int(reply.status)

            assert await status("") == health_pb2.HealthCheckResponse.SERVING
            assert await status("bot/support") == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await status("bot/alerts") == health_pb2.HealthCheckResponse.SERVING
        stats = await stub.GetStats(pb.GetStatsRequest())
        support = next(b for b in stats.bots if b.bot == "support")
        assert not support.token_ok
        assert any(w.startswith("bot support: bot token rejected") for w in stats.warnings)
        job = (await stub.GetJob(pb.GetJobRequest(job_id=held))).job
        assert job.state == pb.JOB_STATE_WAITING and job.attempts == 0


async def test_suppression_and_uploads_are_each_bots_own(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (_gw, stub):
        sim.block_chat("40")
        blocked = await _send(stub, "40", "first", bot="support")
        await wait_state(stub, blocked, pb.JOB_STATE_FAILED)
        sim.unblock_chat("40")
        # The chat blocked bot support, not bot alerts.
        other = await _send(stub, "40", "other bot", bot="alerts")
        await wait_state(stub, other, COMPLETED)
        again = await _send(stub, "40", "again", bot="support")
        job = await wait_state(stub, again, pb.JOB_STATE_FAILED)
        assert job.last_error.startswith("suppressed")
        listed = await stub.ListSuppressedChats(pb.ListSuppressedChatsRequest(bot="support"))
        assert [(c.chat_id, c.bot) for c in listed.chats] == [("40", "support")]
        assert not (
            await stub.ListSuppressedChats(pb.ListSuppressedChatsRequest(bot="alerts"))
        ).chats

        upload = await stub.UploadFile(_upload_stream(b"%PDF-1.4 invoice", bot="support"))
        doc = pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, upload_id=upload.upload_id)
        sent = await stub.Send(
            pb.SendRequest(chat_id="41", text="invoice", media=doc, bot="support")
        )
        await wait_state(stub, sent.job_id, COMPLETED)
        # Telegram's file ids are per bot: another bot's messages cannot use the upload.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Send(pb.SendRequest(chat_id="41", text="invoice", media=doc, bot="alerts"))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_events_are_watched_per_bot(
    redis: Redis, valkey: EmbeddedValkey, sim: BotApiSimulator
) -> None:
    async with running_gateway(bots_settings(valkey, sim, BOTS)) as (_gw, stub):
        job_id = await _send(stub, "50", "watched", bot="alerts")
        call = stub.WatchEvents(pb.WatchEventsRequest(start_cursor="0-0", job_ids=[job_id]))
        states = []
        async for response in call:
            assert response.event.bot == "alerts" and response.event.job_id == job_id
            states.append(response.event.state)
            if response.event.state == COMPLETED:
                break
        call.cancel()
        assert states[0] == pb.JOB_STATE_WAITING and states[-1] == COMPLETED
        mixed = stub.WatchEvents(pb.WatchEventsRequest(job_ids=[job_id, "support:1"]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in mixed:
                pass
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def _upload_stream(data: bytes, bot: str) -> AsyncIterator[pb.UploadFileRequest]:
    yield pb.UploadFileRequest(
        metadata=pb.UploadMetadata(filename="invoice.pdf", size=len(data), bot=bot)
    )
    yield pb.UploadFileRequest(chunk=data)


async def test_a_bot_whose_queue_cannot_be_read_is_not_serving_alone(
    sim: BotApiSimulator,
) -> None:
    # On a cluster one bot's shard can be down while the gateway's probe (another shard)
    # goes through: that bot's health name says so, the others' do not.
    down: list[StoreError] = []
    servicer = health_aio.HealthServicer()
    bots = []
    for name in ("a", "b"):
        sender = TelegramSender(bot_token(name), sim.base_url)
        await sender.start()
        bots.append(sender)
    try:
        a = BotHealth("a", bots[0], store_error=lambda: down[0] if down else None)
        b = BotHealth("b", bots[1])
        monitor = HealthMonitor(servicer, Redis(), [a, b], interval_s=1)
        monitor.redis_ok = True
        await monitor.check_token()
        await monitor.publish()
        assert not a.reasons and not b.reasons
        down.append(QueueUnavailable("Redis Cluster: the slot's primary is unreachable"))
        await monitor.publish()
        assert a.reasons == {HealthReason.STORE_NOT_WRITABLE} and not b.reasons
        assert monitor.serving  # several bots: one bot's trouble is its own
        assert any("queue cannot be read" in w for w in monitor.warnings_of("a"))
        assert not monitor.warnings_of("b")

        async def status(service: str) -> int:
            reply = await servicer.Check(health_pb2.HealthCheckRequest(service=service), None)
            return int(reply.status)

        assert await status("bot/a") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await status("bot/b") == health_pb2.HealthCheckResponse.SERVING
    finally:
        for sender in bots:
            await sender.close()
