"""Idempotency keys through the gRPC API and the Python client, on a real gateway: a
repeat of the request is a duplicate, another message under a used key is ALREADY_EXISTS
and stores nothing, in Send, SendBatch and concurrent Sends sharing one enqueue call."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.queue.scripts.produce import Enqueue
from notigate_client import AlreadyExistsError, AsyncNotificationClient, pb
from tests.conftest import Stub

T = TypeVar("T")
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS


def details(exc: grpc.aio.AioRpcError) -> tuple[Any, Any]:
    """The ErrorInfo and the ResourceInfo (or None) of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    info, resource = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
    assert info is not None
    return info, resource


async def enqueued(stub: Stub) -> int:
    return int((await stub.GetStats(pb.GetStatsRequest())).total_enqueued)


def order(text: str = "Order #42 shipped", **fields: Any) -> pb.SendRequest:
    fields.setdefault("chat_id", "777")
    fields.setdefault("idempotency_key", "order-42")
    return pb.SendRequest(text=text, **fields)


async def test_send_repeat_is_a_duplicate_and_another_message_is_already_exists(
    gateway: tuple[Gateway, Stub],
) -> None:
    _, stub = gateway
    # A request with most fields set: its deterministic serialization is the fingerprint.
    rich = order(
        priority=7,
        delay=Duration(seconds=600),
        parse_mode=pb.PARSE_MODE_HTML,
        max_attempts=3,
        disable_notification=True,
    )
    first = await stub.Send(rich)
    again = await stub.Send(rich)
    assert (again.job_id, again.duplicate, first.duplicate) == (first.job_id, True, False)
    count = await enqueued(stub)

    for changed in (
        order(text="Order #42 cancelled", priority=7, delay=Duration(seconds=600)),
        pb.SendRequest(**{**_fields(rich), "chat_id": "778"}),
        pb.SendRequest(**{**_fields(rich), "priority": 8}),
        pb.SendRequest(**{**_fields(rich), "delay": Duration(seconds=601)}),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Send(changed)
        exc = caught.value
        assert exc.code() == ALREADY_EXISTS
        assert f"job {first.job_id}" in (exc.details() or "")
        assert "'order-42'" in (exc.details() or "")
        info, resource = details(exc)
        assert (info.reason, info.domain) == ("IDEMPOTENCY_KEY_REUSED", "notigate")
        assert dict(info.metadata) == {"job_id": first.job_id, "idempotency_key": "order-42"}
        assert (resource.resource_type, resource.resource_name) == ("job", first.job_id)

    assert await enqueued(stub) == count
    job = (await stub.GetJob(pb.GetJobRequest(job_id=first.job_id))).job
    assert job.request == rich
    # The original request still is a duplicate after the refusals.
    assert (await stub.Send(rich)).job_id == first.job_id


def _fields(req: pb.SendRequest) -> dict[str, Any]:
    return {f.name: v for f, v in req.ListFields()}


async def test_a_key_stored_without_a_fingerprint_still_returns_its_job(
    gateway: tuple[Gateway, Stub], redis: Redis
) -> None:
    gw, stub = gateway
    first = await stub.Send(pb.SendRequest(chat_id="5", text="before the upgrade"))
    await redis.set(f"{gw.queue.keys.prefix}idem:old-key", first.job_id, px=60_000)
    reply = await stub.Send(order(text="anything", idempotency_key="old-key"))
    assert (reply.job_id, reply.duplicate) == (first.job_id, True)


async def test_send_batch_with_a_reused_key_stores_nothing(
    gateway: tuple[Gateway, Stub],
) -> None:
    _, stub = gateway
    a = await stub.Send(order(idempotency_key="a", text="A"))
    b = await stub.Send(order(idempotency_key="b", text="B"))
    count = await enqueued(stub)
    batch = [
        order(idempotency_key="fresh-1", text="1"),
        order(idempotency_key="a", text="A"),  # a duplicate: fine alone
        pb.SendRequest(chat_id="9", text="no key"),
        order(idempotency_key="b", text="not B"),
        order(idempotency_key="fresh-2", text="2"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    exc = caught.value
    assert exc.code() == ALREADY_EXISTS
    message = exc.details() or ""
    assert "messages[3]" in message and f"job {b.job_id}" in message
    assert "nothing of the batch was stored" in message
    info, _ = details(exc)
    assert info.reason == "IDEMPOTENCY_KEY_REUSED"
    assert dict(info.metadata) == {"job_id": b.job_id, "idempotency_key": "b", "index": "3"}
    assert await enqueued(stub) == count

    # Without the conflict the same batch goes through: its fresh keys were not taken.
    del batch[3]
    reply = await stub.SendBatch(pb.SendBatchRequest(messages=batch))
    assert [r.duplicate for r in reply.results] == [False, True, False, False]
    assert reply.results[1].job_id == a.job_id
    assert await enqueued(stub) == count + 3


async def test_send_batch_of_one_reused_key_names_its_index(
    gateway: tuple[Gateway, Stub],
) -> None:
    _, stub = gateway
    first = await stub.Send(order(idempotency_key="solo", text="one"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SendBatch(
            pb.SendBatchRequest(messages=[order(idempotency_key="solo", text="two")])
        )
    assert caught.value.code() == ALREADY_EXISTS
    assert "messages[0]" in (caught.value.details() or "")
    info, _ = details(caught.value)
    assert dict(info.metadata) == {"job_id": first.job_id, "idempotency_key": "solo", "index": "0"}


async def test_one_key_twice_in_a_batch_is_refused_by_validation(
    gateway: tuple[Gateway, Stub],
) -> None:
    _, stub = gateway
    count = await enqueued(stub)
    for texts in (("x", "y"), ("x", "x")):
        batch = [order(idempotency_key="twice", text=t) for t in texts]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SendBatch(pb.SendBatchRequest(messages=batch))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await enqueued(stub) == count


async def keys_per_enqueue_call(
    redis: Redis, work: Callable[[], Awaitable[T]]
) -> tuple[T, list[list[str]]]:
    """Run ``work()`` and return its result with, for each enqueue script call Redis ran
    meanwhile, the idempotency keys it looked up (seen through MONITOR, which lists a
    script's own commands right after the call)."""
    sha = hashlib.sha1(Enqueue.text().encode()).hexdigest()
    marker = f"end-of-{sha}"
    calls: list[list[str]] = []
    watching = asyncio.Event()

    async def watch() -> None:
        current: list[str] | None = None
        async with redis.monitor() as monitor:
            watching.set()
            while True:
                seen = await monitor.next_command()
                command = seen["command"]
                if marker in command:
                    return
                if seen["client_type"] != "lua":
                    current = None
                    if command.startswith("EVALSHA") and sha in command:
                        current = []
                        calls.append(current)
                elif current is not None and command.startswith("GET ") and ":idem:" in command:
                    current.append(command.split(":idem:", 1)[1])

    watcher = asyncio.ensure_future(watch())
    await watching.wait()
    await asyncio.sleep(0.05)  # MONITOR is on once the server answered it
    result = await work()
    await redis.echo(marker)
    await asyncio.wait_for(watcher, 10)
    return result, calls


async def test_concurrent_sends_sharing_a_call_fail_only_the_conflicting_one(
    gateway: tuple[Gateway, Stub], redis: Redis
) -> None:
    _, stub = gateway
    taken = await stub.Send(order(idempotency_key="taken", text="first"))

    async def burst(requests: list[pb.SendRequest]) -> list[Any]:
        # Redis holds writes back for a moment: the first Send's call waits, and the
        # Sends arriving meanwhile pile up for the next call, which they share.
        await redis.client_pause(300, all=False)
        return await asyncio.gather(*(stub.Send(r) for r in requests), return_exceptions=True)

    for attempt in range(5):
        fresh = [order(idempotency_key=f"b{attempt}-{i}", text=f"m{i}") for i in range(12)]
        requests = [*fresh[:6], order(idempotency_key="taken", text="second"), *fresh[6:]]
        results, calls = await keys_per_enqueue_call(redis, lambda: burst(requests))
        # Every Send went through exactly one call.
        assert sorted(k for call in calls for k in call) == sorted(
            r.idempotency_key for r in requests
        )
        conflict = results.pop(6)
        assert isinstance(conflict, grpc.aio.AioRpcError), conflict
        assert conflict.code() == ALREADY_EXISTS
        info, _ = details(conflict)
        assert info.metadata["job_id"] == taken.job_id
        assert all(isinstance(r, pb.SendResponse) and not r.duplicate for r in results), results
        for request, reply in zip(fresh, results, strict=True):
            job = (await stub.GetJob(pb.GetJobRequest(job_id=reply.job_id))).job
            assert job.request == request
        if any("taken" in call and len(call) > 1 for call in calls):
            break  # the conflicting Send shared its call with others
    else:
        pytest.fail("the conflicting Send never shared an enqueue call with the others")


async def test_client_raises_already_exists_error(gateway: tuple[Gateway, Stub]) -> None:
    gw, _ = gateway
    async with AsyncNotificationClient(f"127.0.0.1:{gw.port}") as client:
        first = await client.send("55", "hello", idempotency_key="client-key")
        assert (await client.send("55", "hello", idempotency_key="client-key")).duplicate
        with pytest.raises(AlreadyExistsError) as caught:
            await client.send("55", "goodbye", idempotency_key="client-key")
        err = caught.value
        assert err.code == ALREADY_EXISTS and err.reason == "IDEMPOTENCY_KEY_REUSED"
        assert (err.job_id, err.idempotency_key, err.index) == (first.job_id, "client-key", None)
        assert err.metadata == {"job_id": first.job_id, "idempotency_key": "client-key"}
        assert str(err).startswith("ALREADY_EXISTS: ")

        with pytest.raises(AlreadyExistsError) as caught:
            await client.send_batch(
                [
                    pb.SendRequest(chat_id="55", text="new"),
                    pb.SendRequest(chat_id="55", text="goodbye", idempotency_key="client-key"),
                ]
            )
        assert (caught.value.job_id, caught.value.index) == (first.job_id, 1)
