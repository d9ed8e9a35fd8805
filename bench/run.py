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
from bench.peers import PEERS
from bench.report import markdown
from bench.scenarios import (
    auth,
    backlog,
    costs,
    end_to_end,
    enqueue,
    fanout_join,
    idle,
    latency,
    observability,
    peers,
)
from bench.server import STORES

Runner = Callable[[Context, str], Awaitable[Json]]
SCENARIOS: dict[str, Runner] = {
    "limits": raw_limits.run,
    "enqueue": enqueue.run,
    "e2e": end_to_end.run,
    "latency": latency.run,
    "backlog": backlog.run,
    "idle": idle.run,
    "observability": observability.run,
    "costs": costs.run,
    "auth": auth.run,
    "fanout": fanout_join.run,
}
# "peers" runs once, not per store: the end-to-end workload on other task queues (bench/peers/README.md)
SCENARIO_NAMES = (
    "limits",
    "enqueue",
    "e2e",
    "peers",
    "latency",
    "backlog",
    "idle",
    "observability",
    "costs",
    "auth",
    "fanout",
)
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
        type=_csv(SCENARIO_NAMES),
        default=list(SCENARIO_NAMES),
        help=f"comma-separated: {','.join(SCENARIO_NAMES)}",
    )
    p.add_argument(
        "--peers",
        type=_csv(PEERS),
        default=list(PEERS),
        help=f"which peer task queues the peers scenario runs, comma-separated: {','.join(PEERS)}",
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


def compare_peers(stores: Json, peer_results: Json) -> Json:
    """Our end-to-end rate at each claim amount divided by each peer's rate (2.0: we are twice as fast; 3 digits)."""
    out: Json = {}
    for name, peer in peer_results.items():
        if not peer.get("tasks_per_s"):
            continue
        for kind, store in stores.items():
            runs = store.get("e2e", {}).get("runs", [])
            if runs:
                out.setdefault(name, {})[kind] = {
                    f"claim_amount_{r['claim_amount']}": float(f"{r['tasks_per_s'] / peer['tasks_per_s']:.3g}")
                    for r in runs
                }
    return out


def compare(stores: Json, peer_results: Json | None = None) -> Json:
    """Our end-to-end rates as a percentage of each raw limit of the same store, and as a ratio to each peer."""
    out: Json = {}
    if peer_results:
        out["peers"] = compare_peers(stores, peer_results)
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


async def _attempt(results: Json, into: Json, key: str, what: str, workdir: Path, run: Awaitable[Json]) -> None:
    """`into[key]` = what `run` measured; a failure is recorded there and in the failures, and the run goes on."""
    try:
        into[key] = await run
    except Exception as e:
        message = f"{what}: {type(e).__name__}: {e}"
        into[key] = {"error": message}
        results["failures"].append(message)
        print(f"!! FAILED {message}", flush=True)
        with (workdir / "failures.log").open("a") as log:
            log.write(traceback.format_exc() + "\n")


async def main(args: argparse.Namespace) -> int:
    params = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    es = None
    if "elasticsearch" in args.stores and any(s in SCENARIOS for s in args.scenarios):
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
        "peers": {},
        "failures": [],
    }
    t0 = time.monotonic()
    try:
        for scenario in args.scenarios:
            if scenario == "peers":
                for name in args.peers:
                    print(f"== peer {name}", flush=True)
                    await _attempt(results, results["peers"], name, f"peer {name}", workdir, peers.run_one(ctx, name))
                continue
            for kind in args.stores:
                print(f"== {scenario} on {kind}", flush=True)
                into = results["stores"][kind]
                await _attempt(
                    results, into, scenario, f"{scenario} on {kind}", workdir, SCENARIOS[scenario](ctx, kind)
                )
    finally:
        if es is not None:
            await asyncio.to_thread(stop_elasticsearch, es)
    results["comparison"] = compare(results["stores"], results["peers"])
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
