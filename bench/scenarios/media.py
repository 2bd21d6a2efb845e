"""10. Media: uploads, the Redis bytes of one file sent to many chats, and media delivery.

*Upload throughput*: a ``media_upload_bytes`` file (random bytes) streamed through
UploadFile in 1,000,000-byte chunks by a grpc.aio client in the bench's process to one
notigate process, against redis-py in the same process writing the same chunks into the
same Valkey (RPUSH, one pipeline for all chunks and one awaited call per chunk): MB/s
(10^6 bytes) from the call to its answer, the median of ``media_upload_repeats``
alternating repeats after one unmeasured round (each write is dropped before the next),
and CPU ms per MB of the client, the gateway and Valkey.
*Memory*: INFO used_memory delta of one ``media_memory_bytes`` upload plus
``media_memory_chats`` jobs sending it by upload_id to as many chats, against as many text
jobs to the same chats, each through SendBatch with a one-hour delay (so they stay
queued) and the same caption-sized text, each on a freshly emptied Valkey.
*Delivery*: the delivery scenario's setup (simulator ``--no-limits``, rates 1,000,000/s,
margins 0, 64 in flight) draining ``media_delivery_jobs`` photo sends by a file_id the
simulator issued (from one earlier upload), the same number of text sends, and the same
number of sends of one upload_id (the first send uploads, the others wait for its file_id),
each queue pre-filled over 5,000 chats through notigate's own enqueue script, each drain
into a fresh simulator; text and file_id are drained twice each, in the order A B B A, and
their figures are the means. jobs/s as in the delivery scenario; CPU s per 1,000 of the
worker, Valkey and the simulator; ``telegram_uploads``: file parts the simulator received.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration

from bench.infra import (
    TOKEN,
    BenchError,
    Config,
    Env,
    Notigate,
    Simulator,
    cpu_seconds,
    running,
)
from bench.load import bench_text, grpc_stub
from bench.measure import Sample, delivery_figures, sample_delivery

NAME = "media"
TITLE = "Media: uploads, memory of one file to many chats, delivery"
CHUNK = 1_000_000
MB = 1e6
CHATS = 5_000
FAST = 1_000_000
CHAT_BASE = 1_000_000
# The chat the file_id is fetched through (outside the measured chats).
PRIME_CHAT = "42"
PHOTO_BYTES = 100_000
DELIVERY_SETTINGS: dict[str, Any] = dict(
    NOTIGATE_GLOBAL_RATE=FAST, NOTIGATE_PRIVATE_RATE=FAST, NOTIGATE_GROUP_RATE=FAST,
    NOTIGATE_GLOBAL_MARGIN_MS=0, NOTIGATE_CHAT_MARGIN_MS=0, NOTIGATE_CONCURRENCY=64,
)  # fmt: skip


def _photo(size: int) -> bytes:
    """A JPEG-looking file of ``size`` bytes (nobody decodes it; the start names it)."""
    return b"\xff\xd8\xff\xe0" + os.urandom(size - 4)


def _chunks(data: bytes) -> list[bytes]:
    return [data[at : at + CHUNK] for at in range(0, len(data), CHUNK)]


async def _upload(stub: Any, data: bytes, filename: str, content_type: str = "") -> Any:
    """One UploadFile stream of ``data`` in CHUNK-byte messages; the answer."""
    from notigate_client import pb

    async def stream() -> AsyncIterator[Any]:
        meta = pb.UploadMetadata(filename=filename, content_type=content_type, size=len(data))
        yield pb.UploadFileRequest(metadata=meta)
        for chunk in _chunks(data):
            yield pb.UploadFileRequest(chunk=chunk)

    reply = await stub.UploadFile(stream(), timeout=120)
    if reply.size != len(data):
        raise BenchError(f"UploadFile stored {reply.size} of {len(data)} bytes")
    return reply


# -- 1. upload throughput ----------------------------------------------------------------


class _Cpu:
    """CPU seconds of the bench's own process (the client), a gateway and Valkey, summed
    over the repeats (one repeat is shorter than the kernel's 10 ms accounting tick)."""

    def __init__(self, env: Env, gateway: Notigate | None) -> None:
        self.env, self.gw = env, gateway
        self.total = [0.0, 0.0, 0.0]
        self.bytes = 0

    def read(self) -> tuple[float, float, float]:
        gw = self.gw.cpu() if self.gw is not None else 0.0
        return cpu_seconds([os.getpid()]), gw, self.env.valkey_cpu()

    @contextlib.contextmanager
    def measure(self, size: int) -> Iterator[None]:
        start = self.read()
        yield
        for i, (a, b) in enumerate(zip(start, self.read(), strict=True)):
            self.total[i] += b - a
        self.bytes += size

    def per_mb(self) -> dict[str, float]:
        client, gw, redis = (1000 * t / (self.bytes / MB) for t in self.total)
        out = {"client_cpu_ms_per_mb": client, "redis_cpu_ms_per_mb": redis}
        if self.gw is not None:
            out["gateway_cpu_ms_per_mb"] = gw
        return out


def _upload_store(env: Env) -> Any:
    """The upload store of the queue the bench's gateways use (to drop uploads)."""
    from notigate.config import Settings
    from notigate.queue import Queue
    from notigate.uploads import UploadStore

    queue = Queue(env.r(), Settings(redis_url=env.redis_url))
    return UploadStore(env.r(), queue.keys.prefix)


async def _upload_throughput(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    size = cfg.media_upload_bytes
    data = os.urandom(size)
    chunks = _chunks(data)
    key = "bench:rpush"
    r = env.r()
    store = _upload_store(env)
    names = {
        "notigate": "upload: notigate UploadFile (grpc.aio client)",
        "pipeline": "upload: redis-py RPUSH, one pipeline",
        "calls": "upload: redis-py RPUSH, one call per chunk",
    }

    async def pipeline() -> None:
        async with r.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                pipe.rpush(key, chunk)
            await pipe.execute()

    async def calls() -> None:
        for chunk in chunks:
            await r.rpush(key, chunk)

    await env.flush()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim)
    rates: dict[str, list[float]] = {k: [] for k in names}
    cpu = {k: _Cpu(env, gw if k == "notigate" else None) for k in names}
    async with running(sim, gw):
        await gw.start()
        channel, stub = await grpc_stub(gw.target)
        uploaded: list[str] = []

        async def upload() -> None:
            reply = await _upload(stub, data, "bench.bin", "application/octet-stream")
            uploaded.append(reply.upload_id)

        try:
            writes = {"notigate": upload, "pipeline": pipeline, "calls": calls}
            # Each write is dropped before the next, so all of them take memory the
            # allocator has had back (not fresh pages), and a full round first connects
            # the channel and faults those pages in. Alternating, so a slow spell of the
            # machine falls on all three.
            for rep in range(cfg.media_upload_repeats + 1):
                for k, write in writes.items():
                    with contextlib.ExitStack() as timed:
                        if rep:
                            timed.enter_context(cpu[k].measure(size))
                        t0 = time.perf_counter()
                        await write()
                        dt = time.perf_counter() - t0
                    if rep:
                        rates[k].append(size / MB / dt)
                    for upload_id in uploaded:
                        await store.abort(upload_id)
                    uploaded.clear()
                    await r.delete(key)
                    await env.settle()
        finally:
            await channel.close()
    await env.flush()
    return {
        names[k]: {"mb_per_s": statistics.median(rates[k]), **cpu[k].per_mb(), "file_mb": size / MB}
        for k in names
    }


# -- 2. Redis bytes of one file sent to many chats -----------------------------------------


async def _queued_delta(env: Env, cfg: Config, *, media: bool) -> float:
    """used_memory delta of queueing ``media_memory_chats`` delayed sends (with media:
    after uploading the file they all send)."""
    from notigate_client import pb

    chats = cfg.media_memory_chats
    await env.flush()
    await env.settle()
    sim = await Simulator(env, limits=False).start()
    gw = Notigate(env, sim)
    async with running(sim, gw):
        await gw.start()
        channel, stub = await grpc_stub(gw.target)
        try:
            await env.settle()
            before = await env.used_memory()
            photo = None
            if media:
                reply = await _upload(stub, _photo(cfg.media_memory_bytes), "flyer.jpg")
                photo = pb.Media(kind=pb.MEDIA_KIND_PHOTO, upload_id=reply.upload_id)
            hour = Duration(seconds=3600)
            for start in range(0, chats, 1000):
                batch = [
                    pb.SendRequest(chat_id=str(CHAT_BASE + i), text=bench_text(i), delay=hour,
                                   media=photo)
                    for i in range(start, min(chats, start + 1000))
                ]  # fmt: skip
                await stub.SendBatch(pb.SendBatchRequest(messages=batch), timeout=60)
            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
            if stats.delayed != chats:
                raise BenchError(f"{stats.delayed} of {chats} jobs delayed")
            # What the last calls left behind (a grown client query buffer) goes back to
            # the allocator once the client has been idle 2 s, on Valkey's cron: readings
            # taken sooner spread by +-100 kB.
            await asyncio.sleep(0.3 if cfg.smoke else 2.5)
            await env.settle()
            after = await env.used_memory()
        finally:
            await channel.close()
    await env.flush()
    return float(after - before)


async def _memory(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    chats = cfg.media_memory_chats
    text = await _queued_delta(env, cfg, media=False)
    media = await _queued_delta(env, cfg, media=True)
    return {
        f"memory: {chats:,} text jobs": {"delta_bytes": text, "bytes_per_job": text / chats},
        f"memory: 1 file, {chats:,} jobs": {
            "delta_bytes": media,
            "bytes_per_job": media / chats,
            "file_mb": cfg.media_memory_bytes / MB,
        },
    }


# -- 3. delivery: photo by file_id, by upload_id, and text --------------------------------


async def _fill(env: Env, requests: Sequence[Any], batch: int = 1000) -> None:
    """Queue the requests through notigate's own Queue.enqueue (no server running)."""
    from notigate.config import Limits, Settings
    from notigate.job_views import new_job
    from notigate.queue import Queue

    queue = Queue(env.r(), Settings(redis_url=env.redis_url, limits=Limits(private_rate=FAST)))
    await queue.load()
    for start in range(0, len(requests), batch):
        await queue.enqueue([new_job(r) for r in requests[start : start + batch]])


def _requests(n: int, media: Any = None) -> list[Any]:
    from notigate_client import pb

    return [
        pb.SendRequest(chat_id=str(CHAT_BASE + i % CHATS), text=bench_text(i), media=media)
        for i in range(n)
    ]


async def _sim_get(sim: Simulator, path: str, **query: str) -> Any:
    assert sim.session is not None
    async with sim.session.get(f"{sim.url}{path}", params=query) as r:
        r.raise_for_status()
        return await r.json()


async def _drain(env: Env, sim: Simulator, n: int, before: int = 0) -> dict[str, float]:
    """Start a gateway on the queue as filled and time it draining ``n`` sends into
    ``sim``, which had accepted ``before`` sends already (not counted)."""
    gw = Notigate(env, sim, **DELIVERY_SETTINGS)
    async with running(gw):
        await gw.start()
        sim_cpu = sim.cpu()
        samples = await sample_delivery(
            env, sim, [gw.proc.pid], before + n, timeout=60 + n / 200, procs=[gw.proc]
        )
        sim_cpu = sim.cpu() - sim_cpu
    samples = [Sample(s.t, s.accepted - before, s.cpu, s.redis_cpu) for s in samples]
    messages = [m for m in await sim.messages() if m["chat_id"] != PRIME_CHAT]
    figures = delivery_figures(samples, messages)
    # The simulator shares the two cores: its part of a delivery is part of the rate.
    figures["cpu_s_per_1000_sim"] = sim_cpu * 1000 / n
    figures["telegram_uploads"] = float(
        (await _sim_get(sim, "/_sim/uploads", token=TOKEN))["count"]
    )
    return figures


async def _upload_through(env: Env, sim: Simulator, data: bytes) -> str:
    """Upload ``data`` through a gateway on ``sim``; its upload_id."""
    gw = Notigate(env, sim)
    async with running(gw):
        await gw.start()
        channel, stub = await grpc_stub(gw.target)
        try:
            return str((await _upload(stub, data, "photo.jpg", "image/jpeg")).upload_id)
        finally:
            await channel.close()


async def _file_id(env: Env, sim: Simulator) -> str:
    """A photo's file_id that ``sim`` issued: one upload sent to PRIME_CHAT."""
    from notigate_client import pb

    await env.flush()
    gw = Notigate(env, sim, **DELIVERY_SETTINGS)
    async with running(gw):
        await gw.start()
        channel, stub = await grpc_stub(gw.target)
        try:
            reply = await _upload(stub, _photo(PHOTO_BYTES), "photo.jpg", "image/jpeg")
            media = pb.Media(kind=pb.MEDIA_KIND_PHOTO, upload_id=reply.upload_id)
            await stub.Send(pb.SendRequest(chat_id=PRIME_CHAT, media=media), timeout=10)
        finally:
            await channel.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for m in await _sim_get(sim, "/_sim/messages", chat_id=PRIME_CHAT):
                if m.get("file_id"):
                    return str(m["file_id"])
            await asyncio.sleep(0.05)
    raise BenchError("the simulator issued no file_id for the first photo")


async def _text_drain(env: Env, cfg: Config) -> dict[str, float]:
    sim = await Simulator(env, limits=False).start()
    async with running(sim):
        await env.flush()
        await _fill(env, _requests(cfg.media_delivery_jobs))
        return await _drain(env, sim, cfg.media_delivery_jobs)


async def _file_id_drain(env: Env, cfg: Config) -> dict[str, float]:
    from notigate_client import pb

    n = cfg.media_delivery_jobs
    sim = await Simulator(env, limits=False).start()
    async with running(sim):
        file_id = await _file_id(env, sim)
        await env.flush()
        await _fill(env, _requests(n, pb.Media(kind=pb.MEDIA_KIND_PHOTO, file_id=file_id)))
        return await _drain(env, sim, n, before=1)


async def _upload_id_drain(env: Env, cfg: Config) -> dict[str, float]:
    from notigate_client import pb

    n = cfg.media_delivery_jobs
    sim = await Simulator(env, limits=False).start()
    async with running(sim):
        await env.flush()
        upload_id = await _upload_through(env, sim, _photo(PHOTO_BYTES))
        await _fill(env, _requests(n, pb.Media(kind=pb.MEDIA_KIND_PHOTO, upload_id=upload_id)))
        return await _drain(env, sim, n)


def _mean(drains: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(d[k] for d in drains) for k in drains[0]}


async def _delivery(env: Env, cfg: Config) -> dict[str, dict[str, float]]:
    # Text and file_id drains in the order A B B A (A B in smoke): the machine's drift
    # over the run falls on both alike. Each figure is the mean of its drains.
    text = [await _text_drain(env, cfg)]
    file_id = [await _file_id_drain(env, cfg)]
    if not cfg.smoke:
        file_id.append(await _file_id_drain(env, cfg))
        text.append(await _text_drain(env, cfg))
    upload_id = await _upload_id_drain(env, cfg)
    await env.flush()
    return {
        "delivery: text": _mean(text),
        "delivery: photo by file_id": _mean(file_id),
        "delivery: photo by upload_id": upload_id,
    }


def _ratio(a: float, b: float) -> float:
    """a / b; NaN when b is 0 (a smoke run's CPU readings below the 10 ms tick)."""
    return a / b if b else math.nan


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    systems = {
        **await _upload_throughput(env, cfg),
        **await _memory(env, cfg),
        **await _delivery(env, cfg),
    }
    upload = systems["upload: notigate UploadFile (grpc.aio client)"]["mb_per_s"]
    chats = cfg.media_memory_chats
    text_bytes = systems[f"memory: {chats:,} text jobs"]["delta_bytes"]
    media_bytes = systems[f"memory: 1 file, {chats:,} jobs"]["delta_bytes"]
    text = systems["delivery: text"]
    file_id = systems["delivery: photo by file_id"]
    upload_id = systems["delivery: photo by upload_id"]
    return {
        "systems": systems,
        "ratios": {
            "upload_vs_rpush_pipeline": _ratio(
                upload, systems["upload: redis-py RPUSH, one pipeline"]["mb_per_s"]
            ),
            "upload_vs_rpush_calls": _ratio(
                upload, systems["upload: redis-py RPUSH, one call per chunk"]["mb_per_s"]
            ),
            "media_extra_vs_file_size": (media_bytes - text_bytes) / cfg.media_memory_bytes,
            "file_id_vs_text": _ratio(file_id["jobs_per_s"], text["jobs_per_s"]),
            "upload_id_vs_text": _ratio(upload_id["jobs_per_s"], text["jobs_per_s"]),
            "file_id_cpu_vs_text": _ratio(
                file_id["cpu_s_per_1000_total"], text["cpu_s_per_1000_total"]
            ),
            "file_id_sim_cpu_vs_text": _ratio(
                file_id["cpu_s_per_1000_sim"], text["cpu_s_per_1000_sim"]
            ),
        },
    }
