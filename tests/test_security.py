"""Security: bearer tokens, TLS and mutual TLS on the gRPC port, Redis passwords and
rediss://, and no secret in any output of a gateway put through failures.

Everything is real: a grpc.aio server, Valkey/Redis child processes, certificates from a
private CA made by trustme, the Bot API simulator over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from notigate import security
from notigate.app import Gateway
from notigate.config import ConfigError, Settings, TokenBinding, from_env
from notigate.embedded import EmbeddedValkey, valkey_binary
from notigate.errors import StartupRefused
from notigate.simulator import BotApiSimulator, SimulatorConfig
from notigate_client import AsyncNotificationClient, from_rpc_error, pb, pb_grpc
from tests.conftest import free_port, gateway_settings, running_gateway, wait_for, wait_state

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
NOTIGATE = str(Path(sys.executable).parent / "notigate")

TOKEN_A = "tok-A-" + "a" * 24
TOKEN_B = "tok-B-" + "b" * 40


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def health(target: str, credentials: grpc.ChannelCredentials | None = None) -> int:
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(reply.status)


async def reflected_services(port: int, metadata: Sequence[tuple[str, str]] = ()) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=metadata,
            timeout=5,
        )
        async for reply in call:
            return [s.name for s in reply.list_services_response.service]
    raise AssertionError("no reflection reply")


# -- bearer tokens ------------------------------------------------------------------------


async def test_every_api_call_needs_a_valid_bearer_token(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Debug: each rejection is logged there (warnings sum them up), and must not leak either.
    caplog.set_level(logging.DEBUG, logger="notigate.security")
    settings = gateway_settings(valkey, simulator, api_tokens=(TOKEN_A, TOKEN_B))
    async with running_gateway(settings) as (gw, stub):
        rejected: list[tuple[Sequence[tuple[str, str]], str]] = [
            ((), "AUTH_MISSING"),
            ((("authorization", f"Basic {TOKEN_A}"),), "AUTH_MISSING"),
            ((("authorization", "Bearer"),), "AUTH_MISSING"),
            ((("authorization", "Bearer   "),), "AUTH_MISSING"),
            ((("authorization", TOKEN_A),), "AUTH_MISSING"),
            # Two headers are ambiguous even when one of them is right.
            ((*bearer(TOKEN_A), *bearer("wrong")), "AUTH_MISSING"),
            (bearer("wrong-token-123"), "AUTH_INVALID"),
            (bearer(TOKEN_A[:-1]), "AUTH_INVALID"),
            (bearer(TOKEN_A + "a"), "AUTH_INVALID"),
            (bearer(TOKEN_A.upper()), "AUTH_INVALID"),
        ]
        for metadata, reason in rejected:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStats(pb.GetStatsRequest(), metadata=metadata, timeout=5)
            err = from_rpc_error(info.value)
            assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason), metadata
            shown = f"{info.value.details()} {info.value.trailing_metadata()}"
            assert not any(s in shown for s in (TOKEN_A, TOKEN_B, "wrong", TOKEN_A[:-1]))

        # Nothing is stored for a rejected Send: the servicer never runs.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Send(pb.SendRequest(chat_id="1", text="x"), metadata=bearer("nope"))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(TOKEN_A))
        assert list(listed.jobs) == []

        # The client-streaming UploadFile too: refused before a byte is stored.
        async def upload() -> AsyncIterator[pb.UploadFileRequest]:
            yield pb.UploadFileRequest(metadata=pb.UploadMetadata(filename="a.txt", size=2))
            yield pb.UploadFileRequest(chunk=b"hi")

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.UploadFile(upload(), metadata=bearer("nope"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert gw.queue is not None
        assert await redis.get(gw.queue.keys.prefix + "upload_bytes") in (None, b"0")
        stored = await stub.UploadFile(upload(), metadata=bearer(TOKEN_A), timeout=5)
        assert stored.size == 2

        # Every configured token works; the scheme is case-insensitive (RFC 7235).
        for metadata in (
            bearer(TOKEN_A),
            bearer(TOKEN_B),
            (("authorization", f"bearer {TOKEN_B}"),),
        ):
            await stub.GetStats(pb.GetStatsRequest(), metadata=metadata, timeout=5)
        sent = await stub.Send(pb.SendRequest(chat_id="1", text="hi"), metadata=bearer(TOKEN_A))
        assert sent.job_id

        # An unknown method is answered UNAUTHENTICATED too: no token, no method list.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            probe = channel.unary_unary("/notigate.v1.NotificationService/NoSuchMethod")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await probe(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await probe(b"", metadata=bearer(TOKEN_A), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED

    assert "rejected /notigate.v1.NotificationService/GetStats" in caplog.text
    for secret in (TOKEN_A, TOKEN_B, "wrong-token-123", TOKEN_A[:-1]):
        assert secret not in caplog.text


async def test_health_stays_open_and_reflection_follows_the_api_rule(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, api_tokens=(TOKEN_A,))
    async with Gateway(settings) as gw:
        target = f"127.0.0.1:{gw.port}"
        assert await health(target) == SERVING
        async with grpc.aio.insecure_channel(target) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            async for reply in watch:
                assert reply.status == SERVING
                break
            watch.cancel()

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await reflected_services(gw.port)
        assert from_rpc_error(info.value).reason == "AUTH_MISSING"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await reflected_services(gw.port, bearer("wrong"))
        assert from_rpc_error(info.value).reason == "AUTH_INVALID"
        assert "notigate.v1.NotificationService" in await reflected_services(
            gw.port, bearer(TOKEN_A)
        )

    opened = settings.replace(reflection_open=True)
    async with running_gateway(opened) as (gw, stub):
        assert "notigate.v1.NotificationService" in await reflected_services(gw.port)
        # Opening reflection opens nothing else.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetStats(pb.GetStatsRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_without_api_tokens_nothing_is_required(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator)
    assert security.auth_interceptor(settings) is None
    async with running_gateway(settings) as (gw, stub):
        await stub.GetStats(pb.GetStatsRequest(), timeout=5)
        # A stray header is not checked when no token is configured.
        await stub.GetStats(pb.GetStatsRequest(), metadata=bearer("anything"), timeout=5)
        assert "grpc.health.v1.Health" in await reflected_services(gw.port)


def test_the_interceptor_keeps_no_plaintext_token() -> None:
    interceptor = security.BearerAuthInterceptor([TOKEN_A])
    assert TOKEN_A not in repr(vars(interceptor))
    assert TOKEN_A.encode() not in b"".join(interceptor._digests)
    assert interceptor.check(bearer(TOKEN_A), security.API_SERVICE + "Send") is None
    with pytest.raises(ValueError, match="at least one token"):
        security.BearerAuthInterceptor([])


def test_plaintext_token_warning_only_off_loopback() -> None:
    base = Settings(api_tokens=(TOKEN_A,))
    assert security.plaintext_token_warning(base.replace(listen="127.0.0.1:1")) is None
    assert security.plaintext_token_warning(base.replace(listen="[::1]:1")) is None
    assert security.plaintext_token_warning(base.replace(listen="localhost:1")) is None
    warning = security.plaintext_token_warning(base.replace(listen="0.0.0.0:1"))
    assert warning is not None
    assert TOKEN_A not in warning
    assert security.plaintext_token_warning(Settings(listen="0.0.0.0:1")) is None


# -- read-only tokens ---------------------------------------------------------------------

TOKEN_R = "tok-R-" + "r" * 32
API = pb.DESCRIPTOR.services_by_name["NotificationService"]


def test_every_rpc_is_classified_as_a_read_or_a_change() -> None:
    methods = {f"/{API.full_name}/{m.name}" for m in API.methods}
    assert methods == security.READ_METHODS | security.WRITE_METHODS
    assert not security.READ_METHODS & security.WRITE_METHODS


def test_a_read_only_token_may_read_every_bot() -> None:
    bound = "tok-bound-" + "c" * 20
    settings = Settings(
        api_tokens=(TOKEN_A,),
        readonly_tokens=(TOKEN_R,),
        token_bindings=(
            TokenBinding(sha256=security.token_sha256(bound), bots=frozenset({"alerts"})),
        ),
    )
    # A read-only token is bound to no bot: it may read every one.
    access = security.BotAccess(settings.token_bindings)
    assert access.allowed(bearer(TOKEN_R)) is None
    assert access.allowed(bearer(bound)) == frozenset({"alerts"})


def test_the_interceptor_refuses_a_read_only_tokens_changes() -> None:
    interceptor = security.BearerAuthInterceptor([TOKEN_A], readonly_tokens=[TOKEN_R])
    assert TOKEN_R not in repr(vars(interceptor))
    for method in security.READ_METHODS | {security.REFLECTION_PREFIXES[0] + "Info"}:
        assert interceptor.check(bearer(TOKEN_R), method) is None, method
    refused = security.WRITE_METHODS | {security.API_SERVICE + "NoSuchMethod", "/x.Y/Z"}
    for method in refused:
        assert interceptor.check(bearer(TOKEN_R), method) == "READ_ONLY_TOKEN", method
        assert interceptor.check(bearer(TOKEN_A), method) is None, method
    assert interceptor.check(bearer("nope"), security.API_SERVICE + "GetJob") == "AUTH_INVALID"


async def _await_state(stub: Any, job_id: str, state: int) -> None:
    async def reached() -> bool:
        reply = await stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=bearer(TOKEN_A))
        return bool(reply.job.state == state)

    await wait_for(reached, timeout_s=20)


async def _passes_the_token_check(name: str, call: Any) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        # A method this gateway does not serve yet is past the token check all the same.
        assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, (name, exc)


async def test_a_read_only_token_reads_everything_and_changes_nothing(
    redis: Redis,
    valkey: EmbeddedValkey,
    simulator: BotApiSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="notigate.security")
    admin, reader = bearer(TOKEN_A), bearer(TOKEN_R)
    settings = gateway_settings(
        valkey, simulator, api_tokens=(TOKEN_A,), readonly_tokens=(TOKEN_R,)
    )
    async with running_gateway(settings) as (gw, stub):
        # One job of each kind a change could touch: delivered, failed (its chat
        # suppressed) and delayed.
        delivered = (await stub.Send(pb.SendRequest(chat_id="1", text="hi"), metadata=admin)).job_id
        simulator.block_chat("666")
        failed = (
            await stub.Send(pb.SendRequest(chat_id="666", text="blocked"), metadata=admin)
        ).job_id
        later = pb.SendRequest(chat_id="2", text="later")
        later.delay.FromSeconds(3600)
        delayed = (await stub.Send(later, metadata=admin)).job_id
        await _await_state(stub, delivered, pb.JOB_STATE_COMPLETED)
        await _await_state(stub, failed, pb.JOB_STATE_FAILED)
        await _await_state(stub, delayed, pb.JOB_STATE_DELAYED)

        async def world() -> tuple[Any, ...]:
            jobs = await stub.ListJobs(pb.ListJobsRequest(page_size=100), metadata=admin)
            chats = await stub.ListSuppressedChats(pb.ListSuppressedChatsRequest(), metadata=admin)
            assert gw.queue is not None
            uploads = await redis.get(gw.queue.keys.prefix + "upload_bytes")
            return (
                sorted(
                    (j.job_id, j.state, j.attempts, j.update_time.ToMilliseconds())
                    for j in jobs.jobs
                ),
                [c.chat_id for c in chats.chats],
                uploads,
            )

        before = await world()
        assert len(before[0]) == 3 and before[1] == ["666"]

        # Every read works with the read-only token.
        job = (await stub.GetJob(pb.GetJobRequest(job_id=delivered), metadata=reader)).job
        assert job.state == pb.JOB_STATE_COMPLETED
        listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=reader)
        assert {j.job_id for j in listed.jobs} == {delivered, failed, delayed}
        stats = await stub.GetStats(pb.GetStatsRequest(), metadata=reader)
        assert stats.failed == 1
        chats = await stub.ListSuppressedChats(pb.ListSuppressedChatsRequest(), metadata=reader)
        assert [c.chat_id for c in chats.chats] == ["666"]
        for name, call in (
            ("SearchJobs", stub.SearchJobs(pb.SearchJobsRequest(chat_id="666"), metadata=reader)),
            (
                "ListJobEvents",
                stub.ListJobEvents(pb.ListJobEventsRequest(job_id=delivered), metadata=reader),
            ),
            ("GetThroughput", stub.GetThroughput(pb.GetThroughputRequest(), metadata=reader)),
        ):
            await _passes_the_token_check(name, call)
        watch = stub.WatchEvents(pb.WatchEventsRequest(start_cursor="0-0"), metadata=reader)
        async for event in watch:
            assert event.event.job_id in {delivered, failed, delayed}
            break
        watch.cancel()
        assert "notigate.v1.NotificationService" in await reflected_services(gw.port, reader)

        # Every change is refused before the servicer runs.
        async def upload() -> AsyncIterator[pb.UploadFileRequest]:
            yield pb.UploadFileRequest(metadata=pb.UploadMetadata(filename="a.txt", size=2))
            yield pb.UploadFileRequest(chunk=b"hi")

        batch = pb.SendBatchRequest(messages=[pb.SendRequest(chat_id="3", text="x")])
        any_failed = pb.JobFilter(state=pb.JOB_STATE_FAILED)
        changes: list[tuple[str, Any]] = [
            ("Send", stub.Send(pb.SendRequest(chat_id="3", text="x"), metadata=reader)),
            ("SendBatch", stub.SendBatch(batch, metadata=reader)),
            ("CancelJob", stub.CancelJob(pb.CancelJobRequest(job_id=delayed), metadata=reader)),
            ("RetryJob", stub.RetryJob(pb.RetryJobRequest(job_id=failed), metadata=reader)),
            ("CancelJobs", stub.CancelJobs(pb.CancelJobsRequest(), metadata=reader)),
            (
                "RetryJobs",
                stub.RetryJobs(pb.RetryJobsRequest(filter=any_failed), metadata=reader),
            ),
            ("UploadFile", stub.UploadFile(upload(), metadata=reader)),
            (
                "EditMessage",
                stub.EditMessage(
                    pb.EditMessageRequest(job_id=delivered, text="edited"), metadata=reader
                ),
            ),
            (
                "DeleteMessage",
                stub.DeleteMessage(pb.DeleteMessageRequest(job_id=delivered), metadata=reader),
            ),
            (
                "UnsuppressChat",
                stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="666"), metadata=reader),
            ),
        ]
        assert {f"{security.API_SERVICE}{name}" for name, _ in changes} == security.WRITE_METHODS
        for name, call in changes:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            err = from_rpc_error(info.value)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "READ_ONLY_TOKEN")
            assert f"this token may only read: {name} is a change" in err.message, err.message
            assert err.metadata == {"method": name}
        assert await world() == before

        # A wrong token is still unauthenticated, for reads and changes alike.
        for call in (
            stub.GetStats(pb.GetStatsRequest(), metadata=bearer(TOKEN_R + "x")),
            stub.Send(pb.SendRequest(chat_id="3", text="x"), metadata=bearer("nope")),
            stub.GetStats(pb.GetStatsRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # The full token still changes things.
        await stub.UnsuppressChat(pb.UnsuppressChatRequest(chat_id="666"), metadata=admin)
        assert (await world())[1] == []

    assert "rejected /notigate.v1.NotificationService/Send" in caplog.text
    assert TOKEN_R not in caplog.text and TOKEN_A not in caplog.text


async def test_read_only_tokens_alone_turn_authentication_on(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    settings = gateway_settings(valkey, simulator, readonly_tokens=(TOKEN_R,))
    assert security.auth_interceptor(settings) is not None
    async with running_gateway(settings) as (gw, stub):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetStats(pb.GetStatsRequest(), timeout=5)
        err = from_rpc_error(info.value)
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "AUTH_MISSING")
        await stub.GetStats(pb.GetStatsRequest(), metadata=bearer(TOKEN_R), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Send(pb.SendRequest(chat_id="1", text="x"), metadata=bearer(TOKEN_R))
        assert from_rpc_error(info.value).reason == "READ_ONLY_TOKEN"
        assert await health(f"127.0.0.1:{gw.port}") == SERVING
    warning = security.plaintext_token_warning(settings.replace(listen="0.0.0.0:1"))
    assert warning is not None and TOKEN_R not in warning


# -- TLS on the gRPC port -----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A private CA with a server certificate and two client certificates."""

    ca_pem: bytes
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: bytes
    client_key: bytes
    rogue_client_cert: bytes
    rogue_client_key: bytes


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example")
    # Signed by another CA: a well-formed certificate the gateway must still refuse.
    rogue = trustme.CA().issue_cert("client.example")
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(root / "server.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(root / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(root / "server.key"))
    return Pki(
        ca_pem=ca.cert_pem.bytes(),
        ca_file=root / "ca.pem",
        server_cert=root / "server.pem",
        server_key=root / "server.key",
        client_cert=b"".join(p.bytes() for p in client.cert_chain_pems),
        client_key=client.private_key_pem.bytes(),
        rogue_client_cert=b"".join(p.bytes() for p in rogue.cert_chain_pems),
        rogue_client_key=rogue.private_key_pem.bytes(),
    )


async def _call_fails_unavailable(target: str, credentials: grpc.ChannelCredentials | None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health(target, credentials)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_port(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, pki: Pki
) -> None:
    settings = gateway_settings(
        valkey,
        simulator,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        api_tokens=(TOKEN_A,),
    )
    async with Gateway(settings) as gw:
        target = f"127.0.0.1:{gw.port}"
        trusting = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        assert await health(target, trusting) == SERVING
        # The project's own client over TLS, with the bearer token riding inside it.
        async with AsyncNotificationClient(
            target, token=TOKEN_A, root_certificates=pki.ca_pem, retries=0
        ) as client:
            await client.stats()
        # A plaintext client cannot talk to a TLS port.
        await _call_fails_unavailable(target, None)
        # Nor can a TLS client that does not trust the private CA (system roots only).
        other_ca = trustme.CA().cert_pem.bytes()
        await _call_fails_unavailable(target, grpc.ssl_channel_credentials(other_ca))


async def test_mutual_tls_port(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator, pki: Pki
) -> None:
    settings = gateway_settings(
        valkey,
        simulator,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca_file,
    )
    async with Gateway(settings) as gw:
        target = f"127.0.0.1:{gw.port}"
        # No client certificate: the handshake fails.
        await _call_fails_unavailable(target, grpc.ssl_channel_credentials(pki.ca_pem))
        # A client certificate from another CA: refused as well.
        await _call_fails_unavailable(
            target,
            grpc.ssl_channel_credentials(pki.ca_pem, pki.rogue_client_key, pki.rogue_client_cert),
        )
        await _call_fails_unavailable(target, None)
        # Signed by the configured CA: accepted.
        good = grpc.ssl_channel_credentials(pki.ca_pem, pki.client_key, pki.client_cert)
        assert await health(target, good) == SERVING
        async with AsyncNotificationClient(target, tls=good, retries=0) as client:
            await client.stats()


def test_server_credentials_errors_name_the_setting(tmp_path: Path, pki: Pki) -> None:
    assert security.server_credentials(Settings()) is None
    missing = Settings(tls_cert_file=pki.server_cert, tls_key_file=tmp_path / "nope.key")
    with pytest.raises(ConfigError, match="NOTIGATE_TLS_KEY"):
        security.server_credentials(missing)
    with pytest.raises(ConfigError, match="set together"):
        security.server_credentials(Settings(tls_cert_file=pki.server_cert))


# -- Redis passwords and rediss:// --------------------------------------------------------


class PasswordValkey(EmbeddedValkey):
    """Valkey on TCP that requires a password."""

    def __init__(self, data_dir: Path, password: str, *, port: int) -> None:
        super().__init__(data_dir, port=port)
        self.password = password

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", self.password]


class TlsRedis(EmbeddedValkey):
    """A Valkey/Redis server that speaks only TLS and requires client certificates."""

    def __init__(self, data_dir: Path, binary: Path, certs: dict[str, Path]) -> None:
        super().__init__(data_dir, port=free_port(), binary=binary)
        self.certs = certs

    @property
    def url(self) -> str:
        # redis-py passes unknown query arguments to the connection class as strings:
        # ssl_ca_certs / ssl_certfile / ssl_keyfile reach SSLConnection unchanged.
        query = "&".join(
            f"{name}={quote(str(self.certs[key]))}"
            for name, key in (
                ("ssl_ca_certs", "ca"),
                ("ssl_certfile", "client_cert"),
                ("ssl_keyfile", "client_key"),
            )
        )
        return f"rediss://127.0.0.1:{self.port}/0?{query}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--port", "0",
            "--tls-port", str(self.port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(self.certs["server_cert"]),
            "--tls-key-file", str(self.certs["server_key"]),
            "--tls-ca-cert-file", str(self.certs["ca"]),
            "--tls-auth-clients", "yes",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "server.log"),
        ]  # fmt: skip


async def test_redis_password(
    tmp_path: Path, simulator: BotApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    password = secrets.token_urlsafe(16)
    server = PasswordValkey(tmp_path / "valkey", password, port=free_port())
    await server.start()
    try:
        settings = gateway_settings(server, simulator)
        async with running_gateway(settings) as (gw, stub):
            assert await health(f"127.0.0.1:{gw.port}") == SERVING
            job_id = (await stub.Send(pb.SendRequest(chat_id="7", text="hi"))).job_id
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)

        # A wrong password: the gateway starts, says NOT_SERVING, and answers UNAVAILABLE.
        wrong = settings.replace(redis_url=f"redis://:wrong-{password}@127.0.0.1:{server.port}/0")
        caplog.set_level(logging.DEBUG)
        async with running_gateway(wrong) as (gw, stub):
            assert await health(f"127.0.0.1:{gw.port}") == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(pb.SendRequest(chat_id="7", text="hi"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert from_rpc_error(info.value).reason == "REDIS_UNAVAILABLE"
            assert password not in (info.value.details() or "")
            assert password not in str(info.value.trailing_metadata())
        assert password not in caplog.text
    finally:
        await server.stop()


def _tls_capable_binaries() -> list[Path]:
    candidates = [valkey_binary()]
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    return candidates


async def test_rediss_with_a_private_ca(
    tmp_path: Path, simulator: BotApiSimulator, pki: Pki
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("notigate")
    certs = {
        "ca": tmp_path / "redis-ca.pem",
        "server_cert": tmp_path / "redis-server.pem",
        "server_key": tmp_path / "redis-server.key",
        "client_cert": tmp_path / "redis-client.pem",
        "client_key": tmp_path / "redis-client.key",
    }
    ca.cert_pem.write_to_path(str(certs["ca"]))
    server_cert.cert_chain_pems[0].write_to_path(str(certs["server_cert"]))
    server_cert.private_key_pem.write_to_path(str(certs["server_key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(certs["client_cert"]))
    client_cert.private_key_pem.write_to_path(str(certs["client_key"]))

    server: TlsRedis | None = None
    tried: list[str] = []
    for binary in _tls_capable_binaries():
        candidate = TlsRedis(tmp_path / f"redis-{len(tried)}", binary, certs)
        try:
            await candidate.start()
        except StartupRefused:  # e.g. a build without TLS
            log = candidate.data_dir / "server.log"
            text = log.read_text() if log.exists() else ""
            if "TLS" not in text:
                raise
            tried.append(str(binary))
            continue
        server = candidate
        break
    if server is None:
        pytest.skip(f"no Redis/Valkey binary built with TLS (tried {', '.join(tried)})")
    try:
        # The CA in the URL is what makes verification pass: with the client certificate
        # but without ssl_ca_certs, the system roots reject the private CA.
        base, _, query = server.url.partition("?")
        no_ca = (
            base + "?" + "&".join(p for p in query.split("&") if not p.startswith("ssl_ca_certs="))
        )
        plain_client = Redis.from_url(no_ca, socket_connect_timeout=5)
        with pytest.raises(RedisConnectionError, match=r"(?i)certificate verify failed"):
            await plain_client.ping()
        await plain_client.aclose()

        settings = gateway_settings(server, simulator)
        async with running_gateway(settings) as (gw, stub):
            assert await health(f"127.0.0.1:{gw.port}") == SERVING
            job_id = (await stub.Send(pb.SendRequest(chat_id="8", text="over TLS"))).job_id
            await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    finally:
        await server.stop()


# -- no secret in any output --------------------------------------------------------------

FINAL = (pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED)


class Witness:
    """Everything a gateway's callers saw: replies, error statuses and their trailers."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def reply(self, message: Any) -> Any:
        self.seen.append(str(message))
        self.seen.append(repr(message.SerializeToString()))
        return message

    def error(self, exc: grpc.aio.AioRpcError) -> grpc.StatusCode:
        self.seen.append(f"{exc.code()} {exc.details()} {exc.trailing_metadata()}")
        self.seen.append(str(exc.debug_error_string()))
        return exc.code()


async def test_no_secret_leaks_through_logs_or_replies(tmp_path: Path) -> None:
    bot_token = f"987654321:AAH-{secrets.token_urlsafe(24)}"
    api_tokens = [secrets.token_urlsafe(24), secrets.token_urlsafe(24)]
    readonly_token = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(18)
    # The bot id before the colon is public (getMe shows it); the rest is the secret.
    secret_values = [bot_token, bot_token.partition(":")[2], *api_tokens, readonly_token, password]

    sim = BotApiSimulator(tokens=[bot_token], config=SimulatorConfig())
    await sim.start()
    sim_port = sim.port
    redis_server = PasswordValkey(tmp_path / "valkey", password, port=free_port())
    await redis_server.start()
    port = free_port()
    target = f"127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NOTIGATE_") and k not in ("BOT_TOKEN", "REDIS_URL")
    }
    env.update(
        BOT_TOKEN=bot_token,
        REDIS_URL=redis_server.url,
        TELEGRAM_API_URL=sim.base_url,
        NOTIGATE_LISTEN=target,
        NOTIGATE_API_TOKEN=",".join(api_tokens),
        NOTIGATE_READONLY_TOKEN=readonly_token,
        NOTIGATE_DATA_DIR=str(tmp_path / "data"),
        NOTIGATE_BACKOFF_BASE_MS="50",
        NOTIGATE_MAX_ATTEMPTS="2",
    )
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        # DEBUG: the most the gateway will ever write; secrets must stay out even there.
        proc = subprocess.Popen(
            [NOTIGATE, "serve", "--log-level", "debug"], env=env, stdout=out, stderr=err
        )
    witness = Witness()
    auth = bearer(api_tokens[1])

    async def status() -> int:
        try:
            return await health(target)
        except grpc.aio.AioRpcError:
            return -1

    async def is_serving() -> bool:
        return await status() == SERVING

    async def not_serving() -> bool:
        return await status() == NOT_SERVING

    try:
        await wait_for(is_serving, timeout_s=30)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.NotificationServiceStub(channel)
            ids: list[str] = []

            async def send(chat: str, text: str) -> None:
                reply = await stub.Send(pb.SendRequest(chat_id=chat, text=text), metadata=auth)
                ids.append(witness.reply(reply).job_id)

            async def all_final() -> bool:
                for job_id in ids:
                    reply = await stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=auth)
                    if witness.reply(reply).job.state not in FINAL:
                        return False
                return True

            # Telegram's 403 for a blocked chat, and a 50% share of 500/502 answers.
            sim.block_chat("666")
            await send("666", "to a blocked chat")
            await wait_for(all_final, timeout_s=60)
            sim.configure(error_rate=0.5)
            for i in range(6):
                await send(str(2000 + i), f"flaky {i}")
            await wait_for(all_final, timeout_s=60)
            sim.configure(error_rate=0.0)

            # 401: the token is revoked, delivery pauses, then resumes when it works again.
            sim.revoke_token(bot_token)
            await send("3000", "while the token is revoked")
            await wait_for(not_serving, timeout_s=30)
            sim.accept_token(bot_token)
            await wait_for(all_final, timeout_s=60)

            # Telegram unreachable: connection errors end up in a job's last error.
            await sim.stop()
            await send("4000", "while the Bot API is down")
            await wait_for(all_final, timeout_s=60)
            await sim.start(port=sim_port)

            # Callers with no, wrong, truncated or wrongly-presented tokens.
            for metadata in (
                (),
                bearer("not-a-token"),
                bearer(api_tokens[0][:-2]),
                bearer(api_tokens[0] + "x"),
                (("authorization", f"Basic {api_tokens[0]}"),),
                (("authorization", api_tokens[1]),),
            ):
                for rpc, request in (
                    (stub.GetStats, pb.GetStatsRequest()),
                    (stub.Send, pb.SendRequest(chat_id="1", text="x")),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await rpc(request, metadata=metadata, timeout=5)
                    assert witness.error(info.value) == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await reflected_services(port, (("authorization", f"Bearer x{api_tokens[0]}"),))
            witness.error(info.value)
            # The read-only token: its reads answered, its changes refused.
            witness.reply(
                await stub.GetStats(pb.GetStatsRequest(), metadata=bearer(readonly_token))
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(
                    pb.SendRequest(chat_id="1", text="x"), metadata=bearer(readonly_token)
                )
            assert witness.error(info.value) == grpc.StatusCode.PERMISSION_DENIED

            # Redis restarts: UNAVAILABLE while it is down, then back to work.
            await redis_server.stop()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(pb.SendRequest(chat_id="5000", text="x"), metadata=auth)
            assert witness.error(info.value) == grpc.StatusCode.UNAVAILABLE
            await wait_for(not_serving, timeout_s=30)
            await redis_server.start()
            await wait_for(is_serving, timeout_s=30)
            await send("5000", "after the Redis restart")
            await wait_for(all_final, timeout_s=60)

            # What an operator would look at: every job, every list, the stats.
            states = [
                witness.reply(await stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=auth)).job
                for job_id in ids
            ]
            for state in (pb.JOB_STATE_UNSPECIFIED, pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED):
                page_token = ""
                while True:
                    page = witness.reply(
                        await stub.ListJobs(
                            pb.ListJobsRequest(state=state, page_token=page_token, page_size=3),
                            metadata=auth,
                        )
                    )
                    page_token = page.next_page_token
                    if not page_token:
                        break
            witness.reply(await stub.GetStats(pb.GetStatsRequest(), metadata=auth))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = await asyncio.to_thread(proc.wait)
        await sim.stop()
        await redis_server.stop()

    output = stdout_path.read_bytes() + stderr_path.read_bytes()
    text = output.decode("utf-8", "replace")
    # The failure paths really ran and were written down (else this test proves nothing).
    assert returncode == 0, text[-3000:]
    assert "notigate listening" in text
    assert "rejected /notigate.v1.NotificationService/GetStats" in text
    assert "rejected /notigate.v1.NotificationService/Send" in text
    assert "Telegram rejected the bot token" in text
    errors = " ".join(job.last_error for job in states)
    assert "blocked" in errors
    assert "Cannot connect" in errors or "aiohttp" in errors, errors
    assert [job.state for job in states].count(pb.JOB_STATE_COMPLETED) >= 2

    for secret in secret_values:
        assert secret not in text, f"a secret is in the gateway's output: {_context(text, secret)}"
        assert secret.encode() not in output
        for seen in witness.seen:
            assert secret not in seen, "a secret is in a reply or error status"


def _context(text: str, secret: str) -> str:
    at = text.index(secret)
    return text[max(0, at - 200) : at].replace("\n", " | ") + "<SECRET>"


def test_settings_repr_hides_every_secret() -> None:
    settings = from_env(
        {
            "REDIS_URL": "redis://:pa55word@h:1/0",
            "BOT_TOKEN": "1:bot-secret",
            "NOTIGATE_API_TOKEN": "api-secret",
        }
    )
    text = repr(settings)
    assert "pa55word" not in text and "bot-secret" not in text and "api-secret" not in text


def test_one_token_variable_for_server_and_clients() -> None:
    # The server takes a comma-separated list (rotation) in the variable the clients read.
    settings = from_env({"NOTIGATE_API_TOKEN": f" {TOKEN_A} , {TOKEN_B} ,"})
    assert settings.api_tokens == (TOKEN_A, TOKEN_B)
    assert settings.notices == ()
    assert from_env({"NOTIGATE_API_TOKEN": ""}).api_tokens == ()


def test_the_old_token_variable_still_works_with_a_notice() -> None:
    old = from_env({"NOTIGATE_API_TOKENS": f"{TOKEN_A},{TOKEN_B}"})
    assert old.api_tokens == (TOKEN_A, TOKEN_B)
    [notice] = old.notices
    assert "NOTIGATE_API_TOKENS is deprecated" in notice and "NOTIGATE_API_TOKEN" in notice
    # An empty new variable (compose passes `${VAR:-}` through) does not hide the old one.
    assert from_env({"NOTIGATE_API_TOKEN": "", "NOTIGATE_API_TOKENS": TOKEN_A}).api_tokens == (
        TOKEN_A,
    )
    both = from_env({"NOTIGATE_API_TOKEN": TOKEN_B, "NOTIGATE_API_TOKENS": TOKEN_A})
    assert both.api_tokens == (TOKEN_B,)
    assert both.notices == (
        "NOTIGATE_API_TOKENS is deprecated and ignored: NOTIGATE_API_TOKEN is set",
    )
    assert TOKEN_A not in " ".join(both.notices)


async def test_serve_logs_the_deprecated_token_variable_at_startup(
    redis: Redis, valkey: EmbeddedValkey, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIGATE_")}
    env.pop("BOT_TOKEN", None)
    env.update(
        REDIS_URL=valkey.url,
        NOTIGATE_LISTEN=target,
        NOTIGATE_DATA_DIR=str(tmp_path / "data"),
        NOTIGATE_API_TOKENS=TOKEN_A,
        NOTIGATE_SANDBOX_LISTEN="127.0.0.1:0",
        NOTIGATE_DASHBOARD_LISTEN="127.0.0.1:0",
    )
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [NOTIGATE, "serve", "--sandbox"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:

        async def listening() -> bool:
            assert proc.poll() is None, stderr_path.read_text()
            return "notigate listening" in stderr_path.read_text()

        await wait_for(listening, timeout_s=30)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.NotificationServiceStub(channel)
            await stub.GetStats(pb.GetStatsRequest(), metadata=bearer(TOKEN_A), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
    text = stderr_path.read_text()
    [line] = [line for line in text.splitlines() if "NOTIGATE_API_TOKENS" in line]
    assert "WARNING" in line and "rename it to NOTIGATE_API_TOKEN" in line
    assert TOKEN_A not in text
