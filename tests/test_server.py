"""The server around the queue: health, reflection + grpcurl, validation errors,
Redis outages, and the `notigate serve` command itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import (
    TOKEN,
    Stub,
    free_port,
    gateway_settings,
    running_gateway,
    wait_for,
    wait_state,
)

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


async def health_status(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
        return int(reply.status)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def field_violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


async def test_health_serving_for_both_names(gateway: tuple[object, Stub]) -> None:
    gw, _ = gateway
    assert await health_status(gw.port) == SERVING  # type: ignore[attr-defined]
    assert await health_status(gw.port, "notigate.v1.NotificationService") == SERVING  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.SendRequest(chat_id="1", text=""), "text"),
        (pb.SendRequest(chat_id="1", text="x" * 4097), "text"),
        (pb.SendRequest(chat_id="1", text="hi", priority=11), "priority"),
        (pb.SendRequest(chat_id="not a chat", text="hi"), "chat_id"),
        (pb.SendRequest(chat_id="", text="hi"), "chat_id"),
    ],
)
async def test_bad_send_is_invalid_argument_and_stores_nothing(
    gateway: tuple[object, Stub], request_: pb.SendRequest, field: str
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(info.value)
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 0 and stats.waiting == 0


async def test_negative_delay_is_refused(gateway: tuple[object, Stub]) -> None:
    _, stub = gateway
    request = pb.SendRequest(chat_id="1", text="hi")
    request.delay.seconds = -5
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(request)
    assert "delay" in field_violations(info.value)


async def test_batch_is_all_or_nothing(gateway: tuple[object, Stub]) -> None:
    _, stub = gateway
    batch = pb.SendBatchRequest(
        messages=[pb.SendRequest(chat_id="1", text="ok"), pb.SendRequest(chat_id="2", text="")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SendBatch(batch)
    assert "messages[1].text" in field_violations(info.value)
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 0


async def test_malformed_job_id_is_invalid_unknown_is_not_found(
    gateway: tuple[object, Stub],
) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetJob(pb.GetJobRequest(job_id="abc"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetJob(pb.GetJobRequest(job_id="123456"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_revoked_token_stops_delivery_and_health_until_accepted(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    simulator.revoke_token(TOKEN)
    reply = await stub.Send(pb.SendRequest(chat_id="31", text="held"))

    async def not_serving() -> bool:
        return await health_status(gw.port) == NOT_SERVING  # type: ignore[attr-defined]

    await wait_for(not_serving)
    job = (await stub.GetJob(pb.GetJobRequest(job_id=reply.job_id))).job
    assert job.state == pb.JOB_STATE_WAITING and job.attempts == 0
    simulator.accept_token(TOKEN)
    await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
    assert await health_status(gw.port) == SERVING  # type: ignore[attr-defined]


async def test_redis_down_gives_unavailable_then_recovers(
    tmp_path: Path, simulator: BotApiSimulator
) -> None:
    own = EmbeddedValkey(tmp_path / "vk", port=free_port())
    await own.start()
    try:
        settings = gateway_settings(own, simulator)  # type: ignore[arg-type]
        async with running_gateway(settings) as (gw, stub):
            await own.stop()
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(pb.SendRequest(chat_id="1", text="x"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 5  # a hang guard, not a speed claim

            async def health_is(status: int) -> bool:
                return await health_status(gw.port) == status

            await wait_for(lambda: health_is(NOT_SERVING))
            await own.start()
            await wait_for(lambda: health_is(SERVING))
            reply = await stub.Send(pb.SendRequest(chat_id="1", text="after"))
            await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
    finally:
        await own.stop()


def grpcurl(port: int, *args: str, flags: tuple[str, ...] = ()) -> str:
    """The real grpcurl binary: grpcurl -plaintext [flags] ADDRESS [args...]."""
    command = [GRPCURL, "-plaintext", *flags, f"127.0.0.1:{port}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout


async def test_grpcurl_lists_describes_and_sends(
    gateway: tuple[object, Stub], simulator: BotApiSimulator
) -> None:
    gw, stub = gateway
    port = gw.port  # type: ignore[attr-defined]
    listing = await asyncio.to_thread(grpcurl, port, "list")
    assert "notigate.v1.NotificationService" in listing and "grpc.health.v1.Health" in listing
    described = await asyncio.to_thread(grpcurl, port, "describe", "notigate.v1.SendRequest")
    assert "idempotency_key" in described
    body = json.dumps({"chat_id": "555", "text": "from grpcurl", "priority": 3})
    out = await asyncio.to_thread(
        grpcurl, port, "notigate.v1.NotificationService/Send", flags=("-d", body)
    )
    reply = json.loads(out)
    job_id = reply.get("jobId") or reply["job_id"]
    await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    assert simulator.messages[-1].text == "from grpcurl"


async def test_serve_command_sandbox_end_to_end(tmp_path: Path) -> None:
    """`notigate serve --sandbox` with the embedded Valkey: send, deliver, SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "REDIS_URL")}
    # Port 0: the default 127.0.0.1:8081 may be taken by someone's sandbox.
    env.update(
        NOTIGATE_LISTEN=f"127.0.0.1:{port}",
        NOTIGATE_DATA_DIR=str(tmp_path),
        NOTIGATE_SANDBOX_LISTEN="127.0.0.1:0",
        NOTIGATE_DASHBOARD_LISTEN="127.0.0.1:0",
    )
    notigate = str(Path(sys.executable).parent / "notigate")
    proc = subprocess.Popen(
        [notigate, "serve", "--sandbox"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        async def up() -> bool:
            try:
                return await health_status(port) == SERVING
            except grpc.aio.AioRpcError:
                return False

        await wait_for(up, timeout_s=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = Stub(channel)
            reply = await stub.Send(pb.SendRequest(chat_id="1", text="sandbox"))
            job = await wait_state(stub, reply.job_id, pb.JOB_STATE_COMPLETED)
            assert job.telegram_message_id > 0
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "SANDBOX" in output
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()


def test_serve_without_token_explains_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    notigate = str(Path(sys.executable).parent / "notigate")
    result = subprocess.run(
        [notigate, "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "BOT_TOKEN" in result.stderr and "--sandbox" in result.stderr
