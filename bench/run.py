"""`python -m bench.run`: every scenario on every store, through real `tasques serve` processes.

Results: `bench/results/<UTC stamp>.json` and `.png`, copied to `latest.json` and `latest.png`; a Markdown
summary on stdout. Exits 1 if any scenario failed, which includes any scenario whose read-back checks found
tasks lost, duplicated or unfinished. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import raw_limits
from bench.context import Context
from bench.env import REPO, Json, machine_info, provision_elasticsearch, stop_elasticsearch
from bench.params import FULL, QUICK
from bench.report import markdown
from bench.scenarios import backlog, end_to_end, enqueue, idle, latency
from bench.server import STORES

Runner = Callable[[Context, str], Awaitable[Json]]
SCENARIOS: dict[str, Runner] = {
    "limits": raw_limits.run,
    "enqueue": enqueue.run,
    "e2e": end_to_end.run,
    "latency": latency.run,
    "backlog": backlog.run,
    "idle": idle.run,
}
RESULTS = REPO / "bench" / "results"


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return [n for n in choices if n in names]  # canonical order

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="every scenario about 10x smaller, for development (also BENCH_QUICK=1)",
    )
    p.add_argument("--stores", type=_csv(STORES), default=list(STORES), help="comma-separated: sqlite,elasticsearch")
    p.add_argument(
        "--scenarios",
        type=_csv(tuple(SCENARIOS)),
        default=list(SCENARIOS),
        help=f"comma-separated: {','.join(SCENARIOS)}",
    )
    p.add_argument(
        "--es-url",
        default=os.environ.get("BENCH_ES_URL"),
        help="use this Elasticsearch (also BENCH_ES_URL); default: start one with scripts/elasticsearch",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON and PNG go")
    p.add_argument("--py-spy", action="store_true", help="profile the server with py-spy during the end-to-end runs")
    p.add_argument("--keep-workdir", action="store_true", help="keep the scratch directory (logs, databases)")
    return p.parse_args(argv)


def compare(stores: Json) -> Json:
    """Our end-to-end rates as a percentage of each raw limit of the same store."""
    out: Json = {}
    limits = {
        "sqlite": {"raw_sqlite": stores.get("sqlite", {}).get("limits", {}).get("raw_sqlite")},
        "elasticsearch": {
            name: stores.get("elasticsearch", {}).get("limits", {}).get(name) for name in ("raw_es_bulk", "raw_es_loop")
        },
    }
    for kind, store_limits in limits.items():
        runs = stores.get(kind, {}).get("e2e", {}).get("runs", [])
        for name, limit in store_limits.items():
            if not runs or not limit or "tasks_per_s" not in limit:
                continue
            out.setdefault(kind, {})[name] = {
                f"claim_amount_{r['claim_amount']}_pct": round(100 * r["tasks_per_s"] / limit["tasks_per_s"], 2)
                for r in runs
            }
    return out


async def main(args: argparse.Namespace) -> int:
    params = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    es = None
    if "elasticsearch" in args.stores:
        print("== provisioning Elasticsearch", flush=True)
        es = await asyncio.to_thread(provision_elasticsearch, args.es_url)
        print(f"   Elasticsearch {es.version} at {es.url}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tasques-bench-"))
    ctx = Context(params=params, workdir=workdir, es=es, stamp=stamp)
    if args.py_spy:
        ctx.profile_dir = args.results_dir
    results: Json = {
        "schema": 1,
        "mode": params.mode,
        "command": shlex.join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "started_at": started.isoformat(),
        "machine": machine_info(es.version if es is not None else None),
        "params": params.to_json(),
        "stores": {kind: {} for kind in args.stores},
        "failures": [],
    }
    t0 = time.monotonic()
    try:
        for scenario in args.scenarios:
            for kind in args.stores:
                print(f"== {scenario} on {kind}", flush=True)
                try:
                    results["stores"][kind][scenario] = await SCENARIOS[scenario](ctx, kind)
                except Exception as e:
                    message = f"{scenario} on {kind}: {type(e).__name__}: {e}"
                    results["stores"][kind][scenario] = {"error": message}
                    results["failures"].append(message)
                    print(f"!! FAILED {message}", flush=True)
                    (workdir / "failures.log").open("a").write(traceback.format_exc() + "\n")
    finally:
        if es is not None:
            await asyncio.to_thread(stop_elasticsearch, es)
    results["comparison"] = compare(results["stores"])
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["duration_s"] = round(time.monotonic() - t0, 1)

    out = args.results_dir / f"{stamp}.json"
    text = json.dumps(results, indent=2) + "\n"
    out.write_text(text)
    (args.results_dir / "latest.json").write_text(text)
    try:
        from bench.chart import render

        png = args.results_dir / f"{stamp}.png"
        render(results, png)
        shutil.copyfile(png, args.results_dir / "latest.png")
        print(f"== chart: {png}")
    except ImportError as e:
        print(f"== no chart ({e}); install the bench extra: pip install -e '.[bench]'")
    except Exception:
        print("== the chart failed (the JSON is written):")
        traceback.print_exc()
    print(f"== results: {out} ({results['duration_s']:.0f}s)\n")
    print(markdown(results))
    if results["failures"]:
        print(f"\n{len(results['failures'])} scenario(s) FAILED; logs kept in {workdir}")
        for failure in results["failures"]:
            print(f"  - {failure}")
        return 1
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"\nscratch directory kept: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
