"""One typed wrapper per script: the seam between the queue's Python and its Lua.

A wrapper names its script, the :class:`~notigate.queue.keys.QueueKeys` attributes it
passes as KEYS and the ARGV it passes after the two every script gets (ARGV[1] the key
prefix, ARGV[2] the packed :class:`~.config.ScriptConfig`), all in its header's order;
``tests/test_script_contracts.py`` holds them against the header. Its ``__call__`` takes
keyword-only arguments and returns a typed result: nothing untyped leaves this package.

Scripts are sent once (:meth:`ScriptBase.load`, at startup, so a syntax error shows
then) and called by SHA; redis-py falls back to EVAL after a SCRIPT FLUSH or a Redis
restart. Every redis-py error becomes the queue's own here (see
:func:`notigate.errors.store_error`).

Every script but ``enqueue`` starts with ``#!lua flags=allow-oom``: when Redis reaches
maxmemory, new messages are refused (RESOURCE_EXHAUSTED) but delivery goes on, and
delivering is what frees memory (needs Redis 7+ / Valkey). Read-only scripts add
``no-writes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from enum import IntEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from notigate.errors import REDIS_ERRORS, store_error
from notigate.queue.scripts.source import source

# Covariant: a wrapper of any result is a ScriptBase[object].
T = TypeVar("T", covariant=True)
# What redis-py encodes as a script argument.
Arg = str | int | float | bytes
# A script's raw reply: integers, bulk strings and nested arrays of them.
Reply = int | bytes | list["Reply"]


@asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Turn every redis-py exception into the queue's own: QueueUnavailable for whatever
    passes (READONLY, MISCONF, BUSY...), QueueFull, or a plain StoreError for a bug."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise store_error(exc) from exc


class ScriptKeys(Protocol):
    """The keys a family of scripts works on: a dataclass of key names (a wrapper's
    ``keys`` name its fields) with the prefix every other key of theirs starts with
    (:class:`~notigate.queue.keys.QueueKeys`, the upload store's keys)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def prefix(self) -> str: ...


class ScriptArgs(Protocol):
    """The static configuration of a family of scripts, passed at ARGV[2]."""

    def packed(self) -> str: ...


class ScriptBase(Generic[T]):
    """One Lua script of the queue, registered on one client for one queue."""

    # The script's file name under lua/, without ``.lua``.
    name: ClassVar[str]
    # KEYS in header order: QueueKeys attribute names, or names the call supplies
    # (a state's index, which differs by call).
    keys: ClassVar[tuple[str, ...]]
    # ARGV from ARGV[3] on, in header order; a last name ending in "..." takes the rest.
    argv: ClassVar[tuple[str, ...]]
    # The script's own result codes, spliced into it as Lua constants.
    codes: ClassVar[tuple[type[IntEnum], ...]] = ()

    def __init__(self, redis: Redis, keys: ScriptKeys, config: ScriptArgs) -> None:
        self.redis = redis
        self.config = config
        self._script = redis.register_script(self.text())
        fixed = {f.name for f in dataclasses.fields(keys)}
        self._fixed_keys = {name: getattr(keys, name) for name in self.keys if name in fixed}
        # Most scripts take fixed keys only: their KEYS list is built once.
        self._static_keys = (
            [self._fixed_keys[n] for n in self.keys] if fixed >= set(self.keys) else None
        )
        self._head: list[Arg] = [keys.prefix, config.packed()]
        self._rest = self.argv[-1].endswith("...") if self.argv else False

    @classmethod
    def text(cls) -> str:
        """The script as Redis runs it: includes and code constants spliced in."""
        return source(cls.name, cls.codes)

    async def load(self) -> None:
        """Send the script to Redis now."""
        async with store_errors():
            self._script.sha = await self.redis.script_load(self._script.script)

    def _keys(self, call_keys: Mapping[str, str] | None) -> list[str]:
        if self._static_keys is not None:
            return self._static_keys
        given = call_keys or {}
        return [given.get(name) or self._fixed_keys[name] for name in self.keys]

    def _argv(self, args: Sequence[Arg]) -> list[Arg]:
        fixed = len(self.argv) - 1 if self._rest else len(self.argv)
        if len(args) < fixed or (not self._rest and len(args) != fixed):
            raise TypeError(f"{self.name}: {len(args)} arguments for ARGV {self.argv}")
        return [*self._head, *args]

    async def _run(
        self,
        *args: Arg,
        call_keys: Mapping[str, str] | None = None,
    ) -> Reply:
        """Run the script with ``args`` (ARGV[3] on, in :attr:`argv` order)."""
        async with store_errors():
            reply: Reply = await self._script(keys=self._keys(call_keys), args=self._argv(args))
            return reply

    async def _run_many(
        self, arg_lists: Sequence[Sequence[Arg]], call_keys: Mapping[str, str] | None = None
    ) -> list[Reply]:
        """Run the script once per argument list in one round trip (a pipeline, not a
        transaction: each call is atomic on its own, as it would be alone)."""
        if not arg_lists:
            return []
        keys = self._keys(call_keys)
        async with store_errors(), self.redis.pipeline(transaction=False) as pipe:
            for args in arg_lists:
                await self._queue(pipe, keys, self._argv(args))
            return list(await pipe.execute())

    async def _queue(self, pipe: Pipeline, keys: list[str], args: list[Arg]) -> None:
        await self._script(keys=keys, args=args, client=pipe)


def as_list(reply: Reply) -> list[Reply]:
    """A reply that is an array."""
    if not isinstance(reply, list):
        raise TypeError(f"expected an array reply, got {reply!r}")
    return reply


def as_bytes(reply: Reply) -> bytes:
    """A reply that is a bulk string."""
    if not isinstance(reply, bytes):
        raise TypeError(f"expected a string reply, got {reply!r}")
    return reply


def as_str(reply: Reply) -> str:
    """A reply that is a bulk string, as text."""
    return as_bytes(reply).decode()


def as_int(reply: Reply) -> int:
    """A reply that is an integer (or a string of one: Lua numbers put in tables by
    ``HMGET`` come back as strings)."""
    if isinstance(reply, list):
        raise TypeError(f"expected an integer reply, got {reply!r}")
    return int(reply)


def as_hash(reply: Reply) -> dict[bytes, bytes]:
    """A reply that is HGETALL's flat field/value array."""
    flat = [as_bytes(item) for item in as_list(reply)]
    return dict(zip(flat[0::2], flat[1::2], strict=True))
