"""The upload store and the UploadFile stream handling, against a real Valkey server.

Time is driven by passing ``now_ms`` (the scripts' clock argument), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from redis.asyncio import Redis

from notigate.queue import QueueKeys
from notigate.uploads import (
    RefusalKind,
    UploadLimits,
    UploadRefused,
    UploadStore,
    metadata_violations,
    receive_upload,
)
from notigate.uploads.keys import UploadKeys
from notigate.uploads.limits import MIB
from notigate.uploads.scripts import UploadScript, UploadScripts
from notigate.uploads.source import read
from notigate_client import pb, pb_grpc
from tests.conftest import wait_for
from tests.script_headers import (
    assert_header_matches,
    assert_includes_close_over_nothing,
    assert_names_only_what_it_defines,
    lua_names,
)

PREFIX = QueueKeys.for_queue("uploads").prefix
KIB = 1 << 10
T0 = 1_000_000


def content(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def cut(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """``data`` in pieces of the given sizes (cycled), the last one what is left."""
    out: list[bytes] = []
    at, steps = 0, list(sizes)
    while at < len(data):
        step = steps[len(out) % len(steps)]
        out.append(data[at : at + step])
        at += step
    return out


def metadata(size: int, filename: str = "report.pdf", content_type: str = "") -> pb.UploadMetadata:
    return pb.UploadMetadata(filename=filename, content_type=content_type, size=size)


async def requests(
    meta: pb.UploadMetadata, chunks: Iterable[bytes], fail_after: int | None = None
) -> AsyncIterator[pb.UploadFileRequest]:
    """An UploadFile stream: ``meta``, then ``chunks``; raises before chunk ``fail_after``."""
    yield pb.UploadFileRequest(metadata=meta)
    for i, chunk in enumerate(chunks):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("client stream broke")
        await asyncio.sleep(0)  # let concurrent uploads interleave
        yield pb.UploadFileRequest(chunk=chunk)


async def make_store(redis: Redis, **limits: int | float) -> UploadStore:
    store = UploadStore(redis, PREFIX, UploadLimits(**limits))  # type: ignore[arg-type]
    await store.load()
    return store


async def upload_keys(redis: Redis) -> set[bytes | str]:
    """Every key of an upload left in the store (not the counters)."""
    return set(await redis.keys(PREFIX + "up:*"))


async def assert_nothing_held(redis: Redis, store: UploadStore) -> None:
    assert await upload_keys(redis) == set()
    assert await redis.zcard(store.keys.uploads) == 0
    assert await store.held_bytes() == 0


async def upload(
    store: UploadStore, data: bytes, chunk: int = 64 * KIB, now_ms: int | None = None
) -> str:
    """Store ``data`` through the store's steps at time ``now_ms`` (None: Redis's clock)."""
    upload_id = await store.begin(metadata(len(data)), now_ms=now_ms)
    for piece in cut(data, [chunk]):
        await store.append(upload_id, piece, now_ms=now_ms)
    await store.commit(upload_id, hashlib.sha256(data).hexdigest(), now_ms=now_ms)
    return upload_id


# pin_upload and release_upload as the queue's scripts will call them.
REFS_SCRIPT = (
    read("includes/upload_refs.lua")
    + """
if ARGV[1] == 'pin' then
  return pin_upload(ARGV[2], ARGV[3]) and 1 or 0
end
release_upload(ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
"""
)


async def pin(redis: Redis, upload_id: str) -> bool:
    return bool(await redis.eval(REFS_SCRIPT, 0, "pin", PREFIX, upload_id))


async def release(redis: Redis, upload_id: str, now_ms: int, ttl_ms: int) -> None:
    await redis.eval(REFS_SCRIPT, 0, "release", PREFIX, upload_id, now_ms, ttl_ms)


# -- round trips ---------------------------------------------------------------------------


async def test_a_several_mb_upload_round_trips_byte_exactly(redis: Redis) -> None:
    store = await make_store(redis)
    data = content(5 * MIB + 12345)
    # Odd sizes, empty chunks (skipped), and a 3 MiB chunk (stored cut to 1 MiB pieces).
    pieces = cut(data, [100_000, 0, 7, 3 * MIB, 65_536, 1])
    reply = await receive_upload(
        store, requests(metadata(len(data), "clip.mp4", "video/mp4"), pieces)
    )
    assert reply.size == len(data)
    assert reply.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.read(reply.upload_id) == data
    assert b"".join([c async for c in store.stream(reply.upload_id)]) == data
    info = await store.info(reply.upload_id)
    assert info is not None
    assert (info.filename, info.content_type, info.size, info.sha256, info.ready, info.refs) == (
        "clip.mp4",
        "video/mp4",
        len(data),
        reply.sha256,
        True,
        0,
    )
    chunks = await redis.lrange(store.keys.chunks(reply.upload_id), 0, -1)
    assert max(len(c) for c in chunks) <= MIB
    assert await redis.hget(store.keys.upload(reply.upload_id), "nc") == str(len(chunks)).encode()
    assert await store.held_bytes() == len(data)


async def test_upload_ids_are_random_and_unguessable(redis: Redis) -> None:
    store = await make_store(redis)
    ids = {await store.begin(metadata(10)) for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


async def test_infos_answers_many_ids_in_order(redis: Redis) -> None:
    store = await make_store(redis)
    ready = await upload(store, content(1000))
    partial = await store.begin(metadata(50, "part.bin"))
    got = await store.infos([partial, "x" * 22, ready, "not:an:id", ready])
    assert [i.upload_id if i else None for i in got] == [partial, None, ready, None, ready]
    assert got[0] is not None and not got[0].ready and got[0].sha256 == ""
    assert await store.infos([]) == []
    # Only complete uploads are read.
    assert await store.read(partial) is None
    assert [c async for c in store.stream(partial)] == []
    assert await store.read("x" * 22) is None


# -- refusals leave nothing behind ---------------------------------------------------------


async def test_over_budget_at_begin_leaves_nothing(redis: Redis) -> None:
    store = await make_store(redis, budget_bytes=MIB, max_file_bytes=MIB)
    kept = await upload(store, content(700 * KIB))
    with pytest.raises(UploadRefused) as refused:
        await receive_upload(store, requests(metadata(400 * KIB), cut(content(400 * KIB), [KIB])))
    assert refused.value.kind is RefusalKind.BUDGET_EXHAUSTED
    # The kept upload may be trimmed after ttl_s: that is when to come back.
    assert refused.value.retry_after_s == pytest.approx(store.limits.ttl_s, abs=60)
    assert await upload_keys(redis) == {
        store.keys.upload(kept).encode(),
        store.keys.chunks(kept).encode(),
    }
    assert await store.held_bytes() == 700 * KIB


async def test_over_budget_mid_stream_drops_the_upload(redis: Redis) -> None:
    store = await make_store(redis, budget_bytes=MIB, max_file_bytes=MIB)
    late = await store.begin(metadata(600 * KIB), now_ms=T0)
    await store.append(late, content(100 * KIB), now_ms=T0)
    kept = await upload(store, content(600 * KIB), now_ms=T0)
    with pytest.raises(UploadRefused) as refused:
        await store.append(late, content(400 * KIB), now_ms=T0)
    assert refused.value.kind is RefusalKind.BUDGET_EXHAUSTED
    assert await store.info(late) is None
    assert await store.held_bytes() == 600 * KIB
    assert await store.abort(late) is False
    assert await store.read(kept) == content(600 * KIB)


@pytest.mark.parametrize("sent", [999, 1001], ids=["short", "long"])
async def test_a_size_other_than_declared_aborts(redis: Redis, sent: int) -> None:
    store = await make_store(redis)
    with pytest.raises(UploadRefused) as refused:
        await receive_upload(store, requests(metadata(1000), cut(content(sent), [300])))
    assert refused.value.kind is RefusalKind.INVALID
    [violation] = refused.value.violations
    assert violation.field == ("metadata.size" if sent < 1000 else "chunk")
    await assert_nothing_held(redis, store)


async def test_a_stream_that_raises_midway_aborts(redis: Redis) -> None:
    store = await make_store(redis)
    data = content(10 * KIB)
    with pytest.raises(RuntimeError, match="client stream broke"):
        await receive_upload(store, requests(metadata(len(data)), cut(data, [KIB]), fail_after=5))
    await assert_nothing_held(redis, store)


async def test_a_cancelled_stream_aborts(redis: Redis) -> None:
    store = await make_store(redis)
    stalled = asyncio.Event()

    async def stalling() -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(metadata=metadata(10 * KIB))
        yield pb.UploadFileRequest(chunk=content(KIB))
        stalled.set()
        await asyncio.Event().wait()  # the client went away mid-upload
        yield pb.UploadFileRequest(chunk=b"never")

    task = asyncio.create_task(receive_upload(store, stalling()))
    await stalled.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_nothing_held(redis, store)


async def test_a_cancel_at_any_point_leaves_nothing_partial(redis: Redis) -> None:
    store = await make_store(redis)
    data = content(64 * KIB)
    for steps in range(0, 60, 3):
        task = asyncio.create_task(
            receive_upload(store, requests(metadata(len(data)), cut(data, [4 * KIB])))
        )
        for _ in range(steps):  # the cancel lands in begin, an append, commit, or after
            await asyncio.sleep(0)
        task.cancel()
        [outcome] = await asyncio.gather(task, return_exceptions=True)
        if isinstance(outcome, pb.UploadFileResponse):
            assert await store.read(outcome.upload_id) == data
            assert await store.abort(outcome.upload_id)
        else:
            assert isinstance(outcome, asyncio.CancelledError)
        await assert_nothing_held(redis, store)


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "metadata"),
        ([pb.UploadFileRequest(chunk=b"abc")], "metadata"),
        (
            [
                pb.UploadFileRequest(metadata=metadata(3)),
                pb.UploadFileRequest(metadata=metadata(3)),
            ],
            "metadata",
        ),
        ([pb.UploadFileRequest(metadata=metadata(3)), pb.UploadFileRequest()], "data"),
        ([pb.UploadFileRequest(metadata=metadata(0))], "metadata.size"),
    ],
    ids=["empty", "chunk-first", "second-metadata", "no-data", "bad-metadata"],
)
async def test_streams_out_of_order_are_refused(
    redis: Redis, messages: list[pb.UploadFileRequest], field: str
) -> None:
    store = await make_store(redis)

    async def stream() -> AsyncIterator[pb.UploadFileRequest]:
        for m in messages:
            yield m

    with pytest.raises(UploadRefused) as refused:
        await receive_upload(store, stream())
    assert refused.value.kind is RefusalKind.INVALID
    assert refused.value.violations[0].field == field
    await assert_nothing_held(redis, store)


@pytest.mark.parametrize(
    ("meta", "fields"),
    [
        (metadata(1, filename=""), ["metadata.filename"]),
        (metadata(1, filename="a" * 256), ["metadata.filename"]),
        (metadata(1, filename="../etc/passwd"), ["metadata.filename"]),
        (metadata(1, filename="dir\\file"), ["metadata.filename"]),
        (metadata(1, filename="bell\x07.txt"), ["metadata.filename"]),
        (metadata(1, filename="cod.exe\u202efdp"), ["metadata.filename"]),
        (metadata(1, filename=".."), ["metadata.filename"]),
        (metadata(1, content_type="pdf"), ["metadata.content_type"]),
        (metadata(1, content_type="text/plain; charset"), ["metadata.content_type"]),
        (metadata(-5), ["metadata.size"]),
        (
            metadata(0, filename="", content_type="a/b/c"),
            ["metadata.filename", "metadata.content_type", "metadata.size"],
        ),
    ],
)
def test_bad_metadata_names_its_fields(meta: pb.UploadMetadata, fields: list[str]) -> None:
    assert [v.field for v in metadata_violations(meta, UploadLimits())] == fields


@pytest.mark.parametrize(
    "meta",
    [
        metadata(1, filename="a" * 255),
        metadata(1, filename="Отчёт 2026 (final).pdf", content_type="application/pdf"),
        metadata(1, content_type='text/plain; charset=utf-8; format="flowed"'),
        metadata(50_000_000, filename="🎬.mp4", content_type="video/mp4"),
    ],
)
def test_good_metadata_passes(meta: pb.UploadMetadata) -> None:
    assert metadata_violations(meta, UploadLimits()) == []


async def test_too_large_is_its_own_kind(redis: Redis) -> None:
    store = await make_store(redis)
    with pytest.raises(UploadRefused) as refused:
        await store.begin(metadata(50_000_001))
    assert refused.value.kind is RefusalKind.TOO_LARGE
    assert [v.field for v in refused.value.violations] == ["metadata.size"]
    await assert_nothing_held(redis, store)


# -- expiry ------------------------------------------------------------------------------


async def test_sweep_trims_expired_uploads_and_keeps_pinned_ones(redis: Redis) -> None:
    store = await make_store(redis, ttl_s=100, partial_ttl_s=10)
    ttl_ms, partial_ms = 100_000, 10_000
    kept = await upload(store, content(300, seed=1), now_ms=T0)
    pinned = await upload(store, content(500, seed=2), now_ms=T0)
    stalled = await store.begin(metadata(1000), now_ms=T0)
    await store.append(stalled, content(400), now_ms=T0)
    assert await pin(redis, pinned)
    assert await store.held_bytes() == 1200

    # A stalled upload lives partial_ttl_s after its last chunk.
    assert await store.sweep(T0 + partial_ms - 1) == 0
    assert await store.sweep(T0 + partial_ms) == 1
    assert await store.info(stalled) is None
    assert await store.held_bytes() == 800

    # A complete one lives ttl_s after its upload; a pinned one until released.
    assert await store.sweep(T0 + ttl_ms - 1) == 0
    assert await store.sweep(T0 + ttl_ms) == 1
    assert await store.info(kept) is None
    assert await store.sweep(T0 + 10 * ttl_ms) == 0
    info = await store.info(pinned)
    assert info is not None and info.refs == 1
    assert await store.held_bytes() == 500

    released = T0 + 20 * ttl_ms
    await release(redis, pinned, released, ttl_ms)
    info = await store.info(pinned)
    assert info is not None and info.refs == 0
    assert await store.sweep(released + ttl_ms - 1) == 0
    assert await store.sweep(released + ttl_ms) == 1
    await assert_nothing_held(redis, store)


async def test_pins_count_jobs(redis: Redis) -> None:
    store = await make_store(redis, ttl_s=100)
    upload_id = await upload(store, content(100), now_ms=T0)
    assert await pin(redis, upload_id)
    assert await pin(redis, upload_id)
    await release(redis, upload_id, T0, 100_000)
    assert await store.sweep(T0 + 1000 * 100_000) == 0  # one job still uses it
    assert await store.abort(upload_id) is False  # nor is it aborted
    await release(redis, upload_id, T0, 100_000)
    assert await store.sweep(T0 + 100_000) == 1
    await assert_nothing_held(redis, store)


async def test_only_a_ready_upload_is_pinned(redis: Redis) -> None:
    store = await make_store(redis)
    partial = await store.begin(metadata(10))
    assert not await pin(redis, partial)
    assert not await pin(redis, "A" * 22)
    # A release of an upload that is gone creates nothing.
    await release(redis, "A" * 22, T0, 1000)
    assert await redis.exists(store.keys.upload("A" * 22)) == 0


async def test_a_stream_stalled_past_partial_ttl_is_gone(redis: Redis) -> None:
    store = await make_store(redis, partial_ttl_s=10)
    upload_id = await store.begin(metadata(20), now_ms=T0)
    await store.append(upload_id, b"x" * 10, now_ms=T0 + 9_999)
    # Each chunk renews it; the next comes too late and finds it trimmed.
    with pytest.raises(UploadRefused) as refused:
        await store.append(upload_id, b"x" * 10, now_ms=T0 + 9_999 + 10_000)
    assert refused.value.kind is RefusalKind.EXPIRED
    await assert_nothing_held(redis, store)


async def test_every_script_trims_on_its_way(redis: Redis) -> None:
    store = await make_store(redis, ttl_s=1, sweep_batch=2)
    old = [await upload(store, content(10, seed=i), now_ms=T0) for i in range(3)]
    # begin at a later time trims two expired uploads (its batch), the next call the third.
    fresh = await store.begin(metadata(5), now_ms=T0 + 5000)
    assert [await store.info(i) is None for i in old].count(True) == 2
    await store.append(fresh, b"12345", now_ms=T0 + 5000)
    assert await store.infos(old) == [None, None, None]
    assert await store.held_bytes() == 5


# -- concurrency ---------------------------------------------------------------------------


async def test_two_uploads_racing_for_the_budget_one_wins(redis: Redis) -> None:
    size = 600 * KIB
    store = await make_store(redis, budget_bytes=MIB, max_file_bytes=MIB)
    streams = [requests(metadata(size), cut(content(size, seed=s), [16 * KIB])) for s in (1, 2)]
    results = await asyncio.gather(
        *(receive_upload(store, s) for s in streams), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, pb.UploadFileResponse)]
    lost = [r for r in results if isinstance(r, UploadRefused)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].kind is RefusalKind.BUDGET_EXHAUSTED
    assert await store.held_bytes() == size
    assert await upload_keys(redis) == {
        store.keys.upload(won[0].upload_id).encode(),
        store.keys.chunks(won[0].upload_id).encode(),
    }


async def test_many_racing_uploads_keep_the_counter_exact(redis: Redis) -> None:
    size = 100 * KIB
    store = await make_store(redis, budget_bytes=550 * KIB, max_file_bytes=500 * KIB)
    streams = [requests(metadata(size), cut(content(size, seed=s), [7 * KIB])) for s in range(12)]
    results = await asyncio.gather(
        *(receive_upload(store, s) for s in streams), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, pb.UploadFileResponse)]
    assert all(isinstance(r, pb.UploadFileResponse | UploadRefused) for r in results)
    assert 1 <= len(won) <= 5
    assert await store.held_bytes() == len(won) * size
    assert len(await upload_keys(redis)) == 2 * len(won)
    for reply in won:
        assert await store.read(reply.upload_id) is not None


# -- over real gRPC --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def upload_server(
    store: UploadStore, ended: list[BaseException | None]
) -> AsyncIterator[pb_grpc.NotificationServiceStub]:
    """A gRPC server on port 0 whose UploadFile is receive_upload; ``ended`` gets what
    each call's handler ended with (None: it returned)."""

    async def upload_file(
        requests: AsyncIterator[pb.UploadFileRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadFileResponse:
        try:
            reply = await receive_upload(store, requests)
        except BaseException as exc:
            ended.append(exc)
            raise
        ended.append(None)
        return reply

    handler = grpc.stream_unary_rpc_method_handler(
        upload_file,
        request_deserializer=pb.UploadFileRequest.FromString,
        response_serializer=pb.UploadFileResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "notigate.v1.NotificationService", {"UploadFile": handler}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.NotificationServiceStub(channel)
    finally:
        await server.stop(None)


async def test_an_upload_over_grpc_round_trips(redis: Redis) -> None:
    store = await make_store(redis)
    data = content(2 * MIB + 3)
    ended: list[BaseException | None] = []
    async with upload_server(store, ended) as stub:
        reply = await stub.UploadFile(requests(metadata(len(data)), cut(data, [MIB])), timeout=30)
    assert ended == [None]
    assert reply.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.read(reply.upload_id) == data


async def test_a_client_that_cancels_mid_upload_leaves_nothing(redis: Redis) -> None:
    store = await make_store(redis)
    ended: list[BaseException | None] = []
    finish = asyncio.Event()

    async def stalling() -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(metadata=metadata(10 * KIB))
        yield pb.UploadFileRequest(chunk=content(KIB))
        await finish.wait()

    async with upload_server(store, ended) as stub:
        call = stub.UploadFile(stalling(), timeout=30)

        async def stored() -> bool:
            return await store.held_bytes() == KIB

        await wait_for(stored)
        call.cancel()

        async def handler_ended() -> bool:
            return bool(ended)

        await wait_for(handler_ended)
        finish.set()
    # grpc.aio ends the stream of a cancelled call (the handler sees it short) or
    # cancels the handler: either way nothing is kept.
    assert isinstance(ended[0], asyncio.CancelledError | UploadRefused)
    await assert_nothing_held(redis, store)


# -- file_id cache -----------------------------------------------------------------------


async def test_file_ids_are_kept_per_bot_and_kind(redis: Redis) -> None:
    store = await make_store(redis)
    sha = hashlib.sha256(b"photo").hexdigest()
    photo, document = pb.MEDIA_KIND_PHOTO, pb.MEDIA_KIND_DOCUMENT
    assert await store.file_id(1, photo, sha) is None
    await store.remember_file_id(1, photo, sha, "AgAC-photo-1")
    await store.remember_file_id(2, photo, sha, "AgAC-photo-2")
    assert await store.file_id(1, photo, sha) == "AgAC-photo-1"
    assert await store.file_id(2, photo, sha) == "AgAC-photo-2"
    assert await store.file_id(1, document, sha) is None
    key = f"{PREFIX}fid:1:photo:{sha}"
    # Each use renews the long TTL.
    await redis.expire(key, 5)
    assert await store.file_id(1, photo, sha) == "AgAC-photo-1"
    assert 29 * 86400 < await redis.ttl(key) <= 30 * 86400
    await store.forget_file_id(1, photo, sha)
    assert await store.file_id(1, photo, sha) is None
    with pytest.raises(ValueError):
        await store.file_id(1, pb.MEDIA_KIND_UNSPECIFIED, sha)
    with pytest.raises(ValueError):
        await store.file_id(1, photo, "not-a-digest")


# -- the scripts' headers ------------------------------------------------------------------

WRAPPERS = UploadScripts.register(Redis(), UploadKeys.for_prefix(PREFIX), UploadLimits()).all()


def test_every_script_has_one_wrapper() -> None:
    assert sorted(w.name for w in WRAPPERS) == lua_names("notigate.uploads")


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_keys_and_argv_match_the_header(wrapper: UploadScript[object]) -> None:
    assert_header_matches(wrapper, read(f"{wrapper.name}.lua"), UploadKeys)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.name)
def test_scripts_name_only_defined_constants(wrapper: UploadScript[object]) -> None:
    assert_names_only_what_it_defines(wrapper, UploadLimits().packed())


def test_includes_close_over_nothing() -> None:
    assert_includes_close_over_nothing("notigate.uploads", ("prefix",))
