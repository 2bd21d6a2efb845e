"""Loading the queue's Lua scripts.

Each script is a ``lua/<name>.lua`` file whose header names its KEYS, ARGV and
return codes. Every script but ``enqueue`` starts with ``#!lua flags=allow-oom``:
when Redis reaches maxmemory, new messages are refused (RESOURCE_EXHAUSTED) but
delivery goes on, and delivering is what frees memory (needs Redis 7+ / Valkey).
``-- @include <name>`` splices ``lua/includes/<name>.lua`` in, so helpers shared
by several scripts exist once. Scripts are sent once and then
called by SHA (redis-py's Script falls back to EVAL after a SCRIPT FLUSH or a
Redis restart).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)

SCRIPT_NAMES = (
    "enqueue",
    "dequeue",
    "complete",
    "retry",
    "fail",
    "defer",
    "extend",
    "cancel",
    "requeue",
    "migrate",
    "list",
    "select",
)


def _read(relative: str) -> str:
    return resources.files("notigate").joinpath("lua", relative).read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full text of script ``name`` with its includes spliced in."""
    return _INCLUDE.sub(lambda m: _read(f"includes/{m.group(1)}.lua"), _read(f"{name}.lua"))


class Scripts:
    """The queue's scripts, registered on one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self._scripts = {name: redis.register_script(source(name)) for name in SCRIPT_NAMES}

    async def load(self) -> None:
        """Send every script to Redis now, so a syntax error shows at startup."""
        for script in self._scripts.values():
            client = script.registered_client
            script.sha = await client.script_load(script.script)

    async def call(
        self, name: str, keys: list[str], args: list[Any], client: Pipeline | None = None
    ) -> Any:
        """Run script ``name`` (EVALSHA) and return its raw reply; with a pipeline as
        ``client`` the call is queued there instead (the reply comes from ``execute``)."""
        script: AsyncScript = self._scripts[name]
        return await script(keys=keys, args=args, client=client)
