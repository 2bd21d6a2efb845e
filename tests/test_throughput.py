"""Throughput samples, the limiter's state and the dispatchers alive: the ring sample.lua
writes, GetThroughput's intervals, and GetStats' limiter and dispatchers, against a real
Valkey, real gateways and the Bot API simulator."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from redis.asyncio import Redis

from notigate.config import Settings
from notigate.embedded import EmbeddedValkey
from notigate.queue import Queue
from notigate.queue.monitor import INTERVAL_MS, RING_SLOTS, RingSample, parse_ring
from notigate.simulator import BotApiSimulator
from notigate.throughput import HOUR_MS, ended_since, intervals
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

# -- intervals from samples (pure) ------------------------------------------------


def sample(
    n: int, sent: int = 0, limited: int = 0, failed: int = 0, enqueued: int = 0
) -> RingSample:
    return RingSample(n, sent, limited, failed, enqueued)


NOW_N = 180_000_000  # an interval number of today's order
NOW_MS = NOW_N * INTERVAL_MS + 5_000


def test_adjacent_samples_make_one_interval_each_oldest_first() -> None:
    got = intervals(
        [sample(NOW_N - 2, 10, 1, 2, 20), sample(NOW_N - 1, 15, 1, 5, 30), sample(NOW_N, 15)],
        NOW_MS,
    )
    assert [(i.start_ms, i.delivered, i.rate_limited, i.failed, i.accepted) for i in got] == [
        ((NOW_N - 2) * INTERVAL_MS, 5, 0, 3, 10),
        ((NOW_N - 1) * INTERVAL_MS, 0, 0, 0, 0),  # enqueued went back: 0, not negative
    ]


def test_a_gap_leaves_out_the_intervals_nobody_measured() -> None:
    got = intervals([sample(NOW_N - 5, 1), sample(NOW_N - 4, 2), sample(NOW_N - 1, 9)], NOW_MS)
    assert [i.start_ms for i in got] == [(NOW_N - 5) * INTERVAL_MS]


def test_a_counter_that_went_back_yields_zero() -> None:
    [one] = intervals([sample(NOW_N - 1, sent=100, failed=7), sample(NOW_N, sent=3)], NOW_MS)
    assert (one.delivered, one.failed) == (0, 0)


def test_only_the_last_hour_is_reported() -> None:
    hour = HOUR_MS // INTERVAL_MS
    ring = [sample(n, n) for n in range(NOW_N - hour - 3, NOW_N + 1)]
    got = intervals(ring, NOW_MS)
    assert got[0].start_ms + INTERVAL_MS > NOW_MS - HOUR_MS
    assert len(got) == hour  # 360 intervals of 10 s
    assert all(i.delivered == 1 for i in got)


def test_the_ring_parses_in_interval_order_and_skips_what_does_not_parse() -> None:
    fields = {
        b"3": b"%d,1,2,3,4" % (NOW_N,),
        b"2": b"%d,0,0,0,0" % (NOW_N - 1,),
        b"9": b"garbage",
    }
    assert parse_ring(fields) == [sample(NOW_N - 1), sample(NOW_N, 1, 2, 3, 4)]


def test_ended_over_a_window_counts_from_its_oldest_sample_to_now() -> None:
    ring = [sample(NOW_N - 40, 0, failed=0), sample(NOW_N - 29, 10, failed=1), sample(NOW_N, 50)]
    totals = {"sent": 70, "failed": 9}
    got = ended_since(ring, totals, NOW_MS, 300_000)
    assert got is not None and (got.delivered, got.failed) == (60, 8)
    assert ended_since(ring[:1], totals, NOW_MS, 300_000) is None  # nothing in the window


# -- sample.lua on a real store --------------------------------------------------


async def _inside_one_interval(q: Queue) -> int:
    """The interval number now, with a second of it left at least (so two calls that
    follow fall in it)."""
    while True:
        now = await q.now_ms()
        if now % INTERVAL_MS < INTERVAL_MS - 1_000:
            return now // INTERVAL_MS
        await asyncio.sleep((INTERVAL_MS - now % INTERVAL_MS) / 1000)


async def test_the_first_sample_of_an_interval_wins_and_the_ring_is_bounded(
    redis: Redis,
) -> None:
    q = Queue(redis, Settings(), origin="gw-a")
    await q.load()
    keys = q.keys
    n = await _inside_one_interval(q)
    await redis.hset(keys.stats, mapping={"sent": 4, "rate_limited": 1, "failed": 2, "enqueued": 9})
    await q.sample(live=True)
    await redis.hset(keys.stats, mapping={"sent": 40})
    other = Queue(redis, Settings(), origin="gw-b")
    await other.sample(live=True)  # a second gateway, same interval: leaves the sample
    stored = await redis.hgetall(keys.throughput)
    assert stored == {str(n % RING_SLOTS).encode(): f"{n},4,1,2,9".encode()}
    # A stale slot (the same slot an hour and 10 s ago) is overwritten, not kept.
    await redis.hset(keys.throughput, str(n % RING_SLOTS), f"{n - RING_SLOTS},0,0,0,0")
    await q.sample(live=True)
    assert await q.throughput_samples() == [RingSample(n, 40, 1, 2, 9)]


async def test_the_heartbeat_counts_live_dispatchers_and_ages_out(redis: Redis) -> None:
    q = Queue(redis, Settings(), origin="gw-a")
    await q.load()
    keys = q.keys
    now = await q.now_ms()
    await redis.zadd(keys.dispatchers, {"gone": now - 61_000, "quiet": now - 31_000})
    await q.sample(live=True)
    assert set(await redis.zrange(keys.dispatchers, 0, -1)) == {b"gw-a", b"quiet"}
    reading = await q.monitor(await q.now_ms())
    assert reading.dispatchers == 1  # "quiet" is kept a while but no longer counts
    await q.sample(live=False)  # its dispatcher died: it stops counting at once
    assert await redis.zscore(keys.dispatchers, "gw-a") is None


async def test_the_limiter_reading_counts_the_last_second_and_the_held_chats(
    redis: Redis,
) -> None:
    q = Queue(redis, Settings())
    keys = q.keys
    now = await q.now_ms()
    # The send log is newest first; an album's sends beyond the rate count ahead of now.
    await redis.lpush(keys.global_log, now - 1_500, now - 900, now - 10, now + 1_000)
    await redis.zadd(
        keys.paced, {"past": now - 5, **{f"c{i}": now + 1_000 * (i + 1) for i in range(25)}}
    )
    got = await q.monitor(now)
    assert got.sent_last_second == 2
    assert got.held_chats == 25
    assert len(got.chat_pauses) == 20
    assert got.chat_pauses[0] == ("c24", now + 25_000)  # latest reopening first
    assert [c for c, _ in got.chat_pauses] == [f"c{i}" for i in range(24, 4, -1)]


# -- GetThroughput and GetStats through gateways ------------------------------------


async def _delivered(stub: Stub) -> tuple[int, int, pb.GetThroughputResponse]:
    reply = await stub.GetThroughput(pb.GetThroughputRequest())
    return sum(s.delivered for s in reply.samples), sum(s.accepted for s in reply.samples), reply


async def test_two_gateways_record_each_interval_once(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator)
    async with running_gateway(settings) as (gw, stub), running_gateway(settings) as (_gw2, stub2):
        assert gw.queue is not None
        ring = gw.queue.keys.throughput

        async def sampled() -> bool:
            return await redis.hlen(ring) >= 1

        await wait_for(sampled)
        ids = [
            (await stub.Send(pb.SendRequest(chat_id=str(2000 + i), text="x"))).job_id
            for i in range(5)
        ]
        for job_id in ids:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)

        async def measured() -> bool:
            delivered, _accepted, _ = await _delivered(stub2)
            return delivered >= 5

        await wait_for(measured, timeout_s=60)
        delivered, accepted, reply = await _delivered(stub)
        assert (delivered, accepted) == (5, 5)  # not doubled by the second gateway
        assert reply.interval.seconds == 10
        starts = [s.start_time.ToMilliseconds() for s in reply.samples]
        assert starts == sorted(set(starts))
        assert all(t % INTERVAL_MS == 0 for t in starts)

        async def both_alive() -> bool:
            stats = await stub.GetStats(pb.GetStatsRequest())
            return stats.dispatchers == 2

        await wait_for(both_alive)
    # Each gateway kept one heartbeat, under its own origin.
    assert await redis.zcard(gw.queue.keys.dispatchers) == 2


async def test_one_gateway_is_one_dispatcher(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (_gw, stub):

        async def alive() -> bool:
            return (await stub.GetStats(pb.GetStatsRequest())).dispatchers == 1

        await wait_for(alive)
        stats = await stub.GetStats(pb.GetStatsRequest(bot="default"))
        assert stats.dispatchers == 1
        assert not [a for a in stats.alerts if a.kind == pb.ALERT_KIND_NO_DISPATCHER]


async def test_get_throughput_validates_the_bot(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (_gw, stub):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.GetThroughput(pb.GetThroughputRequest(bot="nobody"))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nobody" in (bad.value.details() or "")
        # Nothing measured yet is an empty hour, not an error.
        reply = await stub.GetThroughput(pb.GetThroughputRequest(bot="default"))
        assert reply.interval.seconds == 10


async def test_the_limiter_shows_a_chat_held_by_429s(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    simulator.rate_limit_chat("777", retry_after=3600)
    settings = gateway_settings(valkey, simulator)
    async with running_gateway(settings) as (gw, stub):
        await stub.Send(pb.SendRequest(chat_id="777", text="held"))

        async def held() -> bool:
            limiter = (await stub.GetStats(pb.GetStatsRequest())).limiter
            return limiter.held_chats == 1

        await wait_for(held)
        stats = await stub.GetStats(pb.GetStatsRequest())
        limiter = stats.limiter
        assert limiter.rate == settings.global_rate == stats.global_rate
        assert [p.chat_id for p in limiter.chat_pauses] == ["777"]
        assert gw.queue is not None
        now = await gw.queue.now_ms()
        # Telegram asked for an hour: the chat opens about then, not now.
        assert limiter.chat_pauses[0].until.ToMilliseconds() > now + 3_000_000
        assert stats.waiting == 1


async def test_the_limiter_names_the_pause_and_is_each_bots_own(
    redis: Redis, valkey: EmbeddedValkey
) -> None:
    async with (
        bots_simulator("alpha", "beta") as sim,
        running_gateway(bots_settings(valkey, sim, ["alpha", "beta"])) as (gw, stub),
    ):
        keys = gw.bots["alpha"].queue.keys
        now = await gw.bots["alpha"].queue.now_ms()
        await redis.set(keys.global_pause, now + 60_000, px=60_000)
        await redis.set(keys.global_pause_reason, "429s from 3 chats", px=60_000)
        alpha = await stub.GetStats(pb.GetStatsRequest(bot="alpha"))
        assert alpha.limiter.pause_reason == "429s from 3 chats"
        both = await stub.GetStats(pb.GetStatsRequest())
        assert not both.HasField("limiter")  # a sum over bots has none of its own
        by_name = {b.bot: b.stats for b in both.bots}
        assert by_name["alpha"].limiter.pause_reason == "429s from 3 chats"
        assert by_name["beta"].limiter.pause_reason == ""
        assert by_name["beta"].HasField("limiter")
