"""One worker process of the benchmark: `Worker`s of the Python SDK running a no-op handler.

Driven over stdin/stdout by `bench.workers.WorkerPool`:

* prints `ready` once imported and set up, then waits for `go` on stdin before the workers start claiming;
* prints `progress <done> <time of the last done>` whenever the done count moved (at most every 50 ms);
* on `stop` (or end of input) stops the workers gracefully, then prints `result <json>` and exits.

The handler records, per task, the wall-clock time it started (the SDK starts a claimed task at once, so
this is the claim-receive time, within a fraction of a millisecond) and the claim it came from (tasks of
one claim share `last_claimed.claimed_at`), which gives the real claim sizes; the SDK's own counter of batch
requests gives the real sizes of the done batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter

from tasques.worker import TaskContext, Worker

PROGRESS_EVERY = 0.05
SAMPLE_EVERY = 0.005


async def _read_line() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    received: list[tuple[str, float]] = []
    claims: Counter[tuple[str, str]] = Counter()

    async def noop(ctx: TaskContext) -> None:
        received.append((ctx.task.id, time.time()))
        claim = ctx.task.last_claimed
        claims[(ctx.worker_id, claim.claimed_at.isoformat() if claim is not None else "?")] += 1

    workers = [
        Worker(
            args.server,
            f"bench-{os.getpid()}-{i}",
            [args.queue],
            {"noop": noop},
            claim_amount=args.claim_amount,
            concurrency=args.concurrency,
            block_for=args.block_for,
            batch_size=args.batch_size,
            batch_age=args.batch_age,
            batching=not args.single_calls,
            shutdown_grace=10.0,
            token=args.token,
        )
        for i in range(args.workers)
    ]
    _emit("ready")
    if await _read_line() != "go":
        return
    runs = [asyncio.create_task(w.run()) for w in workers]
    stop_requested = asyncio.create_task(_read_line())
    done = 0
    last_done_at = time.time()
    reported = -1
    next_report = 0.0
    while not stop_requested.done() and not any(r.done() for r in runs):
        await asyncio.sleep(SAMPLE_EVERY)
        now_done = sum(w.stats.done for w in workers)
        if now_done != done:
            done, last_done_at = now_done, time.time()
        if done != reported and time.monotonic() >= next_report:
            _emit(f"progress {done} {last_done_at:.6f}")
            reported, next_report = done, time.monotonic() + PROGRESS_EVERY
    for w in workers:
        w.stop()
    # The drain also finishes tasks: keep sampling so the last done's time is right.
    gathered = asyncio.gather(*runs, return_exceptions=True)
    while not gathered.done():
        await asyncio.sleep(SAMPLE_EVERY)
        now_done = sum(w.stats.done for w in workers)
        if now_done != done:
            done, last_done_at = now_done, time.time()
    errors = [repr(e) for e in gathered.result() if isinstance(e, BaseException)]
    stats = [vars(w.stats) for w in workers]
    _emit(
        "result "
        + json.dumps(
            {
                "pid": os.getpid(),
                "done": sum(s["done"] for s in stats),
                "last_done_at": last_done_at,
                "stats": stats,
                "errors": errors,
                "received": received,
                "claim_sizes": sorted(claims.values()),
                "done_batch_sizes": sorted(
                    size
                    for w in workers
                    for (kind, size), n in w.batch_sizes.items()
                    if kind == "done"
                    for _ in range(n)
                ),
            }
        )
    )
    stop_requested.cancel()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.worker_proc")
    p.add_argument("--server", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--workers", type=int, default=4, help="Worker instances (claim loops) in this process")
    p.add_argument("--claim-amount", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=10, help="handler slots of each Worker")
    p.add_argument("--block-for", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=100, help="most done calls per batch request")
    p.add_argument("--single-calls", action="store_true", help="one HTTP call per done (as the Go worker does)")
    p.add_argument("--batch-age", type=float, default=0.005, help="longest a done call waits for its batch (s)")
    p.add_argument(
        "--token",
        default=os.environ.get("TASQUES_TOKEN") or None,
        help="Bearer token for the server (default: $TASQUES_TOKEN, which keeps it out of the process list)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args()))
