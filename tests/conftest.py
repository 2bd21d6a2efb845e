"""Shared fixtures: a real Valkey server, the Bot API simulator, a running gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from notigate.embedded import EmbeddedValkey


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
async def valkey(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedValkey]:
    """One Valkey server for the session; tests isolate by queue name or flush."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), port=free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def redis(valkey: EmbeddedValkey) -> AsyncIterator[Redis]:
    """A client on a freshly flushed database."""
    client = Redis.from_url(valkey.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
