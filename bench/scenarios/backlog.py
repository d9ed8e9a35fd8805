"""Scenario 4, backlog scaling: the claim+done rate of SDK workers with 10k, 100k and 1M tasks queued.

The backlog is loaded straight through the store API (not measured): `SqliteStore.insert_tasks` into the
database file while no server runs, `ElasticsearchStore.insert_tasks` (`_bulk`) into the server's indices.
One store grows from size to size: after each measurement it is topped up to the next size, so the tasks
done earlier stay in it (a few thousand beside the backlog). At every size the same number of tasks is
claimed and done. Elasticsearch grows only while the loading fits in `es_backlog_budget_s`, judged from the
loading rate so far; the result says which sizes ran and why any did not. On Elasticsearch each step also
reports what the node's searches of the tasks index cost (index stats): whether claims visit only the head of
the queue shows there first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bench.api import expect_counts, expect_done_once, session
from bench.context import Context, per_task
from bench.env import Json, check
from bench.server import Store, refresh_index
from bench.workers import WorkerPool
from tasques.config import ElasticsearchConfig
from tasques.domain.task import NewTask, Task
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.sqlite import SqliteStore

QUEUE = "backlog"
SQLITE_BATCH = 10_000
ES_BATCH = 2_000
ES_PARALLEL = 2


def _tasks(start: int, count: int) -> list[Task]:
    now = datetime.now(UTC)
    template = Task.create(
        NewTask(
            queue=QUEUE,
            kind="noop",
            id="template",
            run_at=now,
            retry_times=25,
            processing_timeout=timedelta(minutes=30),
            args={"n": 0},
        ),
        now,
    )
    # Distinct run_at, so claim order is well defined, as it is for tasks created one after the other.
    return [
        template.model_copy(
            update={"id": f"bl-{i}", "args": {"n": i}, "run_at": now + timedelta(microseconds=i - start)}
        )
        for i in range(start, start + count)
    ]


def _check_inserted(results: Sequence[object], expected: int) -> None:
    created = sum(isinstance(r, Task) for r in results)
    check(created == expected, f"backlog load created {created} of {expected} tasks")


async def _fill_sqlite(store: Store, start: int, count: int) -> None:
    db = SqliteStore(str(store.sqlite_path))
    await db.open()
    try:
        for offset in range(start, start + count, SQLITE_BATCH):
            n = min(SQLITE_BATCH, start + count - offset)
            _check_inserted(await db.insert_tasks(_tasks(offset, n)), n)
    finally:
        await db.close()


async def _fill_es(store: Store, start: int, count: int) -> None:
    assert store.es is not None
    settings = ElasticsearchConfig(addresses=[store.es.url], index_prefix=store.es_prefix, replicas=0)
    db = ElasticsearchStore.from_config(settings, maintain_archive_every=None)
    await db.open()
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for offset in range(start, start + count, ES_BATCH):
        queue.put_nowait((offset, min(ES_BATCH, start + count - offset)))

    async def loader() -> None:
        while not queue.empty():
            offset, n = queue.get_nowait()
            _check_inserted(await db.insert_tasks(_tasks(offset, n)), n)

    try:
        await asyncio.gather(*(loader() for _ in range(ES_PARALLEL)))
        await refresh_index(store.es.url, store.es_tasks_index)
    finally:
        await db.close()


async def _search_stats(store: Store) -> tuple[int, int]:
    """(searches, milliseconds spent in them) the node has counted on the tasks index's primaries so far."""
    assert store.es is not None
    url = f"{store.es.url}/{store.es_tasks_index}/_stats/search"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body: Any = await resp.json()
    search = body["_all"]["primaries"]["search"]
    return int(search["query_total"]), int(search["query_time_in_millis"]) + int(search["fetch_time_in_millis"])


def _search_cost(before: tuple[int, int], after: tuple[int, int], tasks: int) -> Json:
    searches, ms = after[0] - before[0], after[1] - before[1]
    return {
        "es_searches_per_task": round(searches / tasks, 3),
        "es_search_ms_per_search": round(ms / searches, 3) if searches else None,
    }


async def _measure(ctx: Context, store: Store, size: int, done_before: set[str]) -> tuple[Json, set[str]]:
    p = ctx.params
    kind = store.kind
    server = await ctx.start_server(store, f"{kind}-backlog-{size}")
    pool: WorkerPool | None = None
    try:
        async with session() as http:
            await expect_counts(http, server.url, QUEUE, queued=size, done=len(done_before))
            pool = WorkerPool(
                server.url,
                QUEUE,
                processes=p.worker_processes,
                workers_per_process=p.workers_per_process,
                claim_amount=p.backlog_claim_amount,
                concurrency=p.backlog_claim_amount,
                block_for=1.0,
                log_path=ctx.log_path(f"workers-{kind}-backlog-{size}"),
            )
            await pool.start()
            searches_before = await _search_stats(store) if kind == "elasticsearch" else None
            meter = ctx.meter(kind, server, pool.pids).start()
            started = pool.go()
            await pool.wait_for_done(p.backlog_measured, p.stall_timeout_s, overall_timeout=1800.0)
            cpu = meter.stop()
            searches_after = await _search_stats(store) if kind == "elasticsearch" else None
            result = await pool.stop()
            pool = None
            result.verify()
            ran = {i for i, _ in result.received}
            check(not ran & done_before, "tasks done at a smaller backlog ran again")
            check(all(i.startswith("bl-") for i in ran), "the workers ran tasks that are not in the backlog")
            done_now = done_before | ran
            await expect_counts(http, server.url, QUEUE, queued=size - len(ran), done=len(done_now))
            await expect_done_once(http, server.url, QUEUE, done_now)
    finally:
        if pool is not None:
            pool.kill()
        await server.astop()
    elapsed = result.last_done_at - started
    done = len(ran)
    out = {
        "backlog": size,
        "tasks": done,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(done / elapsed, 1),
        "ms_per_task": round(elapsed * 1000 / done, 4),
        **result.claim_summary(),
        "cpu": cpu,
        **per_task(cpu, done),
        "verified": True,
    }
    if searches_before is not None and searches_after is not None:
        out.update(_search_cost(searches_before, searches_after, done))
    ctx.log(f"backlog {size:,}: {out['tasks_per_s']:.0f} claim+done/s")
    return out, done_now


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    store = ctx.store(kind, "backlog")
    fill = _fill_sqlite if kind == "sqlite" else _fill_es
    budget = p.es_backlog_budget_s if kind == "elasticsearch" else None
    steps: list[Json] = []
    skipped: list[Json] = []
    loaded = 0  # tasks ever loaded; ids bl-0 .. bl-(loaded-1)
    queued = 0
    fill_spent = 0.0
    fill_rate: float | None = None
    done: set[str] = set()
    try:
        for size in p.backlog_sizes:
            need = size - queued
            if budget is not None and fill_rate is not None and fill_spent + need / fill_rate > budget:
                reason = (
                    f"loading {need:,} more tasks at {fill_rate:,.0f}/s would take the Elasticsearch backlog "
                    f"loading past its {budget:.0f}s budget ({fill_spent:.0f}s spent)"
                )
                skipped.append({"backlog": size, "reason": reason})
                ctx.log(f"backlog {size:,}: skipped: {reason}")
                continue
            t0 = time.perf_counter()
            await fill(store, loaded, need)
            took = time.perf_counter() - t0
            fill_spent += took
            fill_rate = need / took
            loaded += need
            ctx.log(f"backlog {size:,}: loaded {need:,} tasks in {took:.1f}s")
            step, done = await _measure(ctx, store, size, done)
            step["load_s"] = round(took, 1)
            steps.append(step)
            queued = size - step["tasks"]
    finally:
        await store.destroy()
    out: Json = {"claim_amount": p.backlog_claim_amount, "steps": steps, "skipped": skipped}
    if len(steps) >= 2:
        first, last = steps[0], steps[-1]
        out["largest_backlog"] = last["backlog"]
        out["cost_ratio_largest_vs_smallest"] = round(last["ms_per_task"] / first["ms_per_task"], 2)
        cpu_key = "server_cpu_ms_per_task"
        if first.get(cpu_key) and last.get(cpu_key):
            out["server_cpu_ratio_largest_vs_smallest"] = round(last[cpu_key] / first[cpu_key], 2)
        if kind == "elasticsearch":
            es_key = "elasticsearch_cpu_ms_per_task"
            if first.get(es_key) and last.get(es_key):
                out["es_cpu_ratio_largest_vs_smallest"] = round(last[es_key] / first[es_key], 2)
            search_key = "es_search_ms_per_search"
            if first.get(search_key) and last.get(search_key):
                out["es_search_ms_ratio_largest_vs_smallest"] = round(last[search_key] / first[search_key], 2)
    return out
