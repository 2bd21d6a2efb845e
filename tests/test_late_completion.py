"""A delivery recorded after its lease was lost: the job had gone back to the queue (a
stalled gateway, a replica that took it over) and may have been sent twice. It is
recorded (so it is not sent again), logged and counted."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import gateway_settings, running_gateway, wait_for, wait_state


async def test_a_delivery_after_its_lease_was_lost_is_recorded_logged_and_counted(
    valkey: EmbeddedValkey,
    redis: Redis,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A slow answer, and leases renewed rarely: the test takes the lease away meanwhile.
    simulator.configure(latency_s=1.0)
    settings = gateway_settings(valkey, simulator, queue_name="late", lease_ms=60_000)
    caplog.set_level(logging.WARNING, logger="notigate.dispatcher")
    async with running_gateway(settings) as (gw, stub):
        job_id = (await stub.Send(pb.SendRequest(chat_id="42", text="slow"))).job_id
        await wait_state(stub, job_id, pb.JOB_STATE_ACTIVE)
        assert gw.dispatcher is not None
        queue = gw.dispatcher.queue
        # The lease expires while the send is on its way, as if the gateway had stalled:
        # the next dequeue takes the job back into its chat's queue.
        await redis.zadd(queue.keys.active, {job_id: 0})
        await queue.dequeue(0)
        assert await redis.zscore(queue.keys.active, job_id) is None

        def late() -> float:
            value = gw.metrics.registry.get_sample_value(
                "notigate_jobs_late_completion_total", {"bot": "default"}
            )
            return value or 0.0

        async def counted() -> bool:
            return late() == 1.0

        await wait_for(counted)
        job = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        assert job.telegram_message_id > 0
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "notigate.dispatcher" and "after its lease was lost" in r.getMessage()
    ]
    assert len(warnings) == 1 and f"job {job_id} " in warnings[0]
