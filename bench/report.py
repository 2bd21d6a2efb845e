"""Tables, targets, docs/benchmarks.md and the PNG plots from the bench's results."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.infra import ROOT
from bench.measure import median

# A scenario run's result: {"systems": {system: {metric: v}}, "ratios": {...}, ...}
Runs = dict[str, list[dict[str, Any]]]


def aggregate(runs: Runs) -> dict[str, dict[str, Any]]:
    """Median of every figure and ratio over the runs (ratios are per run, same run)."""
    out: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        if not results:
            continue
        systems: dict[str, dict[str, float]] = {}
        for system in results[0]["systems"]:
            metrics = results[0]["systems"][system]
            systems[system] = {
                m: median([r["systems"][system][m] for r in results if system in r["systems"]])
                for m in metrics
            }
        ratios = {
            k: median([r["ratios"][k] for r in results if k in r.get("ratios", {})])
            for k in results[0].get("ratios", {})
        }
        out[name] = {
            "systems": systems,
            "ratios": ratios,
            "runs": len(results),
            "skipped": results[0].get("skipped"),
            "series": results[0].get("series", {}),
            "samples": {
                k: [x for r in results for x in r.get("samples", {}).get(k, [])]
                for k in results[0].get("samples", {})
            },
        }
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def tables(agg: dict[str, dict[str, Any]], titles: dict[str, str]) -> str:
    parts = []
    for name, res in agg.items():
        systems = res["systems"]
        metrics: list[str] = []
        for m in systems.values():
            metrics += [k for k in m if k not in metrics]
        if res.get("skipped"):
            parts.append(f"### {titles.get(name, name)}\n\nnot run: {res['skipped']}\n")
            continue
        parts.append(f"### {titles.get(name, name)} (median of {res['runs']} run(s))\n")
        parts.append("| system | " + " | ".join(metrics) + " |")
        parts.append("|---|" + "---:|" * len(metrics))
        for system, m in systems.items():
            parts.append(
                f"| {system} | " + " | ".join(_fmt(m.get(k, math.nan)) for k in metrics) + " |"
            )
        if res["ratios"]:
            parts.append("")
            parts.append(
                "ratios (per run, then median): "
                + ", ".join(f"{k} = {_fmt(v)}" for k, v in res["ratios"].items())
            )
        parts.append("")
    return "\n".join(parts)


Target = tuple[str, str, Callable[[dict[str, dict[str, Any]]], tuple[float, bool]]]


def _g(agg: dict[str, Any], scen: str, kind: str, *path: str) -> float:
    node: Any = agg[scen][kind]
    for p in path:
        node = node[p]
    return float(node)


def _lat(agg: dict[str, Any], prefix: str, metric: str) -> float:
    systems = agg["latency"]["systems"]
    return float(next(v[metric] for k, v in systems.items() if k.startswith(prefix)))


TARGETS: list[Target] = [
    ("enqueue", "Send >= 0.8x no-op gRPC floor",
     lambda a: (v := _g(a, "enqueue", "ratios", "send_vs_floor"), v >= 0.8)),
    ("enqueue", "Send >= 1.2x Python BullMQ Queue.add",
     lambda a: (v := _g(a, "enqueue", "ratios", "send_vs_bullmq_py"), v >= 1.2)),
    ("enqueue", "Send ahead of Node BullMQ Queue.add (> 1x)",
     lambda a: (v := _g(a, "enqueue", "ratios", "send_vs_bullmq_node"), v > 1.0)),
    ("batch", "SendBatch >= 3x Python BullMQ addBulk",
     lambda a: (v := _g(a, "batch", "ratios", "batch_vs_bullmq_py"), v >= 3.0)),
    ("delivery", "delivery >= 1.5x Python BullMQ worker",
     lambda a: (v := _g(a, "delivery", "ratios", "delivery_vs_bullmq_py"), v >= 1.5)),
    ("delivery", "CPU s/1000 (worker+Redis) below Node BullMQ's (< 1x)",
     lambda a: (v := _g(a, "delivery", "ratios", "cpu_vs_bullmq_node"), v < 1.0)),
    ("paid", "paid broadcast >= 99% of 1000/s",
     lambda a: (v := _g(a, "paid", "systems", "notigate paid broadcast", "pct_of_1000"), v >= 99)),
    ("rate", "no 1 s window above 30 (max over 1 and 3 replicas)",
     lambda a: (v := max(m["max_per_1s"] for m in a["rate"]["systems"].values()), v <= 30)),
    ("rate", "mean >= 98% of 30/s (min over 1 and 3 replicas, %)",
     lambda a: (v := min(m["mean_pct_of_limit"] for m in a["rate"]["systems"].values()), v >= 98)),
    ("rate", "zero 429s",
     lambda a: (v := sum(m["http_429"] for m in a["rate"]["systems"].values()), v == 0)),
    ("latency", "priority-10 behind backlog p99 <= 1/30 s + 20 ms (53 ms)",
     lambda a: (v := _lat(a, "priority", "p99_ms"), v <= 1000 / 30 + 20)),
    ("latency", "chat B behind chat A: p99 <= 100 ms",
     lambda a: (v := _lat(a, "chat B", "p99_ms"), v <= 100)),
    ("latency", "idle p50 <= 5 ms",
     lambda a: (v := _lat(a, "idle", "p50_ms"), v <= 5)),
    ("latency", "idle p99 <= 20 ms",
     lambda a: (v := _lat(a, "idle", "p99_ms"), v <= 20)),
    ("growth", "memory/job <= 0.6x BullMQ's (plain jobs)",
     lambda a: (v := _g(a, "growth", "ratios", "memory_vs_bullmq"), v <= 0.6)),
    ("growth", "Send p99 at the deepest level <= 1.3x at the shallowest",
     lambda a: (v := _g(a, "growth", "ratios", "send_p99_growth"), v <= 1.3)),
    ("media", "one file to 1,000 chats: Redis bytes beyond text jobs <= 1.1x the file",
     lambda a: (v := _g(a, "media", "ratios", "media_extra_vs_file_size"), v <= 1.1)),
    ("media", "photo by file_id delivery >= 1.0x text, limits off",
     lambda a: (v := _g(a, "media", "ratios", "file_id_vs_text"), v >= 1.0)),
    ("events", "delivery with the event stream on >= 0.9x off, limits off",
     lambda a: (v := _g(a, "events", "ratios", "events_on_vs_off"), v >= 0.9)),
    ("bots", "several bots: no bot's 1 s window above 30",
     lambda a: (v := max(m["max_per_1s"] for m in a["bots"]["systems"].values()), v <= 30)),
    ("bots", "several bots: worst bot's mean >= 98% of 30/s (%)",
     lambda a: (v := min(m["worst_bot_pct_of_30"] for m in a["bots"]["systems"].values()),
                v >= 98)),
    ("bots", "several bots: zero 429s",
     lambda a: (v := sum(m["http_429"] for m in a["bots"]["systems"].values()), v == 0)),
    ("bots", "several bots: gateway CPU s/1000, many bots vs one bot <= 1.2x",
     lambda a: (v := _g(a, "bots", "ratios", "cpu_per_1000_many_vs_one"), v <= 1.2)),
    ("idle_bots", "idle bots: gateway CPU s/1000 with 1,000 configured vs 10 <= 1.1x",
     lambda a: (v := _g(a, "idle_bots", "ratios", "gateway_cpu_many_vs_few"), v <= 1.1)),
    ("idle_bots", "idle bots: Valkey CPU s/1000 with 1,000 configured vs 10 <= 1.1x",
     lambda a: (v := _g(a, "idle_bots", "ratios", "valkey_cpu_many_vs_few"), v <= 1.1)),
    ("cluster", "Send on a 3-primary cluster >= 0.9x standalone",
     lambda a: (v := _g(a, "cluster", "ratios", "send_cluster_vs_standalone"), v >= 0.9)),
    ("cluster", "SendBatch on a 3-primary cluster >= 0.9x standalone",
     lambda a: (v := _g(a, "cluster", "ratios", "batch_cluster_vs_standalone"), v >= 0.9)),
]  # fmt: skip


def targets(agg: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for scen, desc, check in TARGETS:
        if scen not in agg:
            continue
        try:
            value, ok = check(agg)
            rows.append((desc, _fmt(value), "pass" if ok else "**MISS**"))
        except (KeyError, StopIteration, ZeroDivisionError):
            rows.append((desc, "—", "n/a"))
    return rows


def targets_table(agg: dict[str, dict[str, Any]]) -> str:
    lines = ["| target | measured | result |", "|---|---:|---|"]
    lines += [f"| {d} | {v} | {r} |" for d, v, r in targets(agg)]
    return "\n".join(lines)


def _cmd(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from notigate.embedded import valkey_binary

    def ver(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "?"

    def node_ver(pkg: str) -> str:
        pj = ROOT / "bench/node_modules" / pkg / "package.json"
        if not pj.exists():
            return "?"
        import json

        return str(json.loads(pj.read_text())["version"])

    node_bullmq = node_ver("bullmq")
    return "\n".join(
        [
            f"- CPU: {cpu}, {os.cpu_count()} logical cores (shared, noisy machine); "
            f"RAM {mem_gb:.0f} GiB",
            f"- OS: {platform.platform()}",
            f"- Python {platform.python_version()}, Node {_cmd(['node', '--version'])}",
            f"- Valkey: {_cmd([str(valkey_binary()), '--version'])[:60]}"
            " (fresh per bench, TCP 127.0.0.1, appendonly everysec, noeviction)",
            f"- grpcio {ver('grpcio')}, redis-py {ver('redis')} (hiredis {ver('hiredis')}), "
            f"python-telegram-bot {ver('python-telegram-bot')}, aiohttp {ver('aiohttp')}",
            f"- peers: bullmq (Node) {node_bullmq}, bullmq (PyPI) {ver('bullmq')}, "
            f"arq {ver('arq')}, @bull-board/api {node_ver('@bull-board/api')} "
            f"(@bull-board/express {node_ver('@bull-board/express')})",
        ]
    )


def plots(agg: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if "rate" in agg or "paid" in agg:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        for name, bins in agg.get("rate", {}).get("series", {}).items():
            ax.plot(range(len(bins)), bins, marker="o", label=name)
        ax.axhline(30, color="red", linestyle="--", label="limit 30/s")
        ax.set(title="Delivered per 1 s window (limit 30/s)", xlabel="second", ylabel="sends")
        ax.set_ylim(0, 36)
        ax.legend()
        ax = axes[1]
        for name, bins in agg.get("paid", {}).get("series", {}).items():
            ax.plot(range(len(bins)), bins, marker="o", label=name)
        ax.axhline(1000, color="red", linestyle="--", label="1000/s")
        ax.set(title="Paid broadcast: delivered per 1 s", xlabel="second", ylabel="sends")
        ax.set_ylim(0, 1100)
        ax.legend()
        fig.tight_layout()
        path = out / "bench-rate.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if "latency" in agg or "enqueue" in agg:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        for name, lat in agg.get("latency", {}).get("samples", {}).items():
            if lat:
                xs = sorted(lat)
                ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=name)
        ax.axvline(1000 / 30 + 20, color="red", linestyle="--", label="53 ms")
        ax.set_xscale("log")
        ax.set(title="Send -> Bot API request (CDF)", xlabel="ms", ylabel="fraction")
        ax.legend(fontsize=7)
        ax = axes[1]
        systems = agg.get("enqueue", {}).get("systems", {})
        names = list(systems)
        ax.barh(names, [systems[n]["p50_ms"] for n in names], label="p50")
        ax.barh(names, [systems[n]["p99_ms"] - systems[n]["p50_ms"] for n in names],
                left=[systems[n]["p50_ms"] for n in names], label="p99", alpha=0.5)  # fmt: skip
        ax.set(title="Enqueue latency, 64 in flight", xlabel="ms")
        ax.tick_params(axis="y", labelsize=7)
        ax.legend()
        fig.tight_layout()
        path = out / "bench-latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def markdown(
    agg: dict[str, dict[str, Any]],
    titles: dict[str, str],
    notes: dict[str, str],
    command: str,
    images: list[Path],
    errors: list[str],
    elapsed_s: float,
) -> str:
    parts = [
        "# Benchmarks",
        "",
        "notigate against its peers on one machine, one Valkey, in one run "
        f"(`{command}`, {elapsed_s / 60:.1f} min). Every figure is the median of the runs; "
        "every comparison is a ratio measured within one run, then the median of those.",
        "",
        "## Rerun",
        "",
        "```sh",
        "make bench         # the full set (several runs each; about 15 minutes)",
        "make bench-smoke   # every scenario once with tiny counts (< 1 minute, CI)",
        ".venv/bin/python bench/run.py --runs 5 --only enqueue,delivery",
        ".venv/bin/python bench/run.py --full-rate       # rate scenario with 5,000 chats",
        ".venv/bin/python bench/run.py --growth-max 300000   # scale the growth scenario down",
        ".venv/bin/python bench/run.py --only bots,idle_bots,cluster   # several bots; cluster",
        "```",
        "",
        "## Machine",
        "",
        machine(),
        "",
        "## Targets",
        "",
        targets_table(agg),
        "",
        "## Results",
        "",
        tables(agg, titles),
    ]
    for img in images:
        parts += [f"![{img.stem}]({img.name})", ""]
    parts += ["## How each scenario is measured", ""]
    for name in agg:
        if notes.get(name):
            parts += [f"**{titles.get(name, name)}.** " + " ".join(notes[name].split()), ""]
    if errors:
        parts += ["## Errors", ""] + [f"- {e}" for e in errors] + [""]
    # The hand-written analysis of the last full run (causes, proposed fixes) is kept in
    # bench/findings.md and carried into every regenerated page.
    findings = ROOT / "bench" / "findings.md"
    if findings.exists():
        parts += [findings.read_text().strip(), ""]
    return "\n".join(parts)
