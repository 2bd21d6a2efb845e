"""When the store loses data: ids are never handed out twice, an old lease decides nothing
about another job, and the gateway says what happened (an ERROR, a metric)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from redis.asyncio import Redis

from notigate.config import Settings
from notigate.metrics import Metrics
from notigate.queue import CompletedSend, JobState, Lease, NewJob, Queue, Recorded, RetryOutcome
from notigate.simulator import BotApiSimulator
from notigate.store_watch import StoreWatch
from notigate_client import pb
from tests.conftest import TOKEN, free_port, running_gateway, wait_for
from tests.test_metrics import BOT_LABELLED


def job(chat: str, body: str = "x", delay_ms: int = 0) -> NewJob:
    return NewJob(chat, 0, delay_ms, 0, "", body.encode())


async def make_queue(redis: Redis, name: str = "") -> Queue:
    # A queue of its own per test: a watch of an earlier test must not see this one's keys.
    name = name or f"loss-{uuid.uuid4().hex[:8]}"
    q = Queue(redis, Settings(redis_url="redis://unused", bot_token="x", queue_name=name))
    await q.load()
    return q


async def ids(q: Queue, n: int, delay_ms: int = 0) -> list[int]:
    created = await q.enqueue([job(str(100 + i), delay_ms=delay_ms) for i in range(n)])
    return [int(r.job_id) for r in created]


# -- ids -----------------------------------------------------------------------------


async def test_ids_after_a_flush_stay_above_every_id_handed_out_before(redis: Redis) -> None:
    before = await ids(await make_queue(redis), 5)
    await redis.flushall()
    # A process that never saw the old ids (a restarted gateway, another replica): the
    # clock keeps it above them.
    after = await ids(await make_queue(redis), 5)
    assert min(after) > max(before)
    assert after == sorted(after) and len(set(after)) == 5


async def test_ids_go_on_from_the_sequence_when_it_runs_ahead_of_the_clock(redis: Redis) -> None:
    q = await make_queue(redis)
    ahead = (await ids(q, 1))[0] + 10**9  # as after a burst faster than the clock counts
    await redis.set(q.keys.seq, ahead)
    assert await ids(q, 2) == [ahead + 1, ahead + 2]
    assert await q.last_job_id() == ahead + 2


async def test_a_store_that_went_back_is_reported_and_ids_stay_above_the_floor(
    redis: Redis,
) -> None:
    q = await make_queue(redis)
    reports: list[tuple[int, int]] = []
    q.on_went_back = lambda seq, floor: reports.append((seq, floor))
    await redis.set(q.keys.seq, 10**12)  # ids far ahead of the clock
    first = await ids(q, 3)
    assert reports == []
    await redis.set(q.keys.seq, 10**12 + 1)  # a replica that missed the last two
    after = await ids(q, 2)
    assert reports == [(10**12 + 1, first[-1])]
    assert min(after) > max(first)
    await ids(q, 1)
    assert len(reports) == 1  # the sequence is past the floor again


# -- leases ----------------------------------------------------------------------------


async def test_a_lease_from_before_a_flush_touches_no_job_after_it(redis: Redis) -> None:
    q = await make_queue(redis)
    await ids(q, 1)
    [stale] = (await q.dequeue(1)).leases
    await redis.flushall()
    # The new store's jobs: one waiting, one leased (and so active under its own lease).
    q2 = await make_queue(redis)
    await ids(q2, 2)
    [current] = (await q2.dequeue(1)).leases
    before = {r.job_id: r for r in [await q2.get(current.job_id)]}
    assert await q.complete_many([CompletedSend(stale, 1)]) == [Recorded.NO_SUCH_JOB]
    assert not await q.fail(stale, "gone")
    assert await q.retry(stale, "gone", 10) is RetryOutcome.LEASE_LOST
    assert not await q.defer(stale, 1000)
    assert await q.migrate(stale, "-100999") == 0
    assert await q.extend([stale]) == 0
    assert {r.job_id: r for r in [await q2.get(current.job_id)]} == before
    stats = await q2.stats()
    assert stats.counts[JobState.COMPLETED] == stats.counts[JobState.FAILED] == 0
    assert stats.counts[JobState.ACTIVE] == stats.counts[JobState.WAITING] == 1


async def _job_at_the_same_id(redis: Redis) -> tuple[Queue, Lease, Lease]:
    """A lease taken before the store lost its data, and one on the job that took over its
    id afterwards: the sequence ran ahead of the clock (ids taken faster than it counts) and
    the store came back with an older sequence and without the job."""
    q = await make_queue(redis)
    await redis.set(q.keys.seq, 10**12)
    await ids(q, 1)
    [old] = (await q.dequeue(1)).leases
    await redis.flushall()
    await asyncio.sleep(0.002)  # not the same millisecond: the jobs differ in creation time
    q2 = await make_queue(redis)  # another process: it never saw the old id
    await redis.set(q2.keys.seq, 10**12)
    await ids(q2, 1)
    [new] = (await q2.dequeue(1)).leases
    assert new.job_id == old.job_id
    assert new.token != old.token and new.created_ms != old.created_ms
    return q2, old, new


async def test_a_delivery_is_never_recorded_on_another_job_of_the_same_id(redis: Redis) -> None:
    q, old, new = await _job_at_the_same_id(redis)
    assert await q.complete_many([CompletedSend(old, 41)]) == [Recorded.OTHER_JOB]
    record = await q.get(new.job_id)
    assert record is not None and record.state is JobState.ACTIVE and record.message_id == 0
    assert await q.complete_many([CompletedSend(new, 42)]) == [Recorded.UNDER_LEASE]
    assert await q.complete_many([CompletedSend(old, 41)]) == [Recorded.OTHER_JOB]
    record = await q.get(new.job_id)
    assert record is not None and record.message_id == 42


@pytest.mark.parametrize("outcome", ["fail", "retry", "defer", "migrate", "extend"])
async def test_an_old_token_decides_nothing_about_another_job_of_the_same_id(
    redis: Redis, outcome: str
) -> None:
    q, old, new = await _job_at_the_same_id(redis)
    active_before = await redis.zscore(q.keys.active, new.job_id)
    await asyncio.sleep(0.002)  # a renewal would move the lease's expiry
    match outcome:
        case "fail":
            assert not await q.fail(old, "not this job")
        case "retry":
            assert await q.retry(old, "not this job", 10) is RetryOutcome.LEASE_LOST
        case "defer":
            assert not await q.defer(old, 60_000)
        case "migrate":
            assert await q.migrate(old, "-100777") == 0
        case "extend":
            assert await q.extend([old]) == 0
    record = await q.get(new.job_id)
    assert record is not None
    assert (record.state, record.attempts, record.chat_id, record.last_error) == (
        JobState.ACTIVE,
        0,
        new.chat_id,
        "",
    )
    assert await redis.zscore(q.keys.active, new.job_id) == active_before
    assert await redis.zcard(q.keys.paced) == 0  # no chat paused by the old lease's 429
    assert await q.complete(new, 7)  # the new lease still holds


async def test_the_same_job_whose_lease_expired_still_records_its_delivery(redis: Redis) -> None:
    q = await make_queue(redis)
    await ids(q, 1)
    [lease] = (await q.dequeue(1)).leases
    await q.defer(lease)  # back to waiting, as after an expired lease
    assert await q.complete_many([CompletedSend(lease, 9)]) == [Recorded.LEASE_LOST]
    record = await q.get(lease.job_id)
    assert record is not None and record.state is JobState.COMPLETED and record.message_id == 9
    assert (await q.dequeue(1)).leases == []  # not sent again


# -- the store watch -------------------------------------------------------------------


def errors(caplog: pytest.LogCaptureFixture, q: Queue | None = None) -> list[logging.LogRecord]:
    """ERROR records, of ``q``'s store watch only when given: gateways of other tests on
    the shared Valkey may report a flush of their own queue meanwhile."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and (q is None or getattr(r, "queue", None) == q.settings.queue_name)
    ]


def _loss(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value("notigate_store_data_loss_total", {"kind": kind})
    return value or 0.0


async def test_a_flushed_store_is_reported_once_and_its_marker_recreated(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    q = await make_queue(redis)
    metrics = Metrics()
    watch = StoreWatch(q, metrics)
    await ids(q, 3)  # a store from before the marker: no alarm, just a marker
    await watch.check()
    first = watch.store_id
    assert first and await redis.hget(q.keys.meta, "id") == first.encode()
    await watch.check()
    assert _loss(metrics, "reset") == 0 and not errors(caplog, q)
    await redis.flushall()
    await watch.check()
    await ids(q, 2)  # the sequence is below this process's ids: the same event
    await watch.check()
    await watch.check()
    assert _loss(metrics, "reset") == 1 and _loss(metrics, "rollback") == 0
    [error] = errors(caplog, q)
    assert "lost its data" in error.getMessage()
    assert watch.store_id and watch.store_id != first
    assert await redis.hget(q.keys.meta, "id") == watch.store_id.encode()


async def test_a_marker_recreated_by_another_replica_is_a_reset_too(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    q = await make_queue(redis)
    metrics = Metrics()
    watch = StoreWatch(q, metrics)
    await watch.check()
    await redis.flushall()
    await StoreWatch(
        await make_queue(redis, q.settings.queue_name), Metrics()
    ).check()  # a replica first
    await watch.check()
    assert _loss(metrics, "reset") == 1
    assert len(errors(caplog, q)) == 1


async def test_a_store_that_went_back_is_a_rollback_reported_once(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    q = await make_queue(redis)
    metrics = Metrics()
    watch = StoreWatch(q, metrics)
    await watch.check()
    await redis.set(q.keys.seq, 10**12)
    handed = await ids(q, 3)
    await watch.check()
    await redis.set(q.keys.seq, 10**12 + 1)  # the marker stayed: an older copy of the store
    await watch.check()
    await ids(q, 1)  # the enqueue sees it too: still the same event
    await watch.check()
    assert _loss(metrics, "rollback") == 1 and _loss(metrics, "reset") == 0
    [error] = errors(caplog, q)
    assert "went back" in error.getMessage() and str(handed[-1]) in error.getMessage()


async def test_an_enqueue_that_finds_the_store_behind_wakes_the_watch(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    q = await make_queue(redis)
    metrics = Metrics()
    watch = StoreWatch(q, metrics)
    runner = asyncio.create_task(watch.run(interval_s=3600))
    try:
        await wait_for(lambda: _has_marker(redis, q))
        await redis.set(q.keys.seq, 10**12)
        await ids(q, 2)
        await redis.set(q.keys.seq, 10**12 - 5)
        await ids(q, 1)

        async def reported() -> bool:
            return _loss(metrics, "rollback") == 1

        await wait_for(reported)
    finally:
        runner.cancel()
    # Counted once by this watch (its metric above); other tests' gateways log to caplog too.
    assert any("went back" in e.getMessage() for e in errors(caplog, q))


async def _has_marker(redis: Redis, q: Queue) -> bool:
    return bool(await redis.exists(q.keys.meta))


# -- a gateway whose Redis loses its data while sends are in flight ------------------------


class RedisServer:
    """A redis-server without persistence on a port of its own."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self, *extra: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:

            async def up() -> bool:
                try:
                    return bool(await client.ping())
                except Exception:
                    return False

            await wait_for(up, timeout_s=10)
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    yield server
    server.stop()


N = 12


def _sample(gw_metrics: Metrics, name: str, **labels: str) -> float:
    if name.startswith(BOT_LABELLED):
        labels.setdefault("bot", "default")
    return gw_metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.faults
@pytest.mark.parametrize("loss", ["flushall", "restart"])
async def test_sends_in_flight_when_redis_loses_its_data_mark_no_new_job(
    own_redis: RedisServer,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
    loss: str,
) -> None:
    settings = Settings(
        redis_url=own_redis.url,
        bot_token=TOKEN,
        telegram_api_url=simulator.base_url,
        listen="127.0.0.1:0",
        health_interval_s=0.2,
        shutdown_grace_s=1.0,
    )
    chats = [str(5000 + i) for i in range(N)]
    simulator.configure(latency_s=2.0)  # the old sends are held in flight
    redis = Redis.from_url(own_redis.url)
    try:
        async with running_gateway(settings) as (gw, stub):
            assert gw.metrics is not None
            for chat in chats:
                await stub.Send(pb.SendRequest(chat_id=chat, text=f"old {chat}"))

            async def all_active() -> bool:
                stats = await stub.GetStats(pb.GetStatsRequest())
                return stats.active == N

            await wait_for(all_active)
            if loss == "flushall":
                await redis.flushall()
            else:
                own_redis.stop()
                await own_redis.start()
            simulator.configure(latency_s=0.0)
            new: dict[str, str] = {}
            for chat in chats:
                reply = await stub.Send(
                    pb.SendRequest(chat_id=chat, text=f"new {chat}", delay=Duration(seconds=4)),
                    timeout=10,
                )
                new[reply.job_id] = chat

            async def old_sends_done() -> bool:
                return _sample(gw.metrics, "notigate_jobs_delivered_total") >= N

            await wait_for(old_sends_done)

            def own_message(job: pb.Job) -> bool:
                [sent] = [
                    m
                    for m in simulator.messages
                    if m.chat_id == new[job.job_id] and m.message_id == job.telegram_message_id
                ]
                return sent.text == f"new {new[job.job_id]}"

            # No new job was marked with an old send's message.
            for job_id in new:
                job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
                assert job.state != pb.JOB_STATE_COMPLETED or own_message(job), job

            async def new_delivered() -> bool:
                for job_id in new:
                    job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
                    if job.state != pb.JOB_STATE_COMPLETED:
                        return False
                return True

            await wait_for(new_delivered, timeout_s=30)
            for job_id in new:
                assert own_message((await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job)
            texts = sorted(m.text for m in simulator.messages)
            assert texts == sorted([f"old {c}" for c in chats] + [f"new {c}" for c in chats])

            async def loss_reported() -> bool:
                return _sample(gw.metrics, "notigate_store_data_loss_total", kind="reset") == 1

            await wait_for(loss_reported)
            orphaned = _sample(gw.metrics, "notigate_outcomes_orphaned_total", reason="no_job")
            assert orphaned == N
    finally:
        await redis.aclose()
    logged = [r.getMessage() for r in errors(caplog)]
    assert sum("lost its data" in e for e in logged) == 1
    unrecorded = [e for e in logged if "the delivery is not recorded" in e]
    assert len(unrecorded) == N
    assert all("Telegram message 1" in e for e in unrecorded)  # each chat's first message


class Proxy:
    """A TCP forwarder standing for the store's address: :meth:`switch` moves it to another
    server and drops every open connection, as a failover does to its clients."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def switch(self, target_port: int) -> None:
        self.target_port = target_port
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        self.switch(self.target_port)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.mark.faults
async def test_a_failover_to_a_replica_that_was_behind_is_a_rollback_and_marks_no_new_job(
    tmp_path: Path, simulator: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    primary, replica = RedisServer(tmp_path / "primary"), RedisServer(tmp_path / "replica")
    await primary.start()
    await replica.start("--replicaof", "127.0.0.1", str(primary.port))
    proxy = Proxy(primary.port)
    await proxy.start()
    p, r = Redis.from_url(primary.url), Redis.from_url(replica.url)
    settings = Settings(
        redis_url=proxy.url,
        bot_token=TOKEN,
        telegram_api_url=simulator.base_url,
        listen="127.0.0.1:0",
        health_interval_s=0.2,
        shutdown_grace_s=1.0,
    )
    chats = [str(6000 + i) for i in range(N)]
    try:
        async with running_gateway(settings) as (gw, stub):
            keys = gw.queue.keys if gw.queue else None
            assert keys is not None
            kept = [
                (
                    await stub.Send(
                        pb.SendRequest(chat_id=c, text=f"kept {c}", delay=Duration(seconds=600))
                    )
                ).job_id
                for c in chats
            ]

            async def replicated() -> bool:
                return bool(await r.exists(keys.meta)) and await r.get(keys.seq) == await p.get(
                    keys.seq
                )

            await wait_for(replicated)
            await r.replicaof("NO", "ONE")  # the replica stops here: what follows it misses
            simulator.configure(latency_s=2.0)
            lost = [
                (await stub.Send(pb.SendRequest(chat_id=c, text=f"lost {c}"))).job_id for c in chats
            ]

            async def all_active() -> bool:
                return (await stub.GetStats(pb.GetStatsRequest())).active == N

            await wait_for(all_active)
            proxy.switch(replica.port)  # failover: the replica that was behind takes over
            simulator.configure(latency_s=0.0)
            new: dict[str, str] = {}
            for chat in chats:
                reply = await stub.Send(
                    pb.SendRequest(chat_id=chat, text=f"new {chat}", delay=Duration(seconds=4)),
                    timeout=10,
                )
                new[reply.job_id] = chat
            assert min(int(i) for i in new) > max(int(i) for i in lost)

            async def old_sends_done() -> bool:
                return _sample(gw.metrics, "notigate_jobs_delivered_total") >= N

            await wait_for(old_sends_done)

            async def delivered_own() -> bool:
                for job_id, chat in new.items():
                    job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
                    if job.state != pb.JOB_STATE_COMPLETED:
                        return False
                    [sent] = [
                        m
                        for m in simulator.messages
                        if m.chat_id == chat and m.message_id == job.telegram_message_id
                    ]
                    assert sent.text == f"new {chat}", job
                return True

            await wait_for(delivered_own, timeout_s=30)
            for job_id in kept:  # what the replica had is still there
                job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job
                assert job.state == pb.JOB_STATE_DELAYED

            async def rollback_reported() -> bool:
                return _sample(gw.metrics, "notigate_store_data_loss_total", kind="rollback") == 1

            await wait_for(rollback_reported)
            assert _sample(gw.metrics, "notigate_store_data_loss_total", kind="reset") == 0
            assert _sample(gw.metrics, "notigate_outcomes_orphaned_total", reason="no_job") == N
    finally:
        await p.aclose()
        await r.aclose()
        await proxy.stop()
        replica.stop()
        primary.stop()
    logged = [r.getMessage() for r in errors(caplog)]
    assert sum("went back" in e for e in logged) == 1
    assert sum("the delivery is not recorded" in e for e in logged) == N
