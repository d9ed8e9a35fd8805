"""Scenario 8, what one task costs on Elasticsearch: requests, node operations and CPU per task (docs/scaling.md).

For `costs_servers` `tasques serve` processes sharing one index prefix, and claim amounts `costs_claim_amounts`:
`costs_tasks` tasks are bulk-enqueued (1,000 per request, the servers taking turns), then the end-to-end
workers (8 SDK `Worker`s in `worker_processes` processes, or one process per server if there are more
servers; process i talks to server i mod servers) run them to done. Each phase is measured apart, per task:

* the requests each server sends to the node, by kind (search, bulk, refresh, get, index, other) and by
  endpoint, counted by a relay between each server and the node (`bench/es_relay.py`);
* what the node did on the store's indices (`{prefix}-*/_stats`: searches, document writes and deletes,
  refreshes, realtime gets, bulk shard requests) and on the whole node (`_nodes/_local/stats`, which includes
  other users of a shared node: `node_not_ours` says how much);
* CPU of the servers, the worker processes, the node's JVM and the driver (which runs the relays), from /proc;
* claim races lost: `tasques_claim_conflicts_total` summed over the servers' /metrics.

The relays sit in the driver's event loop and add a hop to every request, so the configurations with
`costs_direct_servers` servers run once more without them: read rates and CPU from those, counts from the
relayed ones. After the first relayed 1-server run at the largest claim amount, a fresh server with
`archive_older_than: 0s` archives the done tasks (the third phase, `archive`: what a task costs once more in
the steady state, where every done task is moved to the archive). A small unrecorded run warms the node first.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import aiohttp

from bench import es_stats
from bench.api import BULK_MAX, JSON_HEADERS, bulk_body, expect_counts, expect_done_once, post_bulk, session
from bench.context import Context
from bench.env import CpuMeter, Elasticsearch, Json, check
from bench.es_relay import KINDS, CountingRelay, kind_of
from bench.server import Server, Store, refresh_index
from bench.workers import PoolResult, WorkerPool

QUEUE = "costs"
WARMUP_TASKS = 2_000
ARCHIVE_SETTINGS = {"TASQUES_HOUSEKEEPING_ARCHIVE_OLDER_THAN": "0s", "TASQUES_HOUSEKEEPING_ARCHIVE_EVERY": "1s"}
_CONFLICTS = re.compile(r"^tasques_claim_conflicts_total(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.MULTILINE)


class _Measure:
    """One phase: relay counts, Elasticsearch counters and CPU from `start` to `stop`."""

    def __init__(self, es: Elasticsearch, prefix: str, relays: list[CountingRelay], meter: CpuMeter) -> None:
        self._es, self._prefix, self._relays, self._meter = es, prefix, relays, meter
        self._counts: Counter[str] = Counter()
        self._bytes = (0, 0)
        self._stats: Json = {}
        self._t0 = 0.0

    def _relay_totals(self) -> tuple[Counter[str], tuple[int, int]]:
        counts: Counter[str] = Counter()
        for relay in self._relays:
            counts.update(relay.counts)
        return counts, (sum(r.bytes_sent for r in self._relays), sum(r.bytes_received for r in self._relays))

    async def start(self) -> _Measure:
        self._stats = await es_stats.snapshot(self._es.url, self._prefix)
        self._counts, self._bytes = self._relay_totals()
        self._meter.start()
        self._t0 = time.monotonic()
        return self

    def meter_from_now(self, meter: CpuMeter) -> None:
        """CPU from now on, of these groups (a server started after `start`: its start-up is not counted)."""
        self._meter = meter.start()

    async def stop(self, tasks: int | None = None) -> Json:
        """The phase's cost, in all and per task (`tasks`: default, the documents deleted from the tasks index,
        i.e. the tasks archived)."""
        wall = time.monotonic() - self._t0
        cpu = self._meter.stop()
        counts, (sent, received) = self._relay_totals()
        stats = es_stats.delta(self._stats, await es_stats.snapshot(self._es.url, self._prefix))
        if tasks is None:
            tasks = int(stats["per_index"].get("{prefix}-tasks", {}).get("docs_deleted", 0))
        check(tasks > 0, "a measured phase did no task")
        # The JVM's CPU from /proc when the node is local (exact), else the node's own cached counter.
        node_cpu_s = cpu["cpu_s"].get("elasticsearch") if self._es.pid is not None else None
        node_cpu_ms = node_cpu_s * 1000 if node_cpu_s is not None else stats["node_cpu_ms"]
        out: Json = {
            "tasks": tasks,
            "elapsed_s": round(wall, 3),
            "tasks_per_s": round(tasks / wall, 1),
            "cpu": cpu,
            "es": stats,
            "per_task": {
                **{f"{name}_cpu_ms": round(s * 1000 / tasks, 3) for name, s in cpu["cpu_s"].items()},
                "node_cpu_ms": round(node_cpu_ms / tasks, 3),
                **{k: round(v / tasks, 4) for k, v in stats["indices"].items()},
            },
        }
        if self._relays:
            moved = {e: n - self._counts.get(e, 0) for e, n in sorted(counts.items()) if n - self._counts.get(e, 0)}
            by_kind = {kind: sum(n for e, n in moved.items() if kind_of(e) == kind) for kind in KINDS}
            out["es_requests_by_endpoint"] = moved
            out["es_requests"] = by_kind
            out["per_task"]["es_requests"] = {k: round(n / tasks, 4) for k, n in by_kind.items()}
            out["per_task"]["es_requests_total"] = round(sum(by_kind.values()) / tasks, 4)
            out["per_task"]["es_bytes_sent"] = round((sent - self._bytes[0]) / tasks, 1)
            out["per_task"]["es_bytes_received"] = round((received - self._bytes[1]) / tasks, 1)
        return out


async def _enqueue(http: aiohttp.ClientSession, urls: list[str], total: int) -> list[str]:
    """`total` tasks in bulks of 1,000, the servers taking turns."""
    ids: list[str] = []
    for n, start in enumerate(range(0, total, BULK_MAX)):
        count = min(BULK_MAX, total - start)
        ids.extend(await post_bulk(http, urls[n % len(urls)], bulk_body(QUEUE, start, count), count))
    return ids


async def _conflicts(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/metrics") as resp:
        check(resp.status == 200, f"GET /metrics answered {resp.status}")
        text = await resp.text()
    return int(sum(float(v) for v in _CONFLICTS.findall(text)))


async def _verify(http: aiohttp.ClientSession, store: Store, url: str, ids: list[str], result: PoolResult) -> None:
    """Every task ran once and is done, as the workers and the server (after a refresh: other servers'
    writes too) see it."""
    total = len(ids)
    result.verify(expected=total)
    check({i for i, _ in result.received} == set(ids), "the workers ran other tasks than were enqueued")
    assert store.es is not None
    await refresh_index(store.es.url, store.es_tasks_index)
    await expect_counts(http, url, QUEUE, done=total)
    await expect_done_once(http, url, QUEUE, ids)


async def _count(http: aiohttp.ClientSession, url: str, index: str) -> int:
    async with http.get(f"{url}/{index}/_count") as resp:
        check(resp.status == 200, f"GET {index}/_count answered {resp.status}")
        return int((await resp.json())["count"])


async def _archive(ctx: Context, store: Store, relay: CountingRelay | None, ids: list[str]) -> Json:
    """A fresh server (the others stopped) archives every done task; measured until the tasks index is empty."""
    assert ctx.es is not None
    extra = dict(ARCHIVE_SETTINGS)
    if relay is not None:
        extra["TASQUES_STORE_ELASTICSEARCH_ADDRESSES"] = f"[{relay.url}]"
    meter = CpuMeter({"server": [], "elasticsearch": [ctx.es.pid]})
    # Elasticsearch counters from before the server starts (its start-up adds a few requests), CPU from after.
    measure = await _Measure(ctx.es, store.es_prefix, [relay] if relay else [], meter).start()
    server = await ctx.start_server(store, "costs-archiver", extra)
    try:
        measure.meter_from_now(CpuMeter({"server": [server.pid], "elasticsearch": [ctx.es.pid]}))
        deadline = time.monotonic() + max(120.0, len(ids) / 50)
        async with session() as http:
            while await _count(http, ctx.es.url, store.es_tasks_index) > 0:
                check(time.monotonic() < deadline, "the archiver did not empty the tasks index in time")
                await asyncio.sleep(0.2)
            out = await measure.stop()
            await refresh_index(ctx.es.url, f"{store.es_prefix}-archive")
            archived = await _count(http, ctx.es.url, f"{store.es_prefix}-archive")
            check(archived == len(ids), f"{archived} tasks archived, expected {len(ids)}")
            for task_id in ids[:: max(1, len(ids) // 20)]:  # archived tasks stay readable by id
                async with http.get(f"{server.url}/tasques/{QUEUE}/{task_id}", headers=JSON_HEADERS) as resp:
                    check(resp.status == 200, f"GET archived task {task_id} answered {resp.status}")
                    check((await resp.json())["state"] == "done", f"archived task {task_id} is not done")
        check(out["tasks"] == len(ids), f"{out['tasks']} of {len(ids)} archivings measured (it began too early)")
        return out
    finally:
        await server.astop()


async def run_one(
    ctx: Context, servers: int, amount: int, *, counted: bool, archive: bool = False, tasks: int = 0
) -> Json:
    """One configuration: `servers` servers, claim amount `amount`; `counted`: through relays; `archive`: then
    the archive phase; `tasks`: default `costs_tasks`."""
    assert ctx.es is not None
    p = ctx.params
    total = tasks or p.costs_tasks
    tag = f"{servers}x{amount}{'relayed' if counted else 'direct'}"
    store = ctx.store("elasticsearch", f"costs{tag}")
    relays: list[CountingRelay] = []
    procs: list[Server] = []
    pool: WorkerPool | None = None
    try:
        for i in range(servers):
            extra: dict[str, str] = {}
            if counted:
                relays.append(await CountingRelay(ctx.es.url, store.es_prefix).start())
                extra["TASQUES_STORE_ELASTICSEARCH_ADDRESSES"] = f"[{relays[-1].url}]"
            procs.append(await ctx.start_server(store, f"costs-{tag}-{i}", extra))
        urls = [s.url for s in procs]
        loops = p.worker_processes * p.workers_per_process
        processes = max(p.worker_processes, servers)
        check(loops % processes == 0, f"{loops} claim loops do not spread evenly over {processes} processes")
        async with session() as http:
            meter = CpuMeter({"server": [s.pid for s in procs], "elasticsearch": [ctx.es.pid]})
            measure = await _Measure(ctx.es, store.es_prefix, relays, meter).start()
            ids = await _enqueue(http, urls, total)
            enqueue = await measure.stop(total)
            check(len(set(ids)) == total, f"enqueued {len(set(ids))} distinct tasks, expected {total}")
            pool = WorkerPool(
                urls,
                QUEUE,
                processes=processes,
                workers_per_process=loops // processes,
                claim_amount=amount,
                concurrency=amount,
                block_for=1.0,
                log_path=ctx.log_path(f"workers-costs-{tag}"),
            )
            await pool.start()
            meter = CpuMeter({"server": [s.pid for s in procs], "workers": pool.pids, "elasticsearch": [ctx.es.pid]})
            measure = await _Measure(ctx.es, store.es_prefix, relays, meter).start()
            started = pool.go()
            await pool.wait_for_done(total, p.stall_timeout_s, overall_timeout=max(900.0, total / 10))
            claim_done = await measure.stop(total)
            result = await pool.stop()
            pool = None
            await _verify(http, store, urls[0], ids, result)
            conflicts = [await _conflicts(http, url) for url in urls]
        # the rate to the last done, as the end-to-end scenario counts it (the phase also holds the workers' stop)
        claim_done["tasks_per_s"] = round(total / (result.last_done_at - started), 1)
        out: Json = {
            "servers": servers,
            "claim_amount": amount,
            "relayed": counted,
            "tasks": total,
            "claim_loops": loops,
            "worker_processes": processes,
            **result.claim_summary(),
            "worker_stats": {k: sum(int(st[k]) for st in result.stats) for k in ("claimed", "unclaimed", "done")},
            "claim_conflicts": sum(conflicts),
            "claim_conflicts_per_task": round(sum(conflicts) / total, 4),
            "enqueue": enqueue,
            "claim_done": claim_done,
            "verified": True,
        }
        c = claim_done["per_task"]
        line = (
            f"costs, {servers} server(s), claim {amount}{' (relayed)' if counted else ''}: "
            f"{claim_done['tasks_per_s']:.0f} tasks/s, per task: server {c['server_cpu_ms']} ms, "
            f"node {c['node_cpu_ms']} ms, {c['searches']} searches, {c['docs_indexed']} docs, "
            f"{c['refreshes']} refreshes; {out['claim_conflicts_per_task']} conflicts"
        )
        if counted:
            line += f"; {c['es_requests_total']} ES requests"
        ctx.log(line)
        if archive:
            for server in procs:
                await server.astop()
            procs = []
            out["archive"] = await _archive(ctx, store, relays[0] if relays else None, ids)
            a = out["archive"]["per_task"]
            ctx.log(f"archive: server {a['server_cpu_ms']} ms, node {a['node_cpu_ms']} ms per task")
        return out
    finally:
        if pool is not None:
            pool.kill()
        for server in procs:
            await server.astop()
        for relay in relays:
            await relay.close()
        await store.destroy()


async def run(ctx: Context, kind: str) -> Json:
    if kind != "elasticsearch":
        return {"skipped": "the costs scenario measures the Elasticsearch store only"}
    p = ctx.params
    largest = max(p.costs_claim_amounts)
    await run_one(ctx, 1, largest, counted=False, tasks=min(WARMUP_TASKS, p.costs_tasks))  # JIT, caches: not kept
    runs: list[Json] = []
    for servers in p.costs_servers:
        for amount in p.costs_claim_amounts:
            archive = servers == 1 and amount == largest
            runs.append(await run_one(ctx, servers, amount, counted=True, archive=archive))
            if servers in p.costs_direct_servers:
                runs.append(await run_one(ctx, servers, amount, counted=False))
    return {"runs": runs}
