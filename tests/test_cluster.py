"""The gateway on a Redis Cluster: a local one of three primaries with a replica each.

Every RPC works and delivers; queues of different names live on different shards; WAIT
holds an acknowledged Send to a replica; and a primary killed under load is replaced by
its replica while the gateway goes on without a restart, every acknowledged job found and
delivered afterwards.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from notigate.config import BotSettings, Settings
from notigate.queue.keys import QueueKeys
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import pb
from tests.conftest import (
    TOKEN,
    Stub,
    base_settings,
    bot_token,
    running_gateway,
    wait_for,
    wait_state,
)
from tests.failover_load import (
    UNLIMITED,
    assert_every_acknowledged_delivered,
    at_least,
    duplicates_of,
    keyed_sends,
)
from tests.redis_cluster import LocalCluster
from tests.test_webhooks import SECRET, Receiver

pytestmark = pytest.mark.faults

COMPLETED = pb.JOB_STATE_COMPLETED


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    await local.start()
    yield local
    await local.stop()


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[BotApiSimulator]:
    # Telegram's limits are the queue's business, tested elsewhere: here, many chats fast.
    server = BotApiSimulator(tokens=[TOKEN], config=SimulatorConfig(enforce_limits=False))
    await server.start(host="127.0.0.1", port=0)
    yield server
    await server.stop()


def cluster_settings(cluster: LocalCluster, sim: BotApiSimulator, **overrides: Any) -> Settings:
    return base_settings(
        sim, redis_url=cluster.url, redis_cluster=True, **{**UNLIMITED, **overrides}
    )


async def upload(stub: Stub, data: bytes) -> pb.UploadFileResponse:
    async def stream() -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(
            metadata=pb.UploadMetadata(filename="r.pdf", content_type="", size=len(data))
        )
        for at in range(0, len(data), 256 * 1024):
            yield pb.UploadFileRequest(chunk=data[at : at + 256 * 1024])

    reply: pb.UploadFileResponse = await stub.UploadFile(stream(), timeout=30)
    return reply


async def test_every_rpc_works_on_a_cluster(cluster: LocalCluster, sim: BotApiSimulator) -> None:
    receiver = Receiver()
    await receiver.start()
    settings = cluster_settings(
        cluster, sim, queue_name="rpcs", webhook_url=receiver.url, webhook_secret=SECRET
    )
    try:
        await _every_rpc(settings, sim, receiver)
    finally:
        await receiver.stop()


async def _every_rpc(settings: Settings, sim: BotApiSimulator, receiver: Receiver) -> None:
    async with running_gateway(settings) as (gw, stub):
        assert gw.health is not None and gw.health.serving
        watch = stub.WatchEvents(pb.WatchEventsRequest(chat_id="10"), timeout=30)
        await watch.initial_metadata()
        sent = await stub.Send(pb.SendRequest(chat_id="10", text="one"), timeout=10)
        events = []
        async for response in watch:
            events.append(response.event.state)
            if response.event.state == COMPLETED:
                break
        watch.cancel()
        assert events == [pb.JOB_STATE_WAITING, pb.JOB_STATE_ACTIVE, COMPLETED]

        batch = await stub.SendBatch(
            pb.SendBatchRequest(
                messages=[pb.SendRequest(chat_id=str(20 + i), text=f"b{i}") for i in range(5)]
            ),
            timeout=10,
        )
        for result in batch.results:
            await wait_state(stub, result.job_id, COMPLETED)
        listed = await stub.ListJobs(pb.ListJobsRequest(state=COMPLETED, page_size=100))
        assert {sent.job_id, *(r.job_id for r in batch.results)} <= {j.job_id for j in listed.jobs}

        later = pb.SendRequest(chat_id="30", text="later")
        later.delay.FromSeconds(3600)
        later_id = (await stub.Send(later, timeout=10)).job_id
        cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=later_id), timeout=10)
        assert cancelled.job.state == pb.JOB_STATE_CANCELLED

        sim.block_chat("31")
        failing = (await stub.Send(pb.SendRequest(chat_id="31", text="f"), timeout=10)).job_id
        await wait_state(stub, failing, pb.JOB_STATE_FAILED)
        sim.unblock_chat("31")
        await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="31"), timeout=10)
        await stub.RetryJob(pb.RetryJobRequest(job_id=failing), timeout=10)
        await wait_state(stub, failing, COMPLETED)

        data = os.urandom(600 * 1024)
        uploaded = await upload(stub, data)
        media = pb.Media(kind=pb.MEDIA_KIND_DOCUMENT, upload_id=uploaded.upload_id)
        doc = (await stub.Send(pb.SendRequest(chat_id="40", media=media), timeout=10)).job_id
        await wait_state(stub, doc, COMPLETED)
        [document] = sim.chat_messages("40")
        assert document.kind == "document"

        original = await wait_state(stub, sent.job_id, COMPLETED)
        edit = await stub.EditMessage(
            pb.EditMessageRequest(job_id=sent.job_id, text="edited"), timeout=10
        )
        await wait_state(stub, edit.job.job_id, COMPLETED)
        message = sim.message("10", original.telegram_message_id)
        assert message is not None and message.text == "edited"
        deleted = await stub.DeleteMessage(pb.DeleteMessageRequest(job_id=sent.job_id), timeout=10)
        await wait_state(stub, deleted.job.job_id, COMPLETED)
        assert sim.chat_messages("10") == []

        stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
        assert stats.completed >= 9 and stats.cancelled == 1 and stats.total_enqueued >= 10
        assert not [w for w in stats.warnings if "maxmemory-policy" in w]
        assert stats.HasField("limiter")

        async def sampled() -> bool:
            reply = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            return reply.dispatchers == 1

        await wait_for(sampled)  # sample.lua ran on the bot's shard
        hour = await stub.GetThroughput(pb.GetThroughputRequest(), timeout=10)
        assert hour.interval.seconds == 10

        async def posted() -> bool:
            events = [r.event for r in receiver.acknowledged()]
            return any(e.job_id == doc and e.state == COMPLETED for e in events)

        await wait_for(posted)
        assert all(r.verifies() for r in receiver.requests)


async def test_queues_of_different_names_live_on_different_shards(
    cluster: LocalCluster, sim: BotApiSimulator
) -> None:
    names: dict[int, str] = {}
    for i in range(50):
        node = await cluster.primary_of(QueueKeys.for_queue(f"shard{i}").seq)
        names.setdefault(node.port, f"shard{i}")
        if len(names) == 2:
            break
    assert len(names) == 2
    async with (
        running_gateway(cluster_settings(cluster, sim, queue_name=names_of(names, 0))) as a,
        running_gateway(cluster_settings(cluster, sim, queue_name=names_of(names, 1))) as b,
    ):
        for k, (_, stub) in enumerate((a, b)):
            job = await stub.Send(pb.SendRequest(chat_id=str(50 + k), text=f"q{k}"), timeout=10)
            await wait_state(stub, job.job_id, COMPLETED)
    assert [m.text for m in sim.chat_messages("50")] == ["q0"]
    assert [m.text for m in sim.chat_messages("51")] == ["q1"]
    for port, name in names.items():
        slot_key = QueueKeys.for_queue(name).seq
        for node in cluster.nodes[: cluster.count]:
            async with node.client() as c:
                slot = await c.execute_command("CLUSTER", "KEYSLOT", slot_key)
                keys = await c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            # The queue's keys are all on its own shard's primary, none elsewhere.
            assert (keys > 0) == (node.port == port), (name, node.port)


def names_of(names: dict[int, str], index: int) -> str:
    return list(names.values())[index]


async def test_several_bots_spread_over_the_shards(cluster: LocalCluster) -> None:
    shard_of: dict[str, int] = {}
    for i in range(60):
        node = await cluster.primary_of(QueueKeys.for_queue("bots", f"bot{i}").seq)
        if node.port not in shard_of.values() or len(shard_of) >= 3:
            shard_of[f"bot{i}"] = node.port
        if len(shard_of) == 6:
            break
    names = list(shard_of)
    assert len(set(shard_of.values())) == 3
    bots = tuple(BotSettings(n, bot_token(n)) for n in names)
    config = SimulatorConfig(enforce_limits=False)
    server = BotApiSimulator(tokens=[bot_token(n) for n in names], config=config)
    await server.start(host="127.0.0.1", port=0)
    try:
        settings = cluster_settings(cluster, server, queue_name="bots", bot_token=None, bots=bots)
        async with running_gateway(settings) as (_gw, stub):
            ids = {}
            for k, bot in enumerate(names):
                reply = await stub.Send(
                    pb.SendRequest(chat_id=str(70 + k), text=bot, bot=bot), timeout=10
                )
                ids[bot] = reply.job_id
            for bot, job_id in ids.items():
                job = await wait_state(stub, job_id, COMPLETED)
                assert job.bot == bot and job_id.startswith(f"{bot}:")
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            assert stats.total_sent == len(names)
            assert {b.bot: b.stats.total_sent for b in stats.bots} == dict.fromkeys(names, 1)
        by_bot = {m.text: m.bot_id for m in server.messages}
        assert by_bot == {n: server.bot_id(bot_token(n)) for n in names}
    finally:
        await server.stop()


async def test_scripts_missing_on_every_node_are_loaded_again(
    cluster: LocalCluster, sim: BotApiSimulator
) -> None:
    """What a promoted replica may lack: each way a script is called (one call, WAIT on
    the write's connection, keyless on the slot's primary, many in one pipeline) loads it
    again and repeats the call, which had not run."""
    settings = cluster_settings(cluster, sim, queue_name="noscript", redis_wait_replicas=1)
    async with running_gateway(settings) as (_, stub):

        async def flush() -> None:
            for node in cluster.nodes:
                if node.alive:
                    async with node.client() as c:
                        await c.script_flush()

        later = pb.SendRequest(chat_id="70", text="v1")
        later.delay.FromSeconds(3600)
        await flush()
        job_id = (await stub.Send(later, timeout=10)).job_id
        await flush()
        edited = await stub.EditMessage(pb.EditMessageRequest(job_id=job_id, text="v2"))
        assert edited.job.request.text == "v2"
        await flush()
        cancelled = await stub.CancelJobs(
            pb.CancelJobsRequest(filter=pb.JobFilter(state=pb.JOB_STATE_DELAYED, chat_id="70"))
        )
        assert cancelled.count == 1
        assert (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job.state == (
            pb.JOB_STATE_CANCELLED
        )


async def test_a_send_not_on_enough_replicas_is_unavailable_but_stored(
    cluster: LocalCluster, sim: BotApiSimulator
) -> None:
    # Two replicas wanted, one per primary here: WAIT times out after 50 ms.
    settings = cluster_settings(
        cluster, sim, queue_name="wait2", redis_wait_replicas=2, redis_wait_timeout_ms=50
    )
    async with running_gateway(settings) as (_, stub):
        request = pb.SendRequest(chat_id="60", text="w", idempotency_key="k-60")
        for _ in range(2):  # the retry finds the same job, and is refused the same way
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Send(request, timeout=10)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "retry with the same idempotency key" in (refused.value.details() or "")
        await wait_for(lambda: _delivered(sim, "60", 1))
    assert [m.text for m in sim.chat_messages("60")] == ["w"]


async def _delivered(sim: BotApiSimulator, chat: str, n: int) -> bool:
    return len(sim.chat_messages(chat)) >= n


async def test_a_send_acknowledged_after_wait_is_on_the_replica(
    cluster: LocalCluster, sim: BotApiSimulator
) -> None:
    latencies: dict[int, list[float]] = {}
    for replicas in (0, 1):
        settings = cluster_settings(
            cluster, sim, queue_name=f"latency{replicas}", redis_wait_replicas=replicas
        )
        keys = QueueKeys.for_queue(settings.queue_name)
        replica = await cluster.replica_of(keys.seq)
        on_replica = 0
        async with running_gateway(settings) as (_, stub), replica.client() as peek:
            await peek.execute_command("READONLY")
            took = []
            for i in range(300):
                start = time.perf_counter()
                job = await stub.Send(pb.SendRequest(chat_id=str(1000 + i), text="l"), timeout=10)
                took.append((time.perf_counter() - start) * 1000)
                if replicas and i < 30:
                    # Acknowledged after WAIT 1: the shard's replica has the job already.
                    on_replica += await peek.exists(keys.job(job.job_id))
            latencies[replicas] = took
        if replicas:
            assert on_replica == 30
    for replicas, took in latencies.items():
        q = statistics.quantiles(took, n=100)
        print(
            f"\nSend on the cluster, WAIT {replicas}: p50 {q[49]:.2f} ms, "
            f"p99 {q[98]:.2f} ms ({len(took)} sequential Sends)"
        )


async def test_a_killed_primary_is_replaced_and_every_acknowledged_send_delivered(
    cluster: LocalCluster, sim: BotApiSimulator
) -> None:
    """Runs last in this module: it moves a shard's primary."""
    n, senders = 2000, 20
    name = "failover"
    settings = cluster_settings(
        cluster, sim, queue_name=name, redis_wait_replicas=1, lease_ms=2000, concurrency=32
    )
    acked: dict[int, str] = {}
    unavailable = Counter[str]()
    started = sim.messages_after(0)[-1].seq if sim.messages_after(0) else 0

    async with running_gateway(settings) as (gw, stub):
        tasks = [
            asyncio.create_task(
                keyed_sends(stub, range(k, n, senders), "m", 10000, acked, unavailable)
            )
            for k in range(senders)
        ]
        await wait_for(lambda: at_least(acked, n // 4), timeout_s=60)
        killed, promoted = await cluster.kill_primary_of(QueueKeys.for_queue(name).seq)
        assert promoted.port != killed.port
        # The promoted replica has no replica of its own until the old primary is back
        # (as its replica): meanwhile WAIT 1 cannot be met and Sends answer UNAVAILABLE.
        await cluster.restart(killed)
        await asyncio.gather(*tasks)
        assert gw.health is not None

        async def serving() -> bool:
            return bool(gw.health and gw.health.serving)

        await wait_for(serving, timeout_s=30)

        async def all_completed() -> bool:
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            return stats.completed >= n

        await wait_for(all_completed, timeout_s=90)
        await assert_every_acknowledged_delivered(stub, acked)
    texts = [m.text for m in sim.messages_after(started)]
    duplicates = duplicates_of(texts, "cluster failover", len(acked), unavailable)
    assert len(acked) == n
    assert {f"m{i}" for i in range(n)} <= set(texts)
    # Only sends in flight at the kill go twice: their completion died with the primary.
    assert duplicates <= settings.concurrency
