"""arq as a peer: ``ArqRedis.enqueue_job`` in a closed loop (producer side only).

python bench/peers/arq_peer.py '{"host": ..., "port": ..., "concurrency": 32, ...}'
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arq import create_pool
from arq.connections import RedisSettings

from bench.loadgen.pydrive import drive_peer, emit


async def produce(o: dict[str, Any]) -> dict[str, Any]:
    pool = await create_pool(RedisSettings(host=o["host"], port=o["port"]))
    chats = o.get("chats", 1000)
    pid = os.getpid()

    async def op(i: int) -> None:
        job = await pool.enqueue_job(
            "send_message",
            str(1_000_000 + i % chats),
            f"arq{pid} benchmark message #{i}: your order has shipped",
        )
        if job is None:
            raise RuntimeError("arq refused the job (duplicate id)")

    result = await drive_peer(op, o)
    await pool.aclose()
    return result


if __name__ == "__main__":
    emit(asyncio.run(produce(json.loads(sys.argv[1]))))
