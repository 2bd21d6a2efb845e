"""Run notigate's benchmarks against its peers and report.

    python bench/run.py [--smoke] [--runs N] [--only NAME[,NAME]] [--full-rate]
                        [--growth-max N] [--no-docs]

Starts its own Valkey on a free 127.0.0.1 port (never the system Redis), the Bot API
simulator, notigate and the peers; prints the table and (unless --smoke / --no-docs)
writes docs/benchmarks.md and docs/bench-*.png. Exits non-zero only when a scenario
errored, never on a missed target. A peer (BullMQ, arq) that fails or stalls gets its
scenario rerun once; failing twice, it is reported, not counted as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.infra import Config, Env, PeerError

SCENARIOS = [
    "enqueue", "batch", "delivery", "rate", "paid", "latency", "growth", "media", "events",
    "bots", "idle_bots", "cluster", "dashboard",
]  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny counts, one run each (< 1 min)")
    p.add_argument("--runs", type=int, help="runs per scenario (default 3; smoke 1)")
    p.add_argument("--only", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    p.add_argument("--full-rate", action="store_true", help="rate scenario with 5,000 chats")
    p.add_argument("--growth-max", type=int, help="deepest growth level (default 1,000,000)")
    p.add_argument("--duration", type=float, help="closed-loop measuring window, s")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/")
    p.add_argument("--docs-dir", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    cfg = Config.smoke_config() if args.smoke else Config()
    if args.runs:
        cfg.runs = args.runs
    if args.duration:
        cfg.duration = args.duration
    if args.full_rate:
        cfg.rate_jobs = 5_000
    if args.growth_max:
        cfg.growth_levels = (
            *tuple(x for x in cfg.growth_levels if x < args.growth_max),
            args.growth_max,
        )
    names = args.only.split(",") if args.only else SCENARIOS
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenarios: {sorted(unknown)}", file=sys.stderr)
        return 2
    if not shutil.which("node"):
        print("node is required (bench/peers/bullmq_node, bench/loadgen)", file=sys.stderr)
        return 2
    mods = {n: importlib.import_module(f"bench.scenarios.{n}") for n in names}
    titles = {n: m.TITLE for n, m in mods.items()}
    notes = {n: m.__doc__ or "" for n, m in mods.items()}
    runs: report.Runs = {n: [] for n in names}
    errors: list[str] = []
    peer_errors: list[str] = []
    t_start = time.monotonic()
    env = Env(cfg)
    await env.start()
    print(f"bench: Valkey on 127.0.0.1:{env.port}, work dir {env.workdir}", flush=True)
    try:
        # Runs interleave the scenarios, so slow drifts of a noisy machine spread over all.
        for run in range(cfg.runs):
            for name, mod in mods.items():
                t0 = time.monotonic()
                print(f"[run {run + 1}/{cfg.runs}] {name} ...", end=" ", flush=True)
                for attempt in (1, 2):
                    try:
                        runs[name].append(await mod.run(env, cfg))
                        print(f"{time.monotonic() - t0:.1f} s", flush=True)
                        break
                    except PeerError as exc:
                        # A peer's flake is not notigate's failure: rerun the scenario once,
                        # then report the peer and go on without this run of the scenario.
                        print("PEER FAILED", flush=True)
                        traceback.print_exc()
                        await env.flush()
                        if attempt == 2:
                            peer_errors.append(f"{name} (run {run + 1}): {exc}")
                    except Exception as exc:
                        print("ERROR", flush=True)
                        traceback.print_exc()
                        errors.append(f"{name} (run {run + 1}): {type(exc).__name__}: {exc}")
                        await env.flush()
                        break
    finally:
        await env.stop()
        shutil.rmtree(env.workdir, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    agg = report.aggregate(runs)
    print()
    print(report.tables(agg, titles))
    print(report.targets_table(agg))
    if peer_errors:
        print("\nPEER FAILURES (twice in a row; not counted as errors):\n" + "\n".join(peer_errors))
    if errors:
        print("\nERRORS:\n" + "\n".join(errors))
    if not (args.smoke or args.no_docs):
        args.docs_dir.mkdir(parents=True, exist_ok=True)
        images = report.plots(agg, args.docs_dir)
        command = (
            "make bench" if len(sys.argv) == 1 else "python bench/run.py " + " ".join(sys.argv[1:])
        )
        md = report.markdown(agg, titles, notes, command, images, errors + peer_errors, elapsed)
        (args.docs_dir / "benchmarks.md").write_text(md)
        print(f"\nwrote {args.docs_dir / 'benchmarks.md'} and {len(images)} plot(s)")
    elif args.smoke:
        # Exercise the plotting code too (into a scratch dir), as CI runs only the smoke.
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report.plots(agg, Path(tmp))
            report.markdown(agg, titles, notes, "smoke", [], errors, elapsed)
    print(f"bench: {elapsed:.0f} s", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
