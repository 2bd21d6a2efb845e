"""The Python clients' SearchJobs, ListJobEvents and GetThroughput wrappers against a real
gateway (the RPCs themselves: tests/test_search.py, tests/test_throughput.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import AsyncNotificationClient, NotificationClient, pb
from tests.conftest import gateway_settings, running_gateway, wait_state
from tests.test_cli import cli


async def test_clients_search_list_a_jobs_events_and_read_throughput(
    valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (gw, stub):
        target = f"127.0.0.1:{gw.port}"
        ids = [
            (await stub.Send(pb.SendRequest(chat_id="5150", text=f"Parcel {n} is out"))).job_id
            for n in range(3)
        ]
        elsewhere = await stub.Send(pb.SendRequest(chat_id="5151", text="Parcel elsewhere"))
        # Settled first: a text search walks state by state, so a job that changes state
        # while it walks may be met twice.
        for job_id in [*ids, elsewhere.job_id]:
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)

        async with AsyncNotificationClient(target) as client:
            found = [j.job_id async for j in client.search_jobs(chat_id=5150, page_size=2)]
            assert found == ids[::-1]
            texts = [j.job_id async for j in client.search_jobs(text="PARCEL 1")]
            assert texts == [ids[1]]
            events = await client.job_events(ids[0])
            assert events[0].state == pb.JOB_STATE_WAITING
            assert events[-1].state == pb.JOB_STATE_COMPLETED
            assert (await client.throughput()).interval.seconds == 10

        def blocking() -> tuple[list[str], int, int]:
            with NotificationClient(target) as client:
                found = [j.job_id for j in client.search_jobs(chat_id="5150", text="parcel 2")]
                return found, len(client.job_events(ids[2])), client.throughput().interval.seconds

        found, events_seen, interval = await asyncio.to_thread(blocking)
        assert found == [ids[2]]
        assert events_seen >= 3 and interval == 10


async def test_cli_search_finds_by_chat_and_text(
    valkey: EmbeddedValkey, simulator: BotApiSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_gateway(gateway_settings(valkey, simulator)) as (gw, stub):
        first = await stub.Send(pb.SendRequest(chat_id="6160", text="Invoice ready"))
        other = await stub.Send(pb.SendRequest(chat_id="6161", text="Invoice sent"))
        for job_id in (first.job_id, other.job_id):
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
        flags = ("--target", f"127.0.0.1:{gw.port}")
        code, out, _ = await cli(capsys, "search", "--chat", "6160", *flags)
        assert code == 0 and first.job_id in out and other.job_id not in out
        code, out, _ = await cli(capsys, "search", "--text", "INVOICE", "--json", *flags)
        assert code == 0
        assert [json.loads(line)["job_id"] for line in out.splitlines()] == [
            other.job_id,
            first.job_id,
        ]
        code, _, err = await cli(capsys, "search", *flags)
        assert code == 2 and "--chat, --key and/or --text" in err
