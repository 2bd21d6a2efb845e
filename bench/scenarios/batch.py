"""2. Batch enqueue: notigate SendBatch of 500 vs BullMQ addBulk of 500 (4 batches in
flight; Node gRPC client for notigate, one process per peer)."""

from __future__ import annotations

from typing import Any

from bench.infra import Config, Env, node, py
from bench.load import closed_loop, grpc_loops

NAME = "batch"
TITLE = "Batch enqueue, 500 messages/call, 4 calls in flight"
IN_FLIGHT = 4


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    d = max(cfg.duration, 1.0)
    timeout = d + 90
    common = {"duration": d, "concurrency": IN_FLIGHT, "chats": 1000, "batch": 500}
    r = {"host": "127.0.0.1", "port": env.port}
    systems: dict[str, dict[str, float]] = {}

    await env.flush()
    loops = await grpc_loops(env, ["batch"], timeout, **common)
    systems["notigate SendBatch"] = loops["batch"]
    await env.flush()
    systems["BullMQ Node addBulk"] = await closed_loop(
        [node("peers/bullmq_node/enqueue.mjs", method="addBulk", **r, **common)], timeout
    )
    await env.flush()
    systems["BullMQ Python addBulk"] = await closed_loop(
        [py("peers/bullmq_py.py", mode="addBulk", **r, **common)], timeout
    )
    await env.flush()
    nb = systems["notigate SendBatch"]["ops_per_s"]
    return {
        "systems": systems,
        "ratios": {
            "batch_vs_bullmq_py": nb / systems["BullMQ Python addBulk"]["ops_per_s"],
            "batch_vs_bullmq_node": nb / systems["BullMQ Node addBulk"]["ops_per_s"],
        },
    }
