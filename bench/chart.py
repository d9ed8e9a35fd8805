"""The results as one PNG: `python -m bench.chart [results.json [out.png]]` (needs the `bench` extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.env import Json
from bench.report import STORE_NAMES

COLORS = {"sqlite": "#3b7dd8", "elasticsearch": "#f0a030"}
PEER_COLOR = "#6aa84f"


def _get(results: Json, kind: str, *path: str) -> Any:
    node: Any = results.get("stores", {}).get(kind, {})
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _not_run(ax: Axes) -> None:
    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="#999999")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Axes, groups: list[str], series: dict[str, list[float]], *, log: bool = False) -> None:
    kinds = list(series)
    if not groups or not any(v > 0 for values in series.values() for v in values):
        _not_run(ax)
        return
    width = 0.8 / max(len(kinds), 1)
    for n, kind in enumerate(kinds):
        xs = [g + (n - (len(kinds) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, series[kind], width, label=STORE_NAMES.get(kind, kind), color=COLORS.get(kind))
        ax.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in series[kind]], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)


def _value(entry: Any, key: str = "tasks_per_s") -> float:
    return float(entry[key]) if isinstance(entry, dict) and key in entry else 0.0


def render(results: Json, path: Path) -> None:
    kinds = [k for k in ("sqlite", "elasticsearch") if k in results.get("stores", {})]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    fig.suptitle(f"Tasques benchmarks ({results.get('mode')} run, {results.get('started_at', '')[:16]}Z)")

    ax = axes[0][0]
    labels = {"single_1": "POST x1 client", "single_16": "POST x16 clients", "bulk_1000": "bulk (1,000/req)"}
    _bars(
        ax,
        list(labels.values()),
        {k: [_value(_get(results, k, "enqueue", key)) for key in labels] for k in kinds},
        log=True,
    )
    ax.set_title("Enqueue (tasks/s, log scale)")

    ax = axes[0][1]
    amounts = sorted({r["claim_amount"] for k in kinds for r in _get(results, k, "e2e", "runs") or []})
    series = {}
    for k in kinds:
        by_amount = {r["claim_amount"]: r["tasks_per_s"] for r in _get(results, k, "e2e", "runs") or []}
        series[k] = [float(by_amount.get(a, 0.0)) for a in amounts]
    _bars(ax, [f"claim {a}" for a in amounts], series)
    ax.set_title("End to end, no-op tasks, 8 SDK claim loops (tasks/s)")

    ax = axes[0][2]
    names, values, colors = [], [], []
    for kind, limit_names in (("sqlite", ["raw_sqlite"]), ("elasticsearch", ["raw_es_bulk", "raw_es_loop"])):
        if kind not in kinds:
            continue
        runs = _get(results, kind, "e2e", "runs") or []
        if runs:
            names.append(f"{STORE_NAMES[kind]}\nend to end (best)")
            values.append(max(float(r["tasks_per_s"]) for r in runs))
            colors.append(COLORS[kind])
        for name in limit_names:
            limit = _get(results, kind, "limits", name)
            if isinstance(limit, dict) and "tasks_per_s" in limit:
                names.append(name.replace("raw_es_", "raw ES ").replace("raw_sqlite", "raw SQLite"))
                values.append(float(limit["tasks_per_s"]))
                colors.append("#999999")
    for peer in (results.get("peers") or {}).values():
        if isinstance(peer, dict) and "tasks_per_s" in peer:
            names.append(str(peer["label"]).replace(" + ", "\n+ "))
            values.append(float(peer["tasks_per_s"]))
            colors.append(PEER_COLOR)
    if any(v > 0 for v in values):
        bars = ax.bar(range(len(names)), values, color=colors)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_yscale("log")
        ax.margins(y=0.15)
    else:
        _not_run(ax)
    ax.set_title("End to end vs the storage limits and the peers (tasks/s, log scale)")

    ax = axes[1][0]
    pcts = ["p50_ms", "p95_ms", "p99_ms"]
    _bars(
        ax,
        ["p50", "p95", "p99"],
        {k: [_value(_get(results, k, "latency", "create_to_claim"), p) for p in pcts] for k in kinds},
    )
    ax.set_title("Pickup latency, create → claim (ms)")

    ax = axes[1][1]
    plotted = False
    for k in kinds:
        steps = _get(results, k, "backlog", "steps") or []
        if not steps:
            continue
        plotted = True
        xs, ys = [s["backlog"] for s in steps], [s["tasks_per_s"] for s in steps]
        ax.plot(xs, ys, marker="o", label=STORE_NAMES[k], color=COLORS[k])
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:,.0f}", (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if plotted:
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("tasks queued")
        ax.legend(fontsize=8)
    else:
        _not_run(ax)
    ax.set_title("Backlog scaling: claim+done/s")

    ax = axes[1][2]
    ax.axis("off")
    m = results.get("machine", {})
    lines = [
        f"{m.get('cores')} cores: {m.get('cpu_model')}",
        f"{m.get('memory_gib')} GiB memory, Linux {m.get('kernel')}",
        f"Python {m.get('python')}, SQLite {m.get('sqlite')}, Elasticsearch {m.get('elasticsearch') or '-'}",
        f"commit {str(m.get('git_commit'))[:12]}{' (dirty)' if m.get('git_dirty') else ''}",
        f"load average at start: {', '.join(f'{v:.2f}' for v in m.get('loadavg_at_start', []))}",
        "",
        f"$ {results.get('command')}",
        f"took {results.get('duration_s', 0):.0f}s",
    ]
    for kind in kinds:
        for skipped in _get(results, kind, "backlog", "skipped") or []:
            lines.append(f"{STORE_NAMES[kind]} backlog {skipped['backlog']:,}: not run (time budget)")
    failures = results.get("failures") or []
    lines += [f"FAILED: {f[:90]}" for f in failures]
    ax.text(0, 1, "\n".join(lines), va="top", fontsize=9, family="monospace", wrap=True)

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    target = Path(args[1]) if len(args) > 1 else source.with_suffix(".png")
    render(json.loads(source.read_text()), target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
