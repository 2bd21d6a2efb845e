"""The upload store: files kept in the queue's Redis for media sends.

A file is uploaded once (:meth:`UploadStore.begin`, :meth:`~UploadStore.append` per
chunk, :meth:`~UploadStore.commit`) and sent to many chats by its id. Every step that
changes the store is one script, so the byte counter that enforces the budget stays
exact under concurrent uploads, and every refusal drops what was stored of the upload.
Uploads expire through the ``uploads`` zset, trimmed a few at a time by every script and
by :meth:`~UploadStore.sweep`; the queue's own scripts pin an upload while a job uses
it (``lua/includes/upload_refs.lua``).

``now_ms`` arguments exist for tests: None (the default) is Redis's clock, which the
queue's scripts use too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from notigate.errors import StoreError
from notigate.queue.scripts.base import store_errors
from notigate.uploads.errors import RefusalKind, UploadRefused, invalid
from notigate.uploads.keys import (
    MEDIA_KIND_NAMES,
    UploadKeys,
    is_sha256,
    is_upload_id,
    new_upload_id,
)
from notigate.uploads.limits import UploadLimits
from notigate.uploads.metadata import check_metadata
from notigate.uploads.scripts import Answer, UploadCode, UploadScripts
from notigate_client import pb

log = logging.getLogger("notigate.uploads")

# Chunks read per round trip by stream(): 8 MiB at most in memory at once.
_STREAM_WINDOW = 8
# Fresh ids tried when one is taken (16 random bytes: it never is).
_ID_ATTEMPTS = 3
_INFO_FIELDS = ("fn", "ct", "sz", "sha", "st", "refs", "c")


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """What the store knows of one upload."""

    upload_id: str
    filename: str
    content_type: str
    size: int
    # Lowercase hex; "" until the upload is complete.
    sha256: str
    # Complete: it may be sent.
    ready: bool
    # Unfinished jobs that send it.
    refs: int
    created_ms: int


def _raw(value: bytes | str | None) -> bytes:
    """A stored value as redis-py returns it (bytes: the client must not decode
    replies, the content is binary); absent reads as b""."""
    if isinstance(value, str):
        raise TypeError("the upload store needs a client with decode_responses=False")
    return value or b""


def _info(upload_id: str, fields: dict[bytes, bytes]) -> UploadInfo:
    return UploadInfo(
        upload_id=upload_id,
        filename=fields.get(b"fn", b"").decode(),
        content_type=fields.get(b"ct", b"").decode(),
        size=int(fields.get(b"sz", b"0")),
        sha256=fields.get(b"sha", b"").decode(),
        ready=fields.get(b"st") == b"r",
        refs=int(fields.get(b"refs", b"0")),
        created_ms=int(fields.get(b"c", b"0")),
    )


def _over_budget(answer: Answer, limits: UploadLimits) -> UploadRefused:
    retry = None if answer.wait_ms is None else answer.wait_ms / 1000
    return UploadRefused(
        RefusalKind.BUDGET_EXHAUSTED,
        f"the gateway holds {answer.value} of its {limits.budget_bytes} bytes for uploads;"
        " try again when older uploads have expired",
        retry_after_s=retry,
    )


def _gone(upload_id: str) -> UploadRefused:
    return UploadRefused(
        RefusalKind.EXPIRED,
        f"upload {upload_id} is gone (its stream stalled too long, or it was aborted)",
    )


class UploadStore:
    """The uploads of one queue (``prefix`` is the queue's key prefix)."""

    def __init__(self, redis: Redis, prefix: str, limits: UploadLimits | None = None) -> None:
        self.redis = redis
        self.limits = limits or UploadLimits()
        self.keys = UploadKeys.for_prefix(prefix)
        self._scripts = UploadScripts.register(redis, self.keys, self.limits)

    async def load(self) -> None:
        """Send the scripts to Redis now, so a syntax error shows at startup."""
        await self._scripts.load()

    async def begin(self, metadata: pb.UploadMetadata, *, now_ms: int | None = None) -> str:
        """Start an upload; its id. Raises UploadRefused (INVALID, TOO_LARGE, or
        BUDGET_EXHAUSTED when the declared size cannot fit in the budget now)."""
        check_metadata(metadata, self.limits)
        for _ in range(_ID_ATTEMPTS):
            upload_id = new_upload_id()
            try:
                answer = await self._scripts.begin(
                    upload_id=upload_id,
                    filename=metadata.filename,
                    content_type=metadata.content_type,
                    size=metadata.size,
                    now_ms=now_ms,
                )
            except BaseException:
                # Cancelled, or the connection failed, after the script may have run:
                # nobody will learn this id.
                await self.abort_quietly(upload_id)
                raise
            if answer.code is UploadCode.OK:
                return upload_id
            if answer.code is UploadCode.OVER_BUDGET:
                raise _over_budget(answer, self.limits)
        raise StoreError("no free upload id (is the random source broken?)")

    async def append(self, upload_id: str, chunk: bytes, *, now_ms: int | None = None) -> int:
        """Add the next bytes of an upload, reserved against the budget in the same
        step; the bytes received so far. A refusal (UploadRefused: INVALID for more bytes
        than declared, BUDGET_EXHAUSTED, EXPIRED) has dropped the upload already."""
        if not is_upload_id(upload_id):
            raise _gone(upload_id)
        step = self.limits.chunk_bytes
        pieces = [chunk]
        if len(chunk) > step:
            view = memoryview(chunk)
            pieces = [bytes(view[i : i + step]) for i in range(0, len(view), step)]
        answer = await self._scripts.append(upload_id=upload_id, chunks=pieces, now_ms=now_ms)
        code = answer.code
        if code is UploadCode.OK:
            return answer.value
        if code is UploadCode.TOO_LONG:
            raise invalid("chunk", f"more bytes than metadata.size ({answer.value})")
        if code is UploadCode.OVER_BUDGET:
            raise _over_budget(answer, self.limits)
        if code is UploadCode.WRONG_STATE:
            raise invalid("chunk", f"upload {upload_id} is complete already")
        raise _gone(upload_id)

    async def commit(self, upload_id: str, sha256: str, *, now_ms: int | None = None) -> UploadInfo:
        """Complete an upload whose every declared byte came; ``sha256`` is their
        digest (lowercase hex). Fewer bytes than declared: UploadRefused (INVALID), and
        the upload is dropped; EXPIRED when it is gone."""
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
        if not is_upload_id(upload_id):
            raise _gone(upload_id)
        answer = await self._scripts.commit(upload_id=upload_id, sha256=sha256, now_ms=now_ms)
        if answer.code is UploadCode.OK and answer.fields is not None:
            return _info(upload_id, answer.fields)
        if answer.code is UploadCode.SIZE_MISMATCH:
            raise invalid(
                "metadata.size",
                f"declared {answer.value} bytes, but the stream ended after {answer.received}",
            )
        if answer.code is UploadCode.WRONG_STATE:
            raise invalid("chunk", f"upload {upload_id} is complete already")
        raise _gone(upload_id)

    async def abort(self, upload_id: str) -> bool:
        """Drop an upload and give its bytes back, whatever its state, unless a job uses
        it; whether it was dropped. Idempotent."""
        if not is_upload_id(upload_id):
            return False
        answer = await self._scripts.abort(upload_id=upload_id)
        return answer.code is UploadCode.OK

    async def abort_quietly(self, upload_id: str) -> None:
        """:meth:`abort` on a failure path: shielded, so that a second cancellation of
        the caller leaves it running, and silent when Redis fails too (the upload is
        then trimmed once it has been quiet for ``limits.partial_ttl_s``)."""
        try:
            await asyncio.shield(self.abort(upload_id))
        except StoreError:
            log.warning("could not drop upload %s; it expires on its own", upload_id)

    async def sweep(self, now_ms: int | None = None, *, limit: int | None = None) -> int:
        """Trim up to ``limit`` (default: ``limits.sweep_batch``) uploads whose time has
        come; how many were trimmed."""
        swept = await self._scripts.sweep(now_ms=now_ms, limit=limit or self.limits.sweep_batch)
        return swept.trimmed

    async def sweep_forever(self, interval_s: float) -> None:
        """Trim expired uploads every ``interval_s`` until cancelled (uploads and sends
        trim some as they go; this keeps a quiet gateway's budget free too). A Redis
        error only delays the next sweep."""
        await sweep_forever([self], interval_s)

    async def sweep_all(self) -> None:
        """Trim every expired upload, a batch per call."""
        while await self.sweep() >= self.limits.sweep_batch:
            pass

    async def held_bytes(self) -> int:
        """Bytes held by every upload, complete or partial (what the budget counts)."""
        async with store_errors():
            return int(await self.redis.get(self.keys.upload_bytes) or 0)

    async def info(self, upload_id: str) -> UploadInfo | None:
        """What the store knows of one upload; None when there is none by that id."""
        [found] = await self.infos([upload_id])
        return found

    async def infos(self, upload_ids: Sequence[str]) -> list[UploadInfo | None]:
        """:meth:`info` of each id, in order, in one round trip."""
        valid = [i for i in upload_ids if is_upload_id(i)]
        if not valid:
            return [None] * len(upload_ids)
        async with store_errors(), self.redis.pipeline(transaction=False) as pipe:
            for upload_id in valid:
                pipe.hmget(self.keys.upload(upload_id), _INFO_FIELDS)
            replies = await pipe.execute()
        found: dict[str, UploadInfo] = {}
        for upload_id, values in zip(valid, replies, strict=True):
            if values[0] is not None:
                fields = {k.encode(): v for k, v in zip(_INFO_FIELDS, values, strict=True) if v}
                found[upload_id] = _info(upload_id, fields)
        return [found.get(i) for i in upload_ids]

    async def read(self, upload_id: str) -> bytes | None:
        """The whole content of a complete upload; None unless there is one by that id."""
        if not is_upload_id(upload_id):
            return None
        async with store_errors(), self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.keys.upload(upload_id), ("st", "sz"))
            pipe.lrange(self.keys.chunks(upload_id), 0, -1)
            (state, size), chunks = await pipe.execute()
        if state != b"r":
            return None
        content = b"".join(chunks)
        if len(content) != int(size):
            raise StoreError(f"upload {upload_id} holds {len(content)} of {int(size)} bytes")
        return content

    async def stream(self, upload_id: str) -> AsyncIterator[bytes]:
        """The chunks of a complete upload, a few per round trip; nothing when there is
        none by that id. UploadRefused (EXPIRED) when it is trimmed meanwhile (pin it
        first: a job's upload is not trimmed)."""
        if not is_upload_id(upload_id):
            return
        async with store_errors():
            state, count = await self.redis.hmget(self.keys.upload(upload_id), ("st", "nc"))
        if _raw(state) != b"r":
            return
        total = int(_raw(count))
        for start in range(0, total, _STREAM_WINDOW):
            stop = min(start + _STREAM_WINDOW, total) - 1
            async with store_errors():
                chunks = await self.redis.lrange(self.keys.chunks(upload_id), start, stop)
            if len(chunks) != stop - start + 1:
                raise _gone(upload_id)
            for chunk in chunks:
                yield _raw(chunk)

    async def claim_first_send(self, upload_id: str, holder: str, ttl_ms: int) -> bool:
        """Become the one sender handing this upload's bytes to Telegram (until
        :meth:`end_first_send`, or ``ttl_ms`` should the holder vanish); False when
        another holds it. Advisory: losing it costs a second upload, never a message."""
        async with store_errors():
            taken = await self.redis.set(
                self.keys.claim(upload_id), holder, nx=True, px=max(1, ttl_ms)
            )
        return bool(taken)

    async def end_first_send(self, upload_id: str, holder: str) -> None:
        """Give the claim up (only ``holder``'s own: one that expired and was taken by
        another sender stays theirs)."""
        key = self.keys.claim(upload_id)
        async with store_errors():
            if _raw(await self.redis.get(key)).decode() == holder:
                await self.redis.delete(key)

    def _file_id_key(self, bot_id: int, kind: int, sha256: str) -> str:
        if kind not in MEDIA_KIND_NAMES:
            raise ValueError(f"no file_id is kept for media kind {kind}")
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
        return self.keys.file_id(bot_id, kind, sha256)

    async def file_id(self, bot_id: int, kind: int, sha256: str) -> str | None:
        """Telegram's file_id for content ``sha256`` sent by bot ``bot_id`` as ``kind``
        (a ``pb.MediaKind``), renewed for ``limits.file_id_ttl_s`` as it is used; None
        when none is known."""
        key = self._file_id_key(bot_id, kind, sha256)
        async with store_errors():
            value = await self.redis.getex(key, ex=self.limits.file_id_ttl_s)
        return None if value is None else _raw(value).decode()

    async def remember_file_id(self, bot_id: int, kind: int, sha256: str, file_id: str) -> None:
        """Keep the file_id Telegram gave for content ``sha256`` sent by ``bot_id`` as
        ``kind``: later sends of it refer to the file instead of uploading it again."""
        key = self._file_id_key(bot_id, kind, sha256)
        async with store_errors():
            await self.redis.set(key, file_id, ex=self.limits.file_id_ttl_s)

    async def forget_file_id(self, bot_id: int, kind: int, sha256: str) -> None:
        """Drop a file_id Telegram no longer accepts (the next send uploads the bytes)."""
        key = self._file_id_key(bot_id, kind, sha256)
        async with store_errors():
            await self.redis.delete(key)


# The most stores one sweeper visits per second: a thousand bots' stores take 500 s a round.
SWEEPS_PER_S = 2


async def sweep_forever(stores: Sequence[UploadStore], interval_s: float) -> None:
    """Trim the expired uploads of each store (each bot's) once per ``interval_s`` (or
    per ``len(stores) / SWEEPS_PER_S`` s, whichever is longer), one store at a time,
    until cancelled. A Redis error only delays that store's next sweep."""
    pause_s = max(interval_s / len(stores), 1 / SWEEPS_PER_S)
    while True:
        for store in stores:
            await asyncio.sleep(pause_s)
            try:
                await store.sweep_all()
            except StoreError as exc:
                log.debug("cannot sweep the uploads: %s", exc)
