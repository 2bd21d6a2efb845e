"""Connection limits on the gRPC port, with real sockets on 127.0.0.1 (notigate.connection_limits).

Strangers open TCP connections and never handshake, keep HTTP/2 connections idle, hold
streams open, flood pings, or open more connections than the cap: each is closed or
refused while a client that was already connected keeps getting answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from notigate.app import Gateway
from notigate.config import Settings
from notigate.connection_limits import server_options
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from tests.conftest import Stub, gateway_settings, running_gateway, wait_for

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1
MAX_CONCURRENT_STREAMS = 0x3
ENHANCE_YOUR_CALM = 0xB
# A hang guard, far above every limit the tests set: reaching it means "never closed".
GUARD_S = 20.0


def frame(kind: int, flags: int = 0, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + bytes(4) + payload


@dataclass
class Frame:
    kind: int
    flags: int
    payload: bytes


def parse(data: bytes) -> list[Frame]:
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        frames.append(Frame(data[3], data[4], data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


class Peer:
    """A raw TCP connection to the gateway: what it received, and whether it was closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""

    @classmethod
    async def open(cls, stack: AsyncExitStack, port: int) -> Peer:
        """Closed when ``stack`` unwinds: before the gateway, whose drain would wait for it."""
        peer = cls(*await asyncio.open_connection("127.0.0.1", port))
        stack.callback(peer.close)
        return peer

    async def handshake(self) -> None:
        """Client preface and empty SETTINGS: a complete HTTP/2 connection, no call on it."""
        self.writer.write(PREFACE + frame(SETTINGS) + frame(SETTINGS, ACK))
        await self.writer.drain()

    async def closed(self, timeout_s: float = GUARD_S) -> bool:
        """Read until the gateway closes the connection (True) or ``timeout_s`` (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                while chunk := await self.reader.read(65536):
                    self.received += chunk
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    async def receive_for(self, seconds: float) -> None:
        """Whatever arrives within ``seconds`` (the connection stays open)."""
        try:
            async with asyncio.timeout(seconds):
                while chunk := await self.reader.read(65536):
                    self.received += chunk
        except TimeoutError:
            pass

    def frames(self) -> list[Frame]:
        return parse(self.received)

    def goaway_code(self) -> int | None:
        goaways = [f for f in self.frames() if f.kind == GOAWAY]
        return int.from_bytes(goaways[-1].payload[4:8], "big") if goaways else None

    def goaway_debug(self) -> bytes:
        goaways = [f for f in self.frames() if f.kind == GOAWAY]
        return goaways[-1].payload[8:] if goaways else b""

    def close(self) -> None:
        self.writer.close()


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    return int(reply.status)


async def gateway_with(
    stack: AsyncExitStack, valkey: EmbeddedValkey, simulator: BotApiSimulator, **limits: Any
) -> tuple[Gateway, Stub]:
    settings = gateway_settings(valkey, simulator, **limits)
    return await stack.enter_async_context(running_gateway(settings))


async def test_connections_that_never_handshake_are_closed(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with AsyncExitStack() as stack:
        gw, stub = await gateway_with(stack, valkey, simulator, grpc_handshake_timeout_ms=300)
        # The TCP connection is accepted, then nothing: not even the HTTP/2 preface.
        peers = [await Peer.open(stack, gw.port) for _ in range(20)]
        closed = await asyncio.gather(*(p.closed() for p in peers))
        assert all(closed), f"{closed.count(False)} of 20 silent connections still open"
        # A client that does handshake is served as before.
        await stub.Send(pb.SendRequest(chat_id="1", text="after"), timeout=10)


async def test_an_idle_http2_connection_is_closed_and_clients_reconnect(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with AsyncExitStack() as stack:
        gw, _ = await gateway_with(stack, valkey, simulator, grpc_max_connection_idle_ms=300)
        peer = await Peer.open(stack, gw.port)
        await peer.handshake()
        assert await peer.closed(), "an idle HTTP/2 connection stayed open"
        # Told why before the close (grpc core's wording), not cut off.
        assert b"idle" in peer.goaway_debug()

        # A grpc client is told the same and reconnects on its next call, unnoticed.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            await check(health_pb2.HealthCheckRequest(), timeout=10)

            async def went_idle() -> bool:
                return channel.get_state() is grpc.ChannelConnectivity.IDLE

            await wait_for(went_idle, GUARD_S)
            await check(health_pb2.HealthCheckRequest(), timeout=10)


async def test_connections_beyond_the_cap_are_refused_while_clients_are_served(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    cap = 10
    async with AsyncExitStack() as stack:
        gw, stub = await gateway_with(stack, valkey, simulator, grpc_max_connections=cap)
        await stub.GetStats(pb.GetStatsRequest(), timeout=10)  # the client's one connection
        holders = [await Peer.open(stack, gw.port) for _ in range(cap - 1)]
        for holder in holders:
            await holder.handshake()
        await asyncio.gather(*(h.receive_for(0.3) for h in holders))
        assert all(any(f.kind == SETTINGS for f in h.frames()) for h in holders)

        extra = [await Peer.open(stack, gw.port) for _ in range(5)]
        closed = await asyncio.gather(*(p.closed() for p in extra))
        assert all(closed), "connections beyond the cap were accepted"
        # Refused at accept: not a byte of HTTP/2 was spent on them.
        assert all(p.received == b"" for p in extra)

        # The connected client still gets answers, and Send still stores.
        await stub.Send(pb.SendRequest(chat_id="1", text="under the cap"), timeout=10)
        assert (await stub.GetStats(pb.GetStatsRequest(), timeout=10)).total_enqueued == 1

        # Once the strangers leave, new clients get in again.
        for holder in holders:
            holder.close()

        async def new_client_served() -> bool:
            try:
                await health(gw.port)
            except grpc.aio.AioRpcError:
                return False
            return True

        await wait_for(new_client_served, GUARD_S)


async def test_a_stream_held_open_ends_at_the_maximum_connection_age(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with AsyncExitStack() as stack:
        gw, _ = await gateway_with(
            stack,
            valkey,
            simulator,
            api_tokens=("secret",),  # Watch stays open to strangers all the same
            grpc_max_connection_age_ms=300,
            grpc_max_connection_age_grace_ms=300,
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await watch.read()
            assert first is not grpc.aio.EOF
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async with asyncio.timeout(GUARD_S):
                    while await watch.read() is not grpc.aio.EOF:
                        pass
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_pings_are_allowed_at_the_permitted_spacing_and_a_flood_is_cut_off(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with AsyncExitStack() as stack:
        gw, _ = await gateway_with(
            stack, valkey, simulator, grpc_min_ping_interval_ms=200, grpc_max_ping_strikes=2
        )
        peer = await Peer.open(stack, gw.port)
        await peer.handshake()
        # A client keeping an idle connection warm, no call on it: welcome.
        # (grpc's default treats pings without a call as too soon: its third strike ends
        # the connection.)
        for n in range(5):
            peer.writer.write(frame(PING, payload=n.to_bytes(8, "big")))
            await peer.writer.drain()
            await peer.receive_for(0.3)
        acks = [f for f in peer.frames() if f.kind == PING and f.flags & ACK]
        assert len(acks) == 5 and peer.goaway_code() is None
        # Pings back to back: after the strikes, GOAWAY ENHANCE_YOUR_CALM and the close.
        peer.writer.write(b"".join(frame(PING, payload=bytes(8)) for _ in range(10)))
        await peer.writer.drain()
        assert await peer.closed()
        assert peer.goaway_code() == ENHANCE_YOUR_CALM


async def test_the_stream_limit_is_announced(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    async with AsyncExitStack() as stack:
        gw, _ = await gateway_with(stack, valkey, simulator, grpc_max_concurrent_streams=7)
        peer = await Peer.open(stack, gw.port)
        await peer.handshake()
        await peer.receive_for(0.3)
        settings = next(f for f in peer.frames() if f.kind == SETTINGS and not f.flags & ACK)
        announced = {
            int.from_bytes(settings.payload[i : i + 2], "big"): int.from_bytes(
                settings.payload[i + 2 : i + 6], "big"
            )
            for i in range(0, len(settings.payload), 6)
        }
        assert announced.get(MAX_CONCURRENT_STREAMS) == 7


def test_zero_turns_the_idle_age_and_count_limits_off() -> None:
    names = {
        name
        for name, _ in server_options(
            Settings(
                grpc_max_connection_idle_ms=0, grpc_max_connection_age_ms=0, grpc_max_connections=0
            )
        )
    }
    assert not names & {
        "grpc.max_connection_idle_ms",
        "grpc.max_connection_age_ms",
        "grpc.max_allowed_incoming_connections",
    }
    defaults = dict(server_options(Settings()))
    assert defaults["grpc.max_allowed_incoming_connections"] == 1000
    assert defaults["grpc.server_handshake_timeout_ms"] == 10_000


def test_the_open_files_limit_is_raised_to_fit_the_cap() -> None:
    # In a child process: the limit is process-wide.
    code = """
import resource
from notigate.config import Settings
from notigate.connection_limits import ensure_descriptors
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
ensure_descriptors(Settings(grpc_max_connections=500, concurrency=10))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout.split()
    soft, hard = int(out[0]), int(out[1])
    assert soft == min(500 + 10 + 256, hard if hard >= 0 else 10**9)


@pytest.mark.faults
async def test_hundreds_of_silent_connections_leave_nothing_behind(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    cap = 150
    async with AsyncExitStack() as stack:
        gw, stub = await gateway_with(
            stack,
            valkey,
            simulator,
            grpc_handshake_timeout_ms=500,
            grpc_max_connections=cap,
        )
        await stub.GetStats(pb.GetStatsRequest(), timeout=10)
        fds_before = len(os.listdir("/proc/self/fd"))
        peers = [await Peer.open(stack, gw.port) for _ in range(400)]
        # While strangers fill the cap, the connected client is answered.
        await stub.Send(pb.SendRequest(chat_id="1", text="during"), timeout=10)
        closed = await asyncio.gather(*(p.closed() for p in peers))
        assert all(closed)
        for peer in peers:
            peer.close()

        async def fds_released() -> bool:
            return len(os.listdir("/proc/self/fd")) <= fds_before + 5

        await wait_for(fds_released, GUARD_S)
        assert await health(gw.port) == health_pb2.HealthCheckResponse.SERVING
