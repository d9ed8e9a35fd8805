"""The capacity model of docs/scaling.md, from the costs scenario's figures: `python -m bench.capacity [results.json]`.

Per task (enqueue by bulk, claim, done, archive), at one claim amount, measured with 1, 2 and 4 servers:

* X(s): server CPU ms, and C(s): node CPU ms, both growing with the claim conflicts per task k(s);
* k(s) = k1 (s - 1): conflicts grow with the other servers claiming the same queue head (fitted, through 0 at
  one server, to the 2- and 4-server runs); X and C are fitted as X1 + x_c k(s) and C1 + c_c k(s);
* the node's CPU split by where its shards spent their time: per-copy work (index, delete, refresh, merge,
  flush: every replica does it again), the query phase of searches (every shard of the index does it) and the
  rest (fetch, realtime gets: once per request); CPU outside the shards is shared out in the same proportions;
* refreshes per task r(s) = r1 + r_c (s - 1), and the time one refresh of the tasks shard takes.

Bounds on tasks/s, with `servers` of one core each and `nodes` data nodes of one core each holding the tasks
index as `shards` primaries with `replicas` replicas each (copies = shards (1 + replicas)):

* servers: servers x 1000 / X(s);
* nodes: min(nodes, copies) x 1000 / ((1 + replicas) C_copy + shards C_query + C_rest), the work spread evenly
  over the nodes that hold a copy;
* refresh: a shard refreshes one at a time, and every refresh request refreshes every shard:
  1000 / (t_refresh r(s)).

The prediction is the smallest; the table names it. Everything else (network, disk, the JVM's heap, the
coordinating work of a node that holds no copy) is assumed not to bind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.env import Json

COPY_WORK = ("index_ms", "delete_ms", "refresh_ms", "merge_ms", "flush_ms")
QUERY_WORK = ("search_query_ms",)
REST_WORK = ("search_fetch_ms", "get_ms")
SERVERS = (1, 2, 5, 10, 20, 50, 100)
NODES = (1, 3, 6, 12)


@dataclass(frozen=True)
class Costs:
    claim_amount: int
    server_ms: float  # X1: per task, one server, enqueue + claim/done + archive
    server_ms_per_conflict: float
    node_ms: float  # C1
    node_ms_per_conflict: float
    copy_share: float  # of the node's CPU
    query_share: float
    conflicts_per_extra_server: float  # k1
    refreshes: float  # r1, per task
    refreshes_per_extra_server: float
    refresh_ms: float  # one refresh of the tasks shard

    def conflicts(self, servers: int) -> float:
        return self.conflicts_per_extra_server * (servers - 1)


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least squares through the origin; 0 without points."""
    den = sum(x * x for x, _ in points)
    return sum(x * y for x, y in points) / den if den else 0.0


def _pick(runs: list[Json], servers: int, amount: int) -> tuple[Json | None, Json | None]:
    """(relayed run, run for rates and CPU: the direct one if there is one)."""
    same = [r for r in runs if r["servers"] == servers and r["claim_amount"] == amount]
    relayed = next((r for r in same if r["relayed"]), None)
    return relayed, next((r for r in same if not r["relayed"]), relayed)


def costs_from(results: Json, amount: int) -> Costs:
    runs: list[Json] = results["stores"]["elasticsearch"]["costs"]["runs"]
    relayed1, timed1 = _pick(runs, 1, amount)
    if relayed1 is None or timed1 is None:
        raise ValueError(f"no 1-server run at claim amount {amount}")
    archive = next((r["archive"] for r in runs if "archive" in r), None)
    fixed = [timed1["enqueue"]] + ([archive] if archive else [])  # the same whatever the servers and amount

    def cpu(run: Json, group: str) -> float:
        return float(run["claim_done"]["per_task"][f"{group}_cpu_ms"]) + sum(
            float(p["per_task"][f"{group}_cpu_ms"]) for p in fixed
        )

    def node(run: Json) -> float:
        return float(run["claim_done"]["per_task"]["node_cpu_ms"]) + sum(
            float(p["per_task"]["node_cpu_ms"]) for p in fixed
        )

    x1, c1 = cpu(timed1, "server"), node(timed1)
    conflict_points, server_points, node_points, refresh_points = [], [], [], []
    for servers in sorted({r["servers"] for r in runs if r["servers"] > 1}):
        relayed, timed = _pick(runs, servers, amount)
        if relayed is None or timed is None:
            continue
        k = float(relayed["claim_conflicts_per_task"])
        conflict_points.append((float(servers - 1), k))
        server_points.append((k, cpu(timed, "server") - x1))
        node_points.append((k, node(timed) - c1))
        refresh_points.append((float(servers - 1), relayed["claim_done"]["per_task"]["refreshes_external"]))
    r1 = float(relayed1["claim_done"]["per_task"]["refreshes_external"])
    shard_ms = {name: 0.0 for name in (*COPY_WORK, *QUERY_WORK, *REST_WORK)}
    refresh_time = refresh_count = 0.0
    for phase in [relayed1["claim_done"], relayed1["enqueue"], *([archive] if archive else [])]:
        tasks_index = phase["es"]["per_index"].get("{prefix}-tasks", {})
        refresh_time += tasks_index.get("refresh_ms", 0)
        refresh_count += tasks_index.get("refreshes", 0)
        for name in shard_ms:
            shard_ms[name] += phase["es"]["indices"].get(name, 0)
    total = sum(shard_ms.values()) or 1.0
    return Costs(
        claim_amount=amount,
        server_ms=x1,
        server_ms_per_conflict=max(0.0, _slope(server_points)),
        node_ms=c1,
        node_ms_per_conflict=max(0.0, _slope(node_points)),
        copy_share=sum(shard_ms[n] for n in COPY_WORK) / total,
        query_share=sum(shard_ms[n] for n in QUERY_WORK) / total,
        conflicts_per_extra_server=max(0.0, _slope(conflict_points)),
        refreshes=r1,
        refreshes_per_extra_server=max(0.0, _slope([(x, y - r1) for x, y in refresh_points])),
        refresh_ms=refresh_time / refresh_count if refresh_count else 0.0,
    )


def predict(c: Costs, servers: int, nodes: int, shards: int, replicas: int, shared_queue: bool) -> tuple[float, str]:
    """(tasks/s, the bound that gives it). `shared_queue`: every server claims the same queue (conflicts grow
    with the servers); else each server's workers have queues of their own (no conflicts)."""
    k = c.conflicts(servers) if shared_queue else 0.0
    node_ms = c.node_ms + c.node_ms_per_conflict * k
    cluster_ms = node_ms * ((1 + replicas) * c.copy_share + shards * c.query_share + (1 - c.copy_share - c.query_share))
    bounds = {
        "servers": servers * 1000 / (c.server_ms + c.server_ms_per_conflict * k),
        "nodes": min(nodes, shards * (1 + replicas)) * 1000 / cluster_ms,
    }
    refreshes = c.refreshes + (c.refreshes_per_extra_server * (servers - 1) if shared_queue else 0.0)
    if c.refresh_ms > 0 and refreshes > 0:
        bounds["refresh"] = 1000 / (c.refresh_ms * refreshes)
    name = min(bounds, key=lambda b: bounds[b])
    return bounds[name], name


def table(c: Costs, shards_of: str, shared_queue: bool) -> list[str]:
    """Servers down, data nodes across; `shards_of`: "one" (the default, 1 shard) or "nodes" (1 per node).
    Replicas: 0 on one node, else 1."""
    header = ["servers", *(f"{n} data node{'s' if n > 1 else ''}" for n in NODES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for servers in SERVERS:
        cells = [str(servers)]
        for nodes in NODES:
            shards = 1 if shards_of == "one" else nodes
            rate, bound = predict(c, servers, nodes, shards, 0 if nodes == 1 else 1, shared_queue)
            cells.append(f"{rate:,.0f} ({bound})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def describe(c: Costs) -> list[str]:
    return [
        f"claim amount {c.claim_amount}: X1 = {c.server_ms:.3f} server ms/task (+{c.server_ms_per_conflict:.3f} per "
        f"conflict), C1 = {c.node_ms:.3f} node ms/task (+{c.node_ms_per_conflict:.3f} per conflict), node CPU "
        f"{100 * c.copy_share:.0f}% per copy / {100 * c.query_share:.0f}% query / "
        f"{100 * (1 - c.copy_share - c.query_share):.0f}% rest; {c.conflicts_per_extra_server:.3f} conflicts "
        f"per task per extra server; {c.refreshes:.4f} refreshes/task (+{c.refreshes_per_extra_server:.4f} per "
        f"extra server), {c.refresh_ms:.1f} ms per refresh",
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    results: Json = json.loads(path.read_text())
    amounts = sorted({int(r["claim_amount"]) for r in results["stores"]["elasticsearch"]["costs"]["runs"]})
    for amount in amounts:
        c = costs_from(results, amount)
        print("\n".join(describe(c)))
        for shards_of, shared in (("one", False), ("nodes", False), ("one", True)):
            print(
                f"\nshards: {'1' if shards_of == 'one' else 'one per data node'}; replicas 1 (0 on one node); "
                f"{'one queue shared by every server' if shared else 'no claim conflicts'}\n"
            )
            print("\n".join(table(c, shards_of, shared)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
