"""Bad input and a misconfigured Redis: the server never crashes, never answers
INTERNAL/UNKNOWN, never stores an invalid job and never loses a queued one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate.validation import validate_send
from notigate_client import pb, pb_grpc
from tests.conftest import Stub, free_port, gateway_settings, running_gateway, wait_state

# ALREADY_EXISTS: a valid request under an idempotency key an earlier, different one used.
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS}
SEND = "/notigate.v1.NotificationService/Send"

edge_text = st.one_of(
    st.text(min_size=1, max_size=50),
    st.text(max_size=50),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=4000, max_size=4200),
    st.sampled_from(["", " ", "\u200b", "\U0001f600" * 2049, "a" * 4096, "\x00", "<b>x</i>"]),
)
chat_ids = st.one_of(
    st.integers(min_value=1, max_value=10**12).map(str),
    st.integers(min_value=-(10**13), max_value=-1).map(str),
    st.from_regex(r"-?[0-9]{1,21}", fullmatch=True),
    st.from_regex(r"@[A-Za-z][A-Za-z0-9_]{0,40}", fullmatch=True),
    st.text(max_size=30),
)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def send_requests(draw: st.DrawFn) -> pb.SendRequest:
    request = pb.SendRequest(
        chat_id=draw(chat_ids),
        text=draw(edge_text),
        parse_mode=draw(st.one_of(st.integers(0, 3), st.integers(-5, 10))),  # type: ignore[arg-type]
        priority=draw(st.one_of(st.integers(0, 10), int32)),
        message_thread_id=draw(st.one_of(st.just(0), int64)),
        idempotency_key=draw(st.one_of(st.just(""), st.text(max_size=300))),
        max_attempts=draw(st.one_of(st.integers(0, 10), int32)),
        disable_notification=draw(st.booleans()),
    )
    if draw(st.integers(0, 3)) == 0:
        request.delay.seconds = draw(st.integers(min_value=-(10**12), max_value=10**12))
        request.delay.nanos = draw(int32)
    if draw(st.integers(0, 3)) == 0:
        row = request.reply_markup.rows.add()
        for _ in range(draw(st.integers(min_value=0, max_value=10))):
            button = row.buttons.add(text=draw(st.text(max_size=5)))
            kind = draw(st.sampled_from(["url", "callback_data", "none"]))
            if kind != "none":
                setattr(button, kind, draw(st.text(max_size=80)))
    if draw(st.integers(0, 3)) == 0:
        request.link_preview.url = draw(st.text(max_size=20))
        request.link_preview.prefer_small_media = draw(st.booleans())
        request.link_preview.prefer_large_media = draw(st.booleans())
    return request


def fuzz(port: int) -> dict[str, int]:
    """Runs in a thread beside the event loop that serves the gateway."""
    outcomes: dict[str, int] = {}
    # Idempotency key -> the first accepted request with it (deterministic serialization).
    keys: dict[str, bytes] = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.NotificationServiceStub(channel)
        raw = channel.unary_unary(SEND)  # bytes in, bytes out

        def call(method: object, request: object) -> grpc.StatusCode:
            try:
                method(request, timeout=10)  # type: ignore[operator]
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return,attr-defined]

        @settings(
            max_examples=1200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(send_requests())
        def structured(request: pb.SendRequest) -> None:
            code = call(stub.Send, request)
            outcomes[code.name] = outcomes.get(code.name, 0) + 1
            assert code in ALLOWED, (code, request)
            # A request is accepted exactly when it is valid, and its key (if any) is new
            # or came with this very request.
            valid = validate_send(request) == []
            key, body = request.idempotency_key, request.SerializeToString(deterministic=True)
            reused = valid and bool(key) and keys.get(key, body) != body
            assert (code == grpc.StatusCode.OK) == (valid and not reused), (code, request)
            assert (code == grpc.StatusCode.ALREADY_EXISTS) == reused, (code, request)
            if code == grpc.StatusCode.OK and key:
                keys.setdefault(key, body)

        @settings(
            max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(st.binary(max_size=2000))
        def garbage(data: bytes) -> None:
            code = call(raw, data)
            outcomes[code.name] = outcomes.get(code.name, 0) + 1
            assert code in ALLOWED, (code, data)

        structured()
        garbage()
    return outcomes


async def test_random_and_malformed_requests(gateway: tuple[object, Stub]) -> None:
    gw, stub = gateway
    gw.dispatcher.pause()  # type: ignore[attr-defined]  # keep accepted jobs inspectable
    outcomes = await asyncio.to_thread(fuzz, gw.port)  # type: ignore[attr-defined]
    print(f"\nfuzzed Send: {outcomes}")
    assert outcomes.get("OK", 0) > 0 and outcomes.get("INVALID_ARGUMENT", 0) > 0
    # Every stored job is a valid one.
    token = ""
    stored = 0
    while True:
        page = await stub.ListJobs(pb.ListJobsRequest(page_size=1000, page_token=token))
        for job in page.jobs:
            assert validate_send(job.request) == [], job
        stored += len(page.jobs)
        token = page.next_page_token
        if not token:
            break
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stored == stats.total_enqueued


async def test_oversized_message_is_refused(gateway: tuple[object, Stub]) -> None:
    _, stub = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(pb.SendRequest(chat_id="1", text="x" * (2 << 20)))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.GetStats(pb.GetStatsRequest())).total_enqueued == 0


async def test_evicting_maxmemory_policy_is_reported(
    tmp_path: Path, simulator: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    own = EmbeddedValkey(tmp_path / "vk", port=free_port())
    await own.start()
    client = Redis.from_url(own.url)
    try:
        await client.config_set("maxmemory-policy", "allkeys-lru")
        async with running_gateway(gateway_settings(own, simulator)) as (_, stub):
            stats = await stub.GetStats(pb.GetStatsRequest())
            assert any("allkeys-lru" in w and "noeviction" in w for w in stats.warnings)
        assert "maxmemory-policy is allkeys-lru" in caplog.text
    finally:
        await client.aclose()
        await own.stop()


async def test_out_of_memory_refuses_new_jobs_and_keeps_queued_ones(
    tmp_path: Path, simulator: BotApiSimulator
) -> None:
    own = EmbeddedValkey(tmp_path / "vk", port=free_port())
    await own.start()
    client = Redis.from_url(own.url, socket_timeout=5)
    try:
        async with running_gateway(gateway_settings(own, simulator)) as (gw, stub):
            gw.dispatcher.pause()
            batch = pb.SendBatchRequest(
                messages=[pb.SendRequest(chat_id=str(500 + i), text=f"q{i}") for i in range(20)]
            )
            queued = [r.job_id for r in (await stub.SendBatch(batch, timeout=10)).results]
            # Any write now exceeds maxmemory, as when Redis is full.
            await client.config_set("maxmemory", "1")
            for call in (
                stub.Send(pb.SendRequest(chat_id="1", text="refused"), timeout=10),
                stub.SendBatch(batch, timeout=10),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Delivery goes on while Redis is full (the scripts may run under OOM), and
            # every queued job is still there.
            gw.dispatcher.resume()
            for job_id in queued:
                await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            assert stats.total_enqueued == 20 and stats.total_sent == 20
            print(f"\nOOM: queued={len(queued)} refused new Send/SendBatch, delivered=20")
            await client.config_set("maxmemory", "0")
            await stub.Send(pb.SendRequest(chat_id="1", text="after"), timeout=10)
    finally:
        await client.aclose()
        await own.stop()
