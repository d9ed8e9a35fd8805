"""Scenario 3, pickup latency: tasks created at a steady rate into idle SDK workers blocked in claims.

Latency per task = the worker's claim-receive time (its handler starting) minus the producer's time just
before it sent POST /tasques; both are `time.time()` on this host.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.api import JSON_HEADERS, expect_counts, expect_done_once, session, task_body
from bench.context import Context, distribution_ms, per_task
from bench.env import Json, check
from bench.workers import WorkerPool

QUEUE = "latency"
SETTLE_S = 1.5  # after `go`, time for every claim loop to be parked in a blocking claim


async def _create(http: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with http.post(f"{url}/tasques", data=body, headers=JSON_HEADERS) as resp:
        text = await resp.read()
        check(resp.status == 201, f"POST /tasques answered {resp.status}: {text[:200]!r}")


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    total, interval = p.latency_tasks, 1.0 / p.latency_rate
    store = ctx.store(kind, "latency")
    server = await ctx.start_server(store, f"{kind}-latency")
    pool: WorkerPool | None = None
    try:
        async with session() as http:
            pool = WorkerPool(
                server.url,
                QUEUE,
                processes=p.worker_processes,
                workers_per_process=p.workers_per_process,
                claim_amount=1,
                concurrency=1,
                block_for=5.0,
                log_path=ctx.log_path(f"workers-{kind}-latency"),
            )
            await pool.start()
            pool.go()
            await asyncio.sleep(SETTLE_S)
            meter = ctx.meter(kind, server, pool.pids).start()
            sent: dict[str, float] = {}
            creates: list[asyncio.Task[None]] = []
            loop = asyncio.get_running_loop()
            first = loop.time()
            for i in range(total):
                await asyncio.sleep(max(0.0, first + i * interval - loop.time()))
                task_id = f"lat-{i}"
                body = task_body(QUEUE, i, task_id).encode()
                sent[task_id] = time.time()
                creates.append(asyncio.create_task(_create(http, server.url, body)))
            produced_in = loop.time() - first
            await asyncio.gather(*creates)
            await pool.wait_for_done(total, p.stall_timeout_s, overall_timeout=total * interval + 120)
            cpu = meter.stop()
            result = await pool.stop()
            pool = None
            result.verify(expected=total)
            check({i for i, _ in result.received} == set(sent), "the workers ran other tasks than were created")
            await expect_counts(http, server.url, QUEUE, done=total)
            await expect_done_once(http, server.url, QUEUE, list(sent))
        latencies = [received_at - sent[task_id] for task_id, received_at in result.received]
        out = {
            "tasks": total,
            "rate_per_s": p.latency_rate,
            "achieved_rate_per_s": round((total - 1) / produced_in, 2) if produced_in > 0 else None,
            "idle_claim_loops": p.worker_processes * p.workers_per_process,
            "create_to_claim": distribution_ms(latencies),
            "cpu": cpu,
            **per_task(cpu, total),
            "verified": True,
        }
        d = out["create_to_claim"]
        ctx.log(f"pickup latency: p50 {d['p50_ms']} ms, p95 {d['p95_ms']} ms, p99 {d['p99_ms']} ms")
        return out
    finally:
        if pool is not None:
            pool.kill()
        await server.astop()
        await store.destroy()
