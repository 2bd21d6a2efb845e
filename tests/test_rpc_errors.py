"""rpc_status -> wire -> client errors, through a real grpc.aio server on port 0.

The handlers here are stand-ins that abort with statuses built by notigate.rpc_status; the
real servicer is tested in test_server.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from notigate import rpc_status
from notigate.validation import validate_batch
from notigate_client import (
    AlreadyExistsError,
    AsyncNotificationClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    NotificationClient,
    NotigateError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    pb,
    pb_grpc,
)
from notigate_client._common import RetryPolicy

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


class Servicer(pb_grpc.NotificationServiceServicer):
    """Every RPC runs ``self.handler``; requests and metadata are recorded."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []

    async def _run(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        assert self.handler is not None
        return await self.handler(request, context)

    Send = SendBatch = GetJob = CancelJob = ListJobs = RetryJob = GetStats = _run


@pytest.fixture
async def server() -> AsyncIterator[tuple[Servicer, str]]:
    servicer = Servicer()
    srv = grpc.aio.server()
    pb_grpc.add_NotificationServiceServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield servicer, f"127.0.0.1:{port}"
    await srv.stop(None)


def aborting(status: grpc.Status) -> Handler:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await rpc_status.abort(context, status)

    return handler


async def test_invalid_argument_round_trip(server: tuple[Servicer, str]) -> None:
    servicer, target = server
    req = pb.SendBatchRequest(
        messages=[pb.SendRequest(chat_id="1", text="ok"), pb.SendRequest(chat_id="x", text="")]
    )
    servicer.handler = aborting(rpc_status.invalid_argument(validate_batch(req)))
    async with AsyncNotificationClient(target) as client:
        with pytest.raises(InvalidArgumentError) as info:
            await client.send_batch(list(req.messages))
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in err.violations] == ["messages[1].chat_id", "messages[1].text"]
    assert all(d for _, d in err.violations)
    assert err.reason == "INVALID_REQUEST"
    assert err.message.startswith("invalid request: messages[1].chat_id")
    assert len(servicer.requests) == 1  # not retried
    assert isinstance(err.__cause__, grpc.aio.AioRpcError)


async def test_sync_client_maps_the_same(server: tuple[Servicer, str]) -> None:
    servicer, target = server
    servicer.handler = aborting(rpc_status.not_found("job", "42"))

    def call() -> NotFoundError:
        with NotificationClient(target) as client, pytest.raises(NotFoundError) as info:
            client.get_job("42")
        return info.value

    # The sync client blocks; run it off the loop that serves it.
    err = await asyncio.to_thread(call)
    assert (err.resource_type, err.resource_name) == ("job", "42")
    assert err.reason == "JOB_NOT_FOUND"
    assert isinstance(err.__cause__, grpc.RpcError)


async def test_already_exists_round_trip(server: tuple[Servicer, str]) -> None:
    servicer, target = server
    metadata = {"idempotency_key": "order-42", "job_id": "17", "index": "3"}
    servicer.handler = aborting(
        rpc_status.already_exists("job", "17", "messages[3]: key reused", metadata=metadata)
    )

    def call() -> AlreadyExistsError:
        with NotificationClient(target, retries=3) as client:
            with pytest.raises(AlreadyExistsError) as info:
                client.send_request(pb.SendRequest(chat_id="1", text="x", idempotency_key="k"))
            return info.value

    err = await asyncio.to_thread(call)
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.reason == "IDEMPOTENCY_KEY_REUSED"
    assert (err.job_id, err.idempotency_key, err.index) == ("17", "order-42", 3)
    assert err.metadata == metadata
    assert str(err) == "ALREADY_EXISTS: messages[3]: key reused"
    assert len(servicer.requests) == 1  # a conflict is not retried
    assert isinstance(err, NotigateError) and isinstance(err.__cause__, grpc.RpcError)


async def test_already_exists_without_an_existing_resource(server: tuple[Servicer, str]) -> None:
    servicer, target = server
    servicer.handler = aborting(rpc_status.already_exists("job", "", "reused", metadata={}))
    async with AsyncNotificationClient(target) as client:
        with pytest.raises(AlreadyExistsError) as info:
            await client.send("1", "x")
    assert (info.value.job_id, info.value.index, info.value.metadata) == ("", None, {})
    assert info.value.reason == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (
            rpc_status.failed_precondition(
                [rpc_status.precondition_violation("JOB_STATE", "jobs/7", "job 7 is COMPLETED")],
                reason=rpc_status.Reason.JOB_NOT_CANCELLABLE,
            ),
            FailedPreconditionError,
        ),
        (rpc_status.resource_exhausted("queue full", retry_after_s=2.5), ResourceExhaustedError),
        (rpc_status.unauthenticated(), UnauthenticatedError),
        (rpc_status.internal(), NotigateError),
    ],
)
async def test_error_types(
    server: tuple[Servicer, str], status: grpc.Status, error_type: type[NotigateError]
) -> None:
    servicer, target = server
    servicer.handler = aborting(status)
    async with AsyncNotificationClient(target, retries=3) as client:
        with pytest.raises(error_type) as info:
            await client.cancel_job("7")
    assert type(info.value) is error_type
    assert info.value.code == status.code
    assert info.value.message == status.details
    assert len(servicer.requests) == 1
    if isinstance(info.value, FailedPreconditionError):
        assert info.value.violations == [("JOB_STATE", "jobs/7", "job 7 is COMPLETED")]
        assert info.value.reason == "JOB_NOT_CANCELLABLE"
    if isinstance(info.value, ResourceExhaustedError):
        assert info.value.retry_after_s == 2.5


async def test_unavailable_is_retried_with_one_idempotency_key(
    server: tuple[Servicer, str],
) -> None:
    servicer, target = server

    async def flaky(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if len(servicer.requests) < 3:
            await rpc_status.abort(
                context, rpc_status.unavailable("redis down", retry_after_s=0.01)
            )
        return pb.SendResponse(job_id="1")

    servicer.handler = flaky
    async with AsyncNotificationClient(target, token="t0k", retries=3) as client:
        client._retry = RetryPolicy(retries=3, initial_backoff_s=0.01)
        resp = await client.send("1", "hi")
    assert resp.job_id == "1"
    keys = {r.idempotency_key for r in servicer.requests}
    assert len(servicer.requests) == 3 and len(keys) == 1 and keys != {""}
    assert all(m["authorization"] == "Bearer t0k" for m in servicer.metadata)


async def test_retries_give_up(server: tuple[Servicer, str]) -> None:
    servicer, target = server
    servicer.handler = aborting(rpc_status.unavailable("down", retry_after_s=0))

    def call() -> UnavailableError:
        with NotificationClient(target, retries=2) as client:
            client._retry = RetryPolicy(retries=2, initial_backoff_s=0.001)
            with pytest.raises(UnavailableError) as info:
                client.send_request(pb.SendRequest(chat_id="1", text="x", idempotency_key="k"))
            return info.value

    err = await asyncio.to_thread(call)
    assert err.reason == "REDIS_UNAVAILABLE" and err.retry_after_s == 0
    assert [r.idempotency_key for r in servicer.requests] == ["k", "k", "k"]


async def test_abort_keeps_earlier_trailing_metadata(server: tuple[Servicer, str]) -> None:
    servicer, target = server

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        context.set_trailing_metadata((("x-request-id", "abc"),))
        await rpc_status.abort(context, rpc_status.not_found("job", "9"))

    servicer.handler = handler
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.NotificationServiceStub(channel).GetJob(pb.GetJobRequest(job_id="9"))
    keys = [k for k, _ in info.value.trailing_metadata()]
    assert "x-request-id" in keys and rpc_status.DETAILS_METADATA_KEY in keys


async def test_huge_violation_list_still_reaches_the_client(
    server: tuple[Servicer, str],
) -> None:
    servicer, target = server
    bad = [pb.SendRequest(chat_id="nope", text="") for _ in range(1000)]
    violations = validate_batch(pb.SendBatchRequest(messages=bad))
    assert len(violations) == 2000
    servicer.handler = aborting(rpc_status.invalid_argument(violations))
    async with AsyncNotificationClient(target) as client:
        with pytest.raises(InvalidArgumentError) as info:
            await client.send_batch(bad)
    err = info.value
    assert 0 < len(err.violations) < 2000
    assert err.violations[0][0] == "messages[0].chat_id"
    assert "of 2000 violations" in err.message


async def test_list_jobs_follows_page_tokens(server: tuple[Servicer, str]) -> None:
    servicer, target = server

    async def pages(request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = int(request.page_token or 0)
        end = min(start + request.page_size, 5)
        return pb.ListJobsResponse(
            jobs=[pb.Job(job_id=str(i + 1)) for i in range(start, end)],
            next_page_token=str(end) if end < 5 else "",
        )

    servicer.handler = pages
    async with AsyncNotificationClient(target) as client:
        ids = [job.job_id async for job in client.list_jobs(pb.JOB_STATE_FAILED, page_size=2)]
    assert ids == ["1", "2", "3", "4", "5"]
    assert {r.state for r in servicer.requests} == {pb.JOB_STATE_FAILED}

    def sync_ids() -> list[str]:
        with NotificationClient(target) as client:
            return [job.job_id for job in client.list_jobs(page_size=3)]

    assert await asyncio.to_thread(sync_ids) == ["1", "2", "3", "4", "5"]
