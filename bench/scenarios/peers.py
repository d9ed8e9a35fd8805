"""Scenario 2b, the peers: the end-to-end workload on other Python task queues (bench/peers/README.md).

The same number of no-op tasks as scenario 2, enqueued beforehand (in bulk where the peer can), then drained
by `worker_processes` processes of the peer's own consumer (handler threads per process: each peer's `threads`).
Timed from releasing the workers to the last handler returning; the backend is then polled until it has
recorded every task as finished, which is reported as `drained_s`. Verified: every enqueued id ran exactly
once (the handlers' records), nothing is left pending, failed or dead-lettered in the backend.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bench.context import Context, per_task
from bench.env import BenchFailure, CpuMeter, Json, check
from bench.peers import Peer, load
from bench.workers import ProcessPool

POLL_EVERY = 0.002


async def _until_drained(peer: Peer, within: float) -> float:
    """Wall-clock time at which the backend first showed nothing pending."""
    deadline = time.monotonic() + within
    while (left := await peer.pending()) > 0:
        if time.monotonic() > deadline:
            raise BenchFailure(f"{left} tasks still pending in the backend {within:.0f}s after the handlers ran")
        await asyncio.sleep(POLL_EVERY)
    return time.time()


def _verify(received: list[tuple[str, float]], ids: list[str]) -> None:
    counts = Counter(task_id for task_id, _ in received)
    dupes = [i for i, n in counts.items() if n > 1]
    check(not dupes, f"{len(dupes)} tasks ran more than once, e.g. {dupes[:3]}")
    missing = set(ids) - set(counts)
    check(not missing, f"{len(missing)} tasks never ran, e.g. {sorted(missing)[:3]}")
    check(set(counts) == set(ids), "the workers ran tasks that were never enqueued")


async def run_one(ctx: Context, name: str) -> Json:
    p = ctx.params
    total = p.e2e_tasks
    workdir = ctx.workdir / f"peer-{name}"
    workdir.mkdir(exist_ok=True)
    peer = load(name, workdir)
    pool: ProcessPool | None = None
    try:
        await peer.start()
        ids = [f"t{i}" for i in range(total)]
        t0 = time.perf_counter()
        how = await peer.enqueue(ids)
        enqueue_s = time.perf_counter() - t0
        queued = await peer.pending()
        check(queued == total, f"{queued} tasks pending after enqueueing {total}")
        command = ["-m", "bench.peers.worker", peer.module, "--url", peer.url, "--threads", str(peer.threads)]
        pool = ProcessPool(command, processes=p.worker_processes, log_path=ctx.log_path(f"workers-{name}"))
        await pool.start()
        meter = CpuMeter({"workers": pool.pids, **peer.server_pids()}).start()
        started = pool.go()
        await pool.wait_for_done(total, p.stall_timeout_s, overall_timeout=max(900.0, total / 10))
        drained_at = await _until_drained(peer, p.stall_timeout_s)
        cpu = meter.stop()
        results = await pool.stop_processes()
        pool = None
        received = [(str(i), float(t)) for r in results for i, t in r["received"]]
        _verify(received, ids)
        await peer.verify(total)
        elapsed = max(t for _, t in received) - started
        work = {name: s for name, s in cpu["cpu_s"].items() if name != "driver"}
        out = {
            **peer.describe(),
            "tasks": total,
            "worker_processes": p.worker_processes,
            "threads_per_process": peer.threads,
            "enqueue": {"how": how, "elapsed_s": round(enqueue_s, 3), "tasks_per_s": round(total / enqueue_s, 1)},
            "elapsed_s": round(elapsed, 3),
            "tasks_per_s": round(total / elapsed, 1),
            "drained_s": round(drained_at - started, 3),
            "cpu": cpu,
            **per_task(cpu, total),
            "total_cpu_ms_per_task": round(sum(work.values()) * 1000 / total, 3),
            "verified": True,
        }
        ctx.log(f"{out['label']}: {out['tasks_per_s']:.0f} tasks/s, {out['total_cpu_ms_per_task']} CPU ms per task")
        return out
    finally:
        if pool is not None:
            pool.kill()
        await peer.stop()
