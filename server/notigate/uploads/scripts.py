"""One typed wrapper per upload script, on the queue's :class:`ScriptBase`.

ScriptBase is built from a queue's :class:`~notigate.queue.keys.QueueKeys` and
:class:`~notigate.queue.scripts.config.ScriptConfig`; an upload script takes the
upload store's keys and :class:`UploadLimits` instead (ARGV[1] the prefix, ARGV[2] the
packed limits, as ``cfg`` in Lua) and its text from this package's ``lua/``. Calling,
loading and the translation of Redis errors are ScriptBase's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from redis.asyncio import Redis

from notigate.queue.scripts.base import Reply, ScriptBase, as_bytes, as_int, as_list
from notigate.uploads.keys import UploadKeys
from notigate.uploads.limits import UploadLimits
from notigate.uploads.source import source

T = TypeVar("T", covariant=True)


class UploadCode(IntEnum):
    """What an upload script answers (Lua constants of the same names)."""

    OK = 1
    # No upload has this id: never made, aborted, or trimmed.
    NOT_FOUND = -1
    # Complete already (append, commit).
    WRONG_STATE = -2
    # The budget cannot take the bytes; an append that meets it drops the upload.
    OVER_BUDGET = -3
    # More bytes than declared: the upload is dropped.
    TOO_LONG = -4
    # Fewer bytes than declared at commit: the upload is dropped.
    SIZE_MISMATCH = -5
    # An upload has this id already (begin).
    ID_TAKEN = -6
    # A job uses the upload: an abort keeps it.
    PINNED = -7


@dataclass(frozen=True, slots=True)
class Answer:
    """A script's answer about one upload."""

    code: UploadCode
    # append OK: bytes received so far; TOO_LONG, SIZE_MISMATCH: the declared size;
    # OVER_BUDGET: bytes held; abort OK: bytes given back.
    value: int = 0
    # SIZE_MISMATCH: bytes received.
    received: int = 0
    # OVER_BUDGET: ms until the next upload may be trimmed (None: none ever will be).
    wait_ms: int | None = None
    # commit OK: the upload's hash.
    fields: dict[bytes, bytes] | None = None


def _answer(reply: Reply) -> Answer:
    items = as_list(reply)
    code = UploadCode(as_int(items[0]))
    if code is UploadCode.OVER_BUDGET:
        wait = items[2]
        return Answer(code, as_int(items[1]), wait_ms=None if wait == b"" else as_int(wait))
    if code is UploadCode.SIZE_MISMATCH:
        return Answer(code, as_int(items[1]), as_int(items[2]))
    if code is UploadCode.OK and len(items) > 1 and isinstance(items[1], list):
        flat = [as_bytes(item) for item in items[1]]
        return Answer(code, fields=dict(zip(flat[0::2], flat[1::2], strict=True)))
    return Answer(code, as_int(items[1]) if len(items) > 1 else 0)


def _now(now_ms: int | None) -> str | int:
    return "" if now_ms is None else now_ms


class UploadScript(ScriptBase[T]):
    """One upload script, registered on one client for one queue's upload store."""

    codes: ClassVar[tuple[type[IntEnum], ...]] = (UploadCode,)

    def __init__(self, redis: Redis, keys: UploadKeys, limits: UploadLimits) -> None:
        super().__init__(redis, keys, limits)
        self.limits = limits

    @classmethod
    def text(cls) -> str:
        return source(cls.name, cls.codes)


class Begin(UploadScript[Answer]):
    """Start an upload (OK, ID_TAKEN, OVER_BUDGET)."""

    name = "begin"
    keys = ("uploads", "upload_bytes")
    argv = ("id", "filename", "content_type", "size", "now")

    async def __call__(
        self, *, upload_id: str, filename: str, content_type: str, size: int, now_ms: int | None
    ) -> Answer:
        return _answer(await self._run(upload_id, filename, content_type, size, _now(now_ms)))


class Append(UploadScript[Answer]):
    """Add the next chunks (OK, NOT_FOUND, WRONG_STATE, TOO_LONG, OVER_BUDGET)."""

    name = "append"
    keys = ("uploads", "upload_bytes")
    argv = ("id", "now", "chunks...")

    async def __call__(
        self, *, upload_id: str, chunks: Sequence[bytes], now_ms: int | None
    ) -> Answer:
        return _answer(await self._run(upload_id, _now(now_ms), *chunks))


class Commit(UploadScript[Answer]):
    """Complete an upload (OK with its hash, NOT_FOUND, WRONG_STATE, SIZE_MISMATCH)."""

    name = "commit"
    keys = ("uploads", "upload_bytes")
    argv = ("id", "sha256", "now")

    async def __call__(self, *, upload_id: str, sha256: str, now_ms: int | None) -> Answer:
        return _answer(await self._run(upload_id, sha256, _now(now_ms)))


class Abort(UploadScript[Answer]):
    """Drop an upload unless a job uses it (OK with the bytes freed, NOT_FOUND, PINNED)."""

    name = "abort"
    keys = ("uploads", "upload_bytes")
    argv = ("id",)

    async def __call__(self, *, upload_id: str) -> Answer:
        return _answer(await self._run(upload_id))


@dataclass(frozen=True, slots=True)
class Swept:
    """What a sweep did."""

    trimmed: int
    # Bytes held by every upload after it.
    held: int


class Sweep(UploadScript[Swept]):
    """Trim uploads whose time has come."""

    name = "sweep"
    keys = ("uploads", "upload_bytes")
    argv = ("now", "limit")

    async def __call__(self, *, now_ms: int | None, limit: int) -> Swept:
        reply = as_list(await self._run(_now(now_ms), limit))
        return Swept(as_int(reply[0]), as_int(reply[1]))


@dataclass(frozen=True, slots=True)
class UploadScripts:
    """Every upload script of one queue, registered on one client."""

    begin: Begin
    append: Append
    commit: Commit
    abort: Abort
    sweep: Sweep

    @classmethod
    def register(cls, redis: Redis, keys: UploadKeys, limits: UploadLimits) -> UploadScripts:
        on = (redis, keys, limits)
        return cls(Begin(*on), Append(*on), Commit(*on), Abort(*on), Sweep(*on))

    def all(self) -> list[UploadScript[object]]:
        return [self.begin, self.append, self.commit, self.abort, self.sweep]

    async def load(self) -> None:
        """Send every script to Redis now, so a syntax error shows at startup."""
        for script in self.all():
            await script.load()
