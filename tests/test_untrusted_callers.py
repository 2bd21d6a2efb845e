"""What the log and the metrics make of strangers: forged log lines, undecodable requests on
every service, rejected and unknown calls in the gRPC metrics."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2
from redis.asyncio import Redis

from notigate import rpc_status
from notigate.embedded import EmbeddedValkey
from notigate.logs import setup_logging
from notigate.metrics import GRPC_CODE_NAMES
from notigate.simulator import BotApiSimulator
from notigate_client import from_rpc_error, pb
from tests.conftest import gateway_settings, running_gateway
from tests.test_metrics import scrape, value

TOKEN = "tok-" + "s" * 28
AUTH = (("authorization", f"Bearer {TOKEN}"),)
FORGED = "2026-12-01 00:00:00,000 INFO    notigate.app: notigate stopped"
# A method path with a line break and an ANSI sequence (clear screen, red).
EVIL_PATH = f"/notigate.v1.NotificationService/Send\n{FORGED}\x1b[2J\x1b[31m"
GARBAGE = b"\xff\xff\xff\xff"


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The gateway's own text format, as `notigate serve` writes it."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    setup_logging("info", "text", stream=buf)
    yield buf
    for handler in [h for h in root.handlers if getattr(h, "_notigate", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


async def test_a_forged_method_path_leaves_one_escaped_line(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, text_log: io.StringIO
) -> None:
    settings = gateway_settings(valkey, simulator, api_tokens=(TOKEN,))
    async with (
        running_gateway(settings) as (gw, _),
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel,
    ):
        for _ in range(20):  # no token
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(EVIL_PATH)(b"", timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    lines = text_log.getvalue().splitlines()
    assert not any(line.startswith(FORGED) for line in lines)
    assert "\x1b" not in text_log.getvalue()
    mentions = [line for line in lines if "notigate stopped" in line and "rejected" in line]
    # One warning for the 20 rejections (aggregated), the path escaped on its line.
    assert len(mentions) == 1, mentions
    assert "Send\\n2026-12-01" in mentions[0] and "\\x1b[2J\\x1b[31m" in mentions[0]
    assert "rejected 1 call(s)" in mentions[0]


def test_rejections_are_summed_up_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    from notigate.security import RejectionLog

    caplog.set_level(logging.DEBUG, logger="notigate.security")
    now = [1000.0]
    rejections = RejectionLog(60.0, clock=lambda: now[0])
    for _ in range(5):
        rejections.rejected("/a/B", "ipv4:127.0.0.1:1", rpc_status.Reason.AUTH_MISSING)
        now[0] += 1
    now[0] += 60
    rejections.rejected("/a/C", "ipv4:127.0.0.1:2", rpc_status.Reason.AUTH_INVALID)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("rejected 1 call(s)")
    # The second covers the four held back plus its own, and names the latest.
    assert warnings[1].startswith("rejected 5 call(s)") and "/a/C" in warnings[1]
    assert "AUTH_INVALID" in warnings[1]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 6


async def test_undecodable_requests_are_invalid_argument_on_every_service(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = gateway_settings(valkey, simulator, api_tokens=(TOKEN,))
    async with running_gateway(settings) as (gw, stub):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            calls = {
                "Health/Check": channel.unary_unary("/grpc.health.v1.Health/Check")(
                    GARBAGE, timeout=10
                ),
                "Health/Watch": channel.unary_stream("/grpc.health.v1.Health/Watch")(
                    GARBAGE, timeout=10
                ),
                "reflection": channel.stream_stream(
                    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
                )(iter([GARBAGE]), metadata=AUTH, timeout=10),
                "Send": channel.unary_unary("/notigate.v1.NotificationService/Send")(
                    GARBAGE, metadata=AUTH, timeout=10
                ),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    if hasattr(call, "__aiter__"):
                        async for _ in call:
                            pass
                    else:
                        await call
                err = from_rpc_error(info.value)
                assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (name, info.value)
                assert "not a valid protobuf message" in str(info.value.details()), name
                assert "DecodeError" not in str(info.value.details()), name
                assert [field for field, _ in err.violations] == [""], name  # type: ignore[attr-defined]
        # Nothing was stored, and the services still answer valid requests.
        assert (await stub.GetStats(pb.GetStatsRequest(), metadata=AUTH)).total_enqueued == 0
    # The gateway's and grpc's records only: asyncio may log about an earlier test's garbage.
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("notigate", "grpc")
    ]
    assert errors == [], [r.getMessage() for r in errors]
    undecodable = [r for r in caplog.records if "undecodable request" in r.getMessage()]
    assert len(undecodable) == 4 and all(r.levelno == logging.DEBUG for r in undecodable)


async def test_rejected_and_unknown_calls_are_counted(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(
        valkey, simulator, api_tokens=(TOKEN,), metrics_listen="127.0.0.1:0"
    )
    async with running_gateway(settings) as (gw, stub):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.GetStats(pb.GetStatsRequest(), timeout=10)  # no token
            for path in (EVIL_PATH, "/evil.Service/Probe"):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await channel.unary_unary(path)(b"", timeout=10)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary("/evil.Service/Probe")(b"", metadata=AUTH, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary("/notigate.v1.NotificationService/Send")(
                    GARBAGE, metadata=AUTH, timeout=10
                )
            await channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            )(health_pb2.HealthCheckRequest(), timeout=10)
        got = await scrape(gw.metrics_port)

    def handled(service: str, method: str, code: grpc.StatusCode, kind: str = "unary") -> float:
        labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method}
        return value(got, "grpc_server_handled_total", **labels, grpc_code=GRPC_CODE_NAMES[code])

    api = "notigate.v1.NotificationService"
    started = {"grpc_type": "unary", "grpc_service": api, "grpc_method": "GetStats"}
    assert value(got, "grpc_server_started_total", **started) == 3
    assert handled(api, "GetStats", grpc.StatusCode.UNAUTHENTICATED) == 3
    assert handled(api, "Send", grpc.StatusCode.INVALID_ARGUMENT) == 1
    unknown = {"grpc_type": "unknown", "grpc_service": "unknown", "grpc_method": "unknown"}
    assert value(got, "grpc_server_started_total", **unknown) == 3
    assert handled("unknown", "unknown", grpc.StatusCode.UNAUTHENTICATED, "unknown") == 2
    assert handled("unknown", "unknown", grpc.StatusCode.UNIMPLEMENTED, "unknown") == 1
    assert handled("grpc.health.v1.Health", "Check", grpc.StatusCode.OK) >= 1
    # No series takes its name from the caller.
    assert not any("evil" in str(labels) or "\n" in str(labels) for _, labels in got)
