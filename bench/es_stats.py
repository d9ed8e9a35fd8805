"""What Elasticsearch itself counted over an interval: the operations on one store's indices, and the node's CPU.

Index statistics (`GET {prefix}-*/_stats`) cover only the indices of one index prefix, so other users of a
shared node do not show in them. The node's statistics (`GET _nodes/_local/stats`) are the whole node's: its
CPU (`process.cpu.total_in_millis`, the same JVM time `/proc` gives) and its operation counters include every
other index on it, which is why both are kept.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bench.env import Json, check

# (name in the results, path in an index's or the node's `indices` statistics)
OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("searches", ("search", "query_total")),  # per shard: one search of a 1-shard index counts 1
    ("fetches", ("search", "fetch_total")),
    ("docs_indexed", ("indexing", "index_total")),  # every document write, inserts and updates alike
    ("docs_deleted", ("indexing", "delete_total")),
    ("refreshes", ("refresh", "total")),  # scheduled, explicit and internal (realtime get, flush)
    ("refreshes_external", ("refresh", "external_total")),  # those that make writes visible to searches
    ("gets", ("get", "total")),
    ("bulk_shard_requests", ("bulk", "total_operations")),
    ("merges", ("merges", "total")),
    # Time the shards spent, per kind of work: wall time summed over operations (not CPU, but on a node
    # whose searches and writes do not wait on disk, a measure of where its CPU goes).
    ("search_query_ms", ("search", "query_time_in_millis")),
    ("search_fetch_ms", ("search", "fetch_time_in_millis")),
    ("index_ms", ("indexing", "index_time_in_millis")),
    ("delete_ms", ("indexing", "delete_time_in_millis")),
    ("refresh_ms", ("refresh", "total_time_in_millis")),
    ("get_ms", ("get", "time_in_millis")),
    ("bulk_ms", ("bulk", "total_time_in_millis")),
    ("merge_ms", ("merges", "total_time_in_millis")),
    ("flush_ms", ("flush", "total_time_in_millis")),
)


def _dig(node: Any, path: tuple[str, ...]) -> int:
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return int(node) if isinstance(node, int) else 0


def _operations(indices_stats: Json) -> dict[str, int]:
    return {name: _dig(indices_stats, path) for name, path in OPERATIONS}


async def snapshot(url: str, prefix: str) -> Json:
    """The counters now: summed over the prefix's indices (primaries and replicas), per index, and the node's."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"{url}/{prefix}-*/_stats", params={"expand_wildcards": "all"}) as resp:
            check(resp.status == 200, f"GET {prefix}-*/_stats answered {resp.status}")
            index_stats: Json = await resp.json()
        async with http.get(f"{url}/_nodes/_local/stats/process,indices") as resp:
            check(resp.status == 200, f"GET _nodes/_local/stats answered {resp.status}")
            nodes: Json = (await resp.json())["nodes"]
    check(len(nodes) == 1, f"_nodes/_local answered {len(nodes)} nodes")
    node = next(iter(nodes.values()))
    per_index = {
        name.replace(prefix, "{prefix}"): _operations(stats["total"])
        for name, stats in index_stats.get("indices", {}).items()
    }
    return {
        "indices": _operations(index_stats["_all"]["total"]),
        "per_index": per_index,
        "node": _operations(node["indices"]),
        "node_cpu_ms": int(node["process"]["cpu"]["total_in_millis"]),
    }


def delta(before: Json, after: Json) -> Json:
    """`after - before` of every counter (an index created in between counts from zero)."""
    per_index: Json = {}
    for name, ops in after["per_index"].items():
        was = before["per_index"].get(name, {})
        moved = {k: v - was.get(k, 0) for k, v in ops.items() if v - was.get(k, 0)}
        if moved:
            per_index[name] = moved
    ours = {k: v - before["indices"][k] for k, v in after["indices"].items()}
    node = {k: v - before["node"][k] for k, v in after["node"].items()}
    return {
        "indices": ours,
        "per_index": per_index,
        "node": node,
        # what other users of the node did meanwhile (its CPU is in the node's CPU too)
        "node_not_ours": {k: v - ours.get(k, 0) for k, v in node.items()},
        # cached by the node for about a second (monitor.process.refresh_interval): coarse over short phases
        "node_cpu_ms": after["node_cpu_ms"] - before["node_cpu_ms"],
    }
