"""Scenario 1, enqueue rate: single POST /tasques from 1 and from 16 concurrent clients, and POST /tasques/bulk."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.api import BULK_MAX, JSON_HEADERS, bulk_body, expect_counts, post_bulk, session, task_body
from bench.context import Context, distribution_ms, per_task
from bench.env import Json, check
from bench.server import Server


async def _singles(http: aiohttp.ClientSession, url: str, queue: str, total: int, clients: int) -> list[float]:
    """`total` POST /tasques from `clients` concurrent clients; every one must answer 201. Returns latencies."""
    bodies = [task_body(queue, i).encode() for i in range(total)]
    latencies: list[float] = []
    failures: list[str] = []

    async def client(first: int) -> None:
        for i in range(first, total, clients):
            t0 = time.perf_counter()
            async with http.post(f"{url}/tasques", data=bodies[i], headers=JSON_HEADERS) as resp:
                text = await resp.read()
                if resp.status != 201:
                    failures.append(f"{resp.status}: {text[:200]!r}")
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client(c) for c in range(clients)))
    check(not failures, f"{len(failures)} of {total} creates failed, e.g. {failures[:2]}")
    return latencies


async def _measure_singles(ctx: Context, http: aiohttp.ClientSession, server: Server, total: int, clients: int) -> Json:
    queue = f"enqueue-single-{clients}"
    meter = ctx.meter(server.store.kind, server).start()
    t0 = time.perf_counter()
    latencies = await _singles(http, server.url, queue, total, clients)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    await expect_counts(http, server.url, queue, queued=total)
    result = {
        "clients": clients,
        "tasks": total,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(total / elapsed, 1),
        "request_latency": distribution_ms(latencies),
        "cpu": cpu,
        **per_task(cpu, total),
        "verified": True,
    }
    ctx.log(f"POST /tasques x{clients} clients: {result['tasks_per_s']:.0f} tasks/s")
    return result


async def _measure_bulk(ctx: Context, http: aiohttp.ClientSession, server: Server, batches: int) -> Json:
    queue = "enqueue-bulk"
    bodies = [bulk_body(queue, b * BULK_MAX, BULK_MAX) for b in range(batches)]
    latencies: list[float] = []
    ids: list[str] = []
    meter = ctx.meter(server.store.kind, server).start()
    t0 = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        ids.extend(await post_bulk(http, server.url, body, BULK_MAX))
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    total = batches * BULK_MAX
    check(len(set(ids)) == total, f"POST /tasques/bulk returned {len(set(ids))} distinct ids for {total} tasks")
    await expect_counts(http, server.url, queue, queued=total)
    result = {
        "clients": 1,
        "batch": BULK_MAX,
        "tasks": total,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(total / elapsed, 1),
        "request_latency": distribution_ms(latencies),
        "cpu": cpu,
        **per_task(cpu, total),
        "verified": True,
    }
    ctx.log(f"POST /tasques/bulk (1,000 per batch): {result['tasks_per_s']:.0f} tasks/s")
    return result


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    store = ctx.store(kind, "enqueue")
    server = await ctx.start_server(store, f"{kind}-enqueue")
    try:
        async with session(32) as http:
            await _singles(http, server.url, "warmup", p.enqueue_warmup, clients=4)
            await post_bulk(http, server.url, bulk_body("warmup", p.enqueue_warmup, BULK_MAX), BULK_MAX)
            return {
                "single_1": await _measure_singles(ctx, http, server, p.enqueue_single_1, 1),
                "single_16": await _measure_singles(ctx, http, server, p.enqueue_single_16, 16),
                "bulk_1000": await _measure_bulk(ctx, http, server, p.enqueue_bulk_batches),
            }
    finally:
        await server.astop()
        await store.destroy()
