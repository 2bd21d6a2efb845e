"""1. Enqueue, one message per call, 64 in flight.

notigate Send and the no-op floor (grpc.health.v1 Health/Check, same server, same client)
are driven by one Node process (@grpc/grpc-js, 64 calls in flight): cheaper per call than
a Python gRPC client, so the client is not what limits the server. BullMQ Node Queue.add
runs 64 in flight in one Node process; BullMQ Python Queue.add and arq enqueue_job run in
``py_procs`` processes sharing the 64. Everything shares the machine's 2 cores.
"""

from __future__ import annotations

from typing import Any

from bench.infra import Config, Env, node, py
from bench.load import closed_loop, grpc_loops, start_at

NAME = "enqueue"
TITLE = "Enqueue, 1 message/call, 64 in flight"


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    d = cfg.duration
    timeout = d + 60
    systems: dict[str, dict[str, float]] = {}
    common = {"duration": d, "concurrency": 64, "chats": 1000}
    r = {"host": "127.0.0.1", "port": env.port}

    await env.flush()
    loops = await grpc_loops(env, ["health", "send"], timeout, **common)
    systems["gRPC no-op floor (Health/Check)"] = loops["health"]
    systems["notigate Send"] = loops["send"]

    await env.flush()
    systems["BullMQ Node Queue.add"] = await closed_loop(
        [node("peers/bullmq_node/enqueue.mjs", method="add", priority=1, **r, **common)], timeout
    )
    n = cfg.py_procs
    per = {**common, "concurrency": 64 // n}
    await env.flush()
    at = start_at()
    systems["BullMQ Python Queue.add"] = await closed_loop(
        [
            py(
                "peers/bullmq_py.py",
                mode="add",
                priority=1,
                startAt=at,
                seqBase=i * 10**9,
                **r,
                **per,
            )
            for i in range(n)
        ],
        timeout,
    )
    await env.flush()
    at = start_at()
    systems["arq enqueue_job"] = await closed_loop(
        [py("peers/arq_peer.py", startAt=at, **r, **per) for _ in range(n)], timeout
    )
    await env.flush()
    send = systems["notigate Send"]["ops_per_s"]
    return {
        "systems": systems,
        "ratios": {
            "send_vs_floor": send / systems["gRPC no-op floor (Health/Check)"]["ops_per_s"],
            "send_vs_bullmq_py": send / systems["BullMQ Python Queue.add"]["ops_per_s"],
            "send_vs_bullmq_node": send / systems["BullMQ Node Queue.add"]["ops_per_s"],
            "send_vs_arq": send / systems["arq enqueue_job"]["ops_per_s"],
        },
    }
