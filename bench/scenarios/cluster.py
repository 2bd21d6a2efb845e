"""11. Redis Cluster: Send (64 in flight) and SendBatch (500 a call, 4 in flight) from
the Node gRPC client (as in scenarios 1 and 2), calls spread round-robin over
``cluster_bots`` bots, against one gateway on a local cluster of 3 primaries (no
replicas; NOTIGATE_REDIS_CLUSTER=1, REDIS_URL naming the first node) and, in the same
run, on the bench's standalone Valkey with the same bots. The bots are picked so their
queues' hash tags fall evenly on the 3 shards. Delivery runs meanwhile at 30/s per bot
into a limit-free simulator, as in scenarios 1 and 2. ``redis_cpu_s_per_1000``: CPU
seconds of the Redis server(s) per 1,000 messages enqueued."""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from bench.infra import (
    Config,
    Env,
    Notigate,
    Simulator,
    ValkeyCluster,
    cpu_seconds,
    node,
    running,
)
from bench.load import bench_bots, closed_loop

NAME = "cluster"
TITLE = "Redis Cluster (3 primaries) vs standalone, Send and SendBatch"
SHARDS = 3


def spread_bots(count: int, cluster: ValkeyCluster) -> list[tuple[str, str, int]]:
    """``count`` bots whose queues' hash tags spread evenly over the cluster's shards."""
    from notigate.queue.keys import QueueKeys

    per_shard = -(-count // len(cluster.ports))
    taken: dict[int, int] = {}
    picked = []
    for bot in bench_bots(50 * count):
        slot = key_slot(QueueKeys.for_queue("default", bot[0]).seq.encode())
        shard = cluster.shard_of(slot)
        if taken.get(shard, 0) < per_shard:
            taken[shard] = taken.get(shard, 0) + 1
            picked.append(bot)
        if len(picked) == count:
            return picked
    raise RuntimeError(f"could not spread {count} bots over {len(cluster.ports)} shards")


async def _loops(
    env: Env,
    cfg: Config,
    bots: list[tuple[str, str, int]],
    redis_pids: list[int],
    **gateway: Any,
) -> dict[str, dict[str, float]]:
    d = max(cfg.duration, 1.0)
    names = [b for b, _, _ in bots]
    sim = await Simulator(env, limits=False, tokens=[t for _, t, _ in bots]).start()
    gw = Notigate(env, sim, bots=[(b, t) for b, t, _ in bots], NOTIGATE_GLOBAL_RATE=30, **gateway)
    out: dict[str, dict[str, float]] = {}
    async with running(sim, gw):
        await gw.start(timeout=60)
        for method, opts in (
            ("send", {"concurrency": 64}),
            ("batch", {"concurrency": 4, "batch": 500}),
        ):
            cpu0 = cpu_seconds(redis_pids)
            r = await closed_loop(
                [
                    node(
                        "loadgen/grpc_load.mjs", method=method, target=gw.target, duration=d,
                        chats=1000, bots=names, **opts,
                    )
                ],
                d + 90,
            )  # fmt: skip
            # The loop's count covers its measuring window; the CPU spans the whole
            # process (warm-up included), so this errs high, alike for both systems.
            ops = r["ops_per_s"] * d
            r["redis_cpu_s_per_1000"] = (cpu_seconds(redis_pids) - cpu0) * 1000 / ops
            out[method] = r
    return out


async def run(env: Env, cfg: Config) -> dict[str, Any]:
    cluster = await ValkeyCluster(env, SHARDS).start()
    async with running(cluster):
        bots = spread_bots(cfg.cluster_bots, cluster)
        await env.flush()
        assert env.valkey is not None and env.valkey.pid is not None
        alone = await _loops(env, cfg, bots, [env.valkey.pid])
        await env.flush()
        shards = await _loops(
            env,
            cfg,
            bots,
            [p.pid for p in cluster.procs],
            redis_url=cluster.url,
            NOTIGATE_REDIS_CLUSTER=1,
        )
        await cluster.flush()
    n = len(bots)
    systems = {
        f"Send, standalone, {n} bots": alone["send"],
        f"Send, cluster of {SHARDS}, {n} bots": shards["send"],
        f"SendBatch, standalone, {n} bots": alone["batch"],
        f"SendBatch, cluster of {SHARDS}, {n} bots": shards["batch"],
    }
    return {
        "systems": systems,
        "ratios": {
            "send_cluster_vs_standalone": shards["send"]["ops_per_s"] / alone["send"]["ops_per_s"],
            "batch_cluster_vs_standalone": shards["batch"]["ops_per_s"]
            / alone["batch"]["ops_per_s"],
        },
    }
