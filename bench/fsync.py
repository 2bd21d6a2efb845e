"""What `NOTIGATE_EMBEDDED_FSYNC=always` costs against the default `everysec`.

    python bench/fsync.py [--runs N] [--duration S] [--smoke]

Each run starts `notigate serve` with its embedded Valkey on a fresh data dir (under
the system's temp dir: say which file system that is when quoting the figures), once per
mode, in alternating order, and drives Send from one Node process (@grpc/grpc-js):
64 calls in flight (throughput; Sends group-commit, so one fsync covers many), then 1 in
flight (each Send waits for its own write). Prints each run and the medians over runs,
with the always / everysec ratios, as JSON and as a Markdown table. Not part of
`bench/run.py`: it measures one setting, not notigate against its peers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.infra import (
    HOST,
    NOTIGATE,
    TOKEN,
    Config,
    Env,
    Notigate,
    Proc,
    Simulator,
    free_port,
    node,
    running,
)
from bench.load import closed_loop
from bench.measure import median, pct

MODES = ("everysec", "always")


class EmbeddedNotigate(Notigate):
    """``notigate serve`` with its own embedded Valkey (no REDIS_URL) on ``data_dir``."""

    def __init__(self, env: Env, sim: Simulator, data_dir: Path, fsync: str) -> None:
        self.env = env
        self.port = free_port()
        self.target = f"{HOST}:{self.port}"
        e = {k: v for k, v in os.environ.items() if not k.startswith("NOTIGATE_")}
        e.pop("REDIS_URL", None)
        e.update(
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=sim.url,
            NOTIGATE_LISTEN=self.target,
            NOTIGATE_DATA_DIR=str(data_dir),
            NOTIGATE_EMBEDDED_FSYNC=fsync,
            NOTIGATE_GLOBAL_RATE="30",
            NOTIGATE_SHUTDOWN_GRACE_S="2",
        )
        argv = [NOTIGATE, "serve", "--log-level", "warning"]
        self.proc = Proc(f"notigate-{fsync}", argv, e, env.workdir / f"{fsync}-{self.port}.log")


async def measure(
    env: Env, sim: Simulator, fsync: str, run: int, duration: float
) -> dict[str, Any]:
    data_dir = env.workdir / f"data-{fsync}-{run}"
    gw = EmbeddedNotigate(env, sim, data_dir, fsync)
    timeout = duration + 60
    async with running(gw):
        await gw.start()
        loaded = await closed_loop(
            [node("loadgen/grpc_load.mjs", method="send", target=gw.target, duration=duration,
                  concurrency=64, chats=1000)],
            timeout,
        )  # fmt: skip
        single = await closed_loop(
            [node("loadgen/grpc_load.mjs", method="send", target=gw.target, duration=duration,
                  concurrency=1, chats=1000, prefix=f"one{run}")],
            timeout,
        )  # fmt: skip
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "fsync": fsync,
        "run": run,
        "send_per_s_64": loaded["ops_per_s"],
        "p50_ms_64": loaded["p50_ms"],
        "p99_ms_64": loaded["p99_ms"],
        "send_per_s_1": single["ops_per_s"],
        "p50_ms_1": single["p50_ms"],
        "p99_ms_1": single["p99_ms"],
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in rows[0] if k not in ("fsync", "run")]
    medians = {m: {k: median([r[k] for r in rows if r["fsync"] == m]) for k in keys} for m in MODES}
    ratios = {k: medians["always"][k] / medians["everysec"][k] for k in keys}
    # The same ratios run by run (both modes of a run are back to back): less exposed to
    # the load of a shared machine changing between runs than the ratio of the medians.
    by_run = {(r["fsync"], r["run"]): r for r in rows}
    runs = sorted({r["run"] for r in rows})
    paired = {
        k: median([by_run["always", i][k] / by_run["everysec", i][k] for i in runs]) for k in keys
    }
    return {"medians": medians, "ratios": ratios, "paired_ratios": paired}


def table(summary: dict[str, Any], runs: int) -> str:
    m, r = summary["medians"], summary["ratios"]
    lines = [
        "| appendfsync | Send/s, 64 in flight | p50 / p99 ms | Send/s, 1 in flight "
        "| p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        v = m[mode]
        lines.append(
            f"| `{mode}` | {v['send_per_s_64']:,.0f} | {v['p50_ms_64']:.1f} / {v['p99_ms_64']:.1f} "
            f"| {v['send_per_s_1']:,.0f} | {v['p50_ms_1']:.2f} / {v['p99_ms_1']:.2f} |"
        )
    for label, q in (("of the medians", r), ("median of each run's", summary["paired_ratios"])):
        x = "\u00d7"
        lines.append(
            f"| always / everysec ({label}) | {q['send_per_s_64']:.2f}{x} "
            f"| {q['p50_ms_64']:.2f}{x} / {q['p99_ms_64']:.2f}{x} | {q['send_per_s_1']:.2f}{x} "
            f"| {q['p50_ms_1']:.2f}{x} / {q['p99_ms_1']:.2f}{x} |"
        )
    return "\n".join(lines) + f"\n\n(medians of {runs} runs)"


def file_system(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=fstype,source", str(path)], capture_output=True, text=True, check=True
        ).stdout.split("\n")[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"
    return " ".join(out.split())


def fdatasync_ms(directory: Path, n: int = 300) -> tuple[float, float]:
    """p50 and p99 of one small append's fdatasync in ``directory``: the floor of what
    ``always`` adds to a write, and what makes one disk differ from another."""
    path = directory / "fdatasync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 300)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return pct(times, 50), pct(times, 99)


async def main(args: argparse.Namespace) -> int:
    if not shutil.which("node"):
        print("node is required (bench/loadgen)", file=sys.stderr)
        return 2
    runs = 1 if args.smoke else args.runs
    duration = 0.7 if args.smoke else args.duration
    env = Env(Config())
    rows = []
    sim = await Simulator(env, limits=False).start()
    try:
        for run in range(runs):
            # Alternate which mode goes first, so a drift of a shared machine hits both.
            for fsync in MODES if run % 2 == 0 else MODES[::-1]:
                row = await measure(env, sim, fsync, run, duration)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        await sim.stop()
    summary = summarize(rows)
    print(json.dumps(summary, indent=1))
    p50, p99 = fdatasync_ms(env.workdir)
    print(
        f"\ndata dirs on: {file_system(env.workdir)}, fdatasync of a small append p50 "
        f"{p50:.2f} ms / p99 {p99:.2f} ms; {os.cpu_count()} cores\n"
    )
    print(table(summary, runs))
    shutil.rmtree(env.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0, help="each measuring window, s")
    p.add_argument("--smoke", action="store_true", help="one short run per mode")
    sys.exit(asyncio.run(main(p.parse_args())))
