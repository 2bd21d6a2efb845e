"""BullMQ's Python port (PyPI ``bullmq``) as a peer: producer and worker.

    python bench/peers/bullmq_py.py '{"mode": "add", "host": ..., "port": ..., ...}'

Modes: ``add`` (Queue.add with priority, closed loop), ``addBulk`` (batches), ``worker``
(each job one sendMessage POST to the simulator over aiohttp; no rate limiter: bullmq
3.4.4's limiter stalls after ``max`` jobs). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from bullmq import Queue, Worker

from bench.loadgen.pydrive import drive_peer, emit


def _data(i: int, chats: int) -> dict[str, str]:
    return {
        "chat_id": str(1_000_000 + i % chats),
        "text": f"py{os.getpid()} benchmark message #{i}: your order has shipped",
    }


async def produce(o: dict[str, Any]) -> dict[str, Any]:
    queue = Queue(o.get("queue", "bench"), {"connection": f"redis://{o['host']}:{o['port']}"})
    chats = o.get("chats", 1000)
    n = o.get("batch", 500)
    if o["mode"] == "add":

        async def op(i: int) -> None:
            await queue.add("send", _data(i, chats), {"priority": o.get("priority", 1)})

        per_op = 1
    else:

        async def op(i: int) -> None:
            await queue.addBulk(
                [{"name": "send", "data": _data(i * n + k, chats)} for k in range(n)]
            )

        per_op = n
    result = await drive_peer(op, o, per_op=per_op)
    await queue.close()
    return result


async def work(o: dict[str, Any]) -> dict[str, Any]:
    url = f"{o['api']}/bot{o['token']}/sendMessage"
    # Counted by the processor itself: 3.4.4's "completed" events have been seen to fall
    # short of the jobs it processed, leaving the worker waiting for ever.
    completed = failed = 0
    connector = aiohttp.TCPConnector(limit=o.get("concurrency", 64))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def process(job: Any, token: str) -> Any:
            nonlocal completed, failed
            try:
                async with session.post(
                    url, json={"chat_id": job.data["chat_id"], "text": job.data["text"]}
                ) as r:
                    body = await r.json()
                if not body.get("ok"):
                    raise RuntimeError(body.get("description", f"HTTP {r.status}"))
            except Exception:
                failed += 1
                raise
            completed += 1
            return body["result"]["message_id"]

        worker = Worker(
            o.get("queue", "bench"),
            process,
            {
                "connection": f"redis://{o['host']}:{o['port']}",
                "concurrency": o.get("concurrency", 64),
                "removeOnComplete": {"count": 100},
                "removeOnFail": {"count": 1000},
            },
        )
        deadline = time.monotonic() + o.get("timeout", 120)
        while completed + failed < o["expect"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # 3.4.4's close() has been seen to hang after the last job; the figures are taken.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.close(), 10)
    return {"completed": completed, "failed": failed}


def main() -> None:
    o = json.loads(sys.argv[1])
    if o["mode"] != "worker":
        emit(asyncio.run(produce(o)))
        return
    # Not asyncio.run: its teardown waits for the tasks the worker leaves behind, which
    # has kept the process alive after its last job. Report, then exit at once.
    emit(asyncio.new_event_loop().run_until_complete(work(o)))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
