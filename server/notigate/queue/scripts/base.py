"""One typed wrapper per script: the seam between the queue's Python and its Lua.

A wrapper names its script, the :class:`~notigate.queue.keys.QueueKeys` attributes it
passes as KEYS and the ARGV it passes after the two every script gets (ARGV[1] the key
prefix, ARGV[2] the packed :class:`~.config.ScriptConfig`), all in its header's order;
``tests/test_script_contracts.py`` holds them against the header. Its ``__call__`` takes
keyword-only arguments and returns a typed result: nothing untyped leaves this package.

Scripts are sent once (:meth:`ScriptBase.load`, at startup, so a syntax error shows
then; on a cluster to every primary) and called by SHA; a NOSCRIPT (a SCRIPT FLUSH, a
restart, a replica promoted since) loads the script again and repeats the call, which
had not run. Every redis-py error becomes the queue's own here (see
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

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from notigate.errors import REDIS_ERRORS, StoreError, store_error
from notigate.queue.connection import cluster_of, refresh_slots
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
        keys = self._keys(call_keys)
        async with store_errors():
            cluster = cluster_of(self.redis)
            if cluster is not None:
                return await self._run_on_slot(cluster, keys, self._argv(args))
            reply: Reply = await self._script(keys=keys, args=self._argv(args))
            return reply

    async def _run_on_slot(self, cluster: RedisCluster, keys: list[str], argv: list[Arg]) -> Reply:
        # Every key of a queue is under the prefix's hash tag, so the prefix names the slot
        # and its primary runs the script: redis-py is spared hashing each key (and checking
        # they share a slot) on every call, and a script without KEYS, which builds its
        # keys from the prefix, does not go to a random node.
        for attempt in range(2):
            await cluster.initialize()  # no-op once the slot map is known
            node = cluster.get_node_from_key(str(self._head[0]))
            try:
                reply: Reply = await cluster.execute_command(
                    "EVALSHA", self._script.sha, len(keys), *keys, *argv, target_nodes=node
                )
                return reply
            except redis_errors.NoScriptError:
                if attempt:
                    raise
                await self.load()
            except (
                redis_errors.ConnectionError,
                redis_errors.TimeoutError,
                redis_errors.ClusterDownError,
                redis_errors.ResponseError,
            ) as exc:
                # A stale slot map (a failover moved the slot): Redis refuses the keys as
                # "non local". Nothing ran; read the map again and retry once.
                moved = "non local key" in str(exc)
                if not isinstance(exc, redis_errors.ResponseError) or moved:
                    await refresh_slots(cluster)
                if attempt or not moved:
                    raise
        raise AssertionError("unreachable")

    async def _run_many(
        self, arg_lists: Sequence[Sequence[Arg]], call_keys: Mapping[str, str] | None = None
    ) -> list[Reply]:
        """Run the script once per argument list in one round trip (a pipeline, not a
        transaction: each call is atomic on its own, as it would be alone)."""
        if not arg_lists:
            return []
        keys = self._keys(call_keys)
        if cluster_of(self.redis) is not None:
            return await self._run_many_on_cluster(keys, arg_lists)
        async with store_errors(), self.redis.pipeline(transaction=False) as pipe:
            for args in arg_lists:
                await self._queue(pipe, keys, self._argv(args))
            return list(await pipe.execute())

    async def _run_many_on_cluster(
        self, keys: list[str], arg_lists: Sequence[Sequence[Arg]]
    ) -> list[Reply]:
        # redis-py's cluster pipeline refuses its evalsha() (a script's keys could span
        # slots) but routes a raw EVALSHA by its keys: these all name keys of one slot,
        # so the calls still go to that slot's primary in one round trip.
        sha = self._script.sha
        for attempt in range(2):
            try:
                async with store_errors(), self.redis.pipeline(transaction=False) as pipe:
                    for args in arg_lists:
                        pipe.execute_command("EVALSHA", sha, len(keys), *keys, *self._argv(args))
                    return list(await pipe.execute())
            except StoreError as exc:
                # Every call of the pipeline met the same missing script: none ran.
                if attempt or not isinstance(exc.__cause__, redis_errors.NoScriptError):
                    raise
            await self.load()
        raise AssertionError("unreachable")

    async def _run_waited(self, *args: Arg, replicas: int, timeout_ms: int) -> tuple[Reply, int]:
        """Run the script, then WAIT for ``replicas`` replicas on the same connection
        (WAIT counts the replicas that have every write of its own connection); the
        script's reply and how many replicas confirmed within ``timeout_ms``."""
        keys, argv = self._keys(None), self._argv(args)
        for attempt in range(2):
            try:
                async with store_errors():
                    return await self._call_and_wait(keys, argv, replicas, timeout_ms)
            except StoreError as exc:
                # NOSCRIPT: the script did not run (a promoted replica may lack it).
                if attempt or not isinstance(exc.__cause__, redis_errors.NoScriptError):
                    raise
            await self.load()
        raise AssertionError("unreachable")

    async def _call_and_wait(
        self, keys: list[str], argv: list[Arg], replicas: int, timeout_ms: int
    ) -> tuple[Reply, int]:
        commands = (
            ("EVALSHA", self._script.sha, len(keys), *keys, *argv),
            ("WAIT", replicas, timeout_ms),
        )
        cluster = cluster_of(self.redis)
        if cluster is None:
            # Standalone or Sentinel: a connection of the pool, to the primary.
            pool = self.redis.connection_pool
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                return await _send_and_wait(conn, commands, timeout_ms)
            finally:
                await pool.release(conn)
        # A connection of the slot's primary, taken from redis-py's node pool: the
        # cluster client itself would route WAIT (it names no key) elsewhere.
        await cluster.initialize()  # no-op once the slot map is known
        node = cluster.get_node_from_key(keys[0])
        if node is None:
            raise redis_errors.SlotNotCoveredError(f"no primary serves {keys[0]}")
        conn = node.acquire_connection()
        try:
            return await _send_and_wait(conn, commands, timeout_ms)
        except (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.MovedError,
            redis_errors.ClusterDownError,
        ):
            # The slot map may be stale (a failover, a resharding): read it again for the
            # next call, which the client repeats with the same idempotency key.
            await refresh_slots(cluster)
            raise
        finally:
            node.release(conn)

    async def _queue(self, pipe: Pipeline, keys: list[str], args: list[Arg]) -> None:
        await self._script(keys=keys, args=args, client=pipe)


async def _send_and_wait(
    conn: Connection, commands: tuple[tuple[Arg, ...], ...], timeout_ms: int
) -> tuple[Reply, int]:
    """Send the script call and WAIT in one write; their two replies."""
    await conn.send_packed_command(conn.pack_commands(commands))
    # WAIT answers after up to timeout_ms: the read may take that long on top.
    read_s = (conn.socket_timeout or 0) + timeout_ms / 1000
    replies: list[Any] = []
    error: Exception | None = None
    try:
        for _ in commands:
            try:
                reply = await conn.read_response(timeout=read_s)
            except redis_errors.ResponseError as exc:
                # An error reply still leaves the next reply to read on the connection.
                error = error or exc
                continue
            if reply is None:  # timed out: the connection's state is unknown
                raise redis_errors.TimeoutError("no reply to the script call and WAIT")
            replies.append(reply)
    except BaseException:
        await conn.disconnect()
        raise
    if error is not None:
        raise error
    script_reply, acked = replies
    return script_reply, int(acked)


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
