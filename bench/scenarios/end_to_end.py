"""Scenario 2, end to end: a bulk-enqueued backlog of no-op tasks run to completion by SDK workers.

Workers: `worker_processes` processes x `workers_per_process` SDK `Worker`s = 8 claim loops. Each Worker's
concurrency equals its claim amount: the SDK never claims more tasks than it has free slots, so with fewer
slots a claim amount of 10 or 100 would never be used. Claim amount 1 is thus exactly 8 tasks in flight.
"""

from __future__ import annotations

from bench.api import bearer, bulk_enqueue, expect_counts, expect_done_once, http_answers, issue_tokens, session
from bench.context import Context, per_task
from bench.env import Json, check
from bench.profile import PySpy
from bench.workers import WorkerPool

QUEUE = "e2e"
AUTH_PROJECT = "bench"


async def _credentials(url: str, admin_token: str | None) -> tuple[dict[str, str] | None, str | None]:
    """The producer's session headers and the workers' token: none with auth off, else issued by the admin."""
    if admin_token is None:
        return None, None
    async with session(headers=bearer(admin_token)) as admin:
        producer, worker = await issue_tokens(admin, url, AUTH_PROJECT, ["producer", "worker"])
    return bearer(producer), worker


async def run_one(
    ctx: Context,
    kind: str,
    amount: int,
    *,
    single_calls: bool = False,
    settings: dict[str, str] | None = None,
    tag: str = "",
    tasks: int | None = None,
    admin_token: str | None = None,
) -> Json:
    """`single_calls`: one HTTP call per done, as the Go worker makes them (no SDK batching).
    `settings`: more `TASQUES_*` settings for the server; `tag` tells such runs apart in names and logs;
    `tasks`: how many (default `e2e_tasks`). `admin_token`: the server has auth on with this admin token
    (in `settings`); the run then uses a producer and a worker token of a new project and fails if the server
    answered any request 4xx (a missing token, a 429 of the rate limit) or a worker had to retry a call."""
    p = ctx.params
    total = tasks or p.e2e_tasks
    label = (f"{amount}-single" if single_calls else f"{amount}") + (f"-{tag}" if tag else "")
    store = ctx.store(kind, f"e2e{label.replace('-', '')}")
    server = await ctx.start_server(store, f"{kind}-e2e-{label}", settings)
    pool: WorkerPool | None = None
    try:
        producer_headers, worker_token = await _credentials(server.url, admin_token)
        async with session(headers=producer_headers) as http:
            ids = await bulk_enqueue(http, server.url, QUEUE, total)
            check(len(set(ids)) == total, f"enqueued {len(set(ids))} distinct tasks, expected {total}")
            await expect_counts(http, server.url, QUEUE, queued=total)
            pool = WorkerPool(
                server.url,
                QUEUE,
                processes=p.worker_processes,
                workers_per_process=p.workers_per_process,
                claim_amount=amount,
                concurrency=amount,
                block_for=1.0,
                log_path=ctx.log_path(f"workers-{kind}-e2e-{label}"),
                single_calls=single_calls,
                token=worker_token,
            )
            await pool.start()
            spy = None
            if ctx.profile_dir is not None:
                spy = PySpy(server.pid, ctx.profile_dir / f"{ctx.stamp}-{kind}-e2e-{label}.txt")
                await spy.start()
            meter = ctx.meter(kind, server, pool.pids).start()
            started = pool.go()
            await pool.wait_for_done(total, p.stall_timeout_s, overall_timeout=max(900.0, total / 10))
            cpu = meter.stop()
            profile = await spy.stop() if spy is not None else None
            result = await pool.stop()
            pool = None
            result.verify(expected=total)
            check({i for i, _ in result.received} == set(ids), "the workers ran other tasks than were enqueued")
            await expect_counts(http, server.url, QUEUE, done=total)
            await expect_done_once(http, server.url, QUEUE, ids)
            transient = sum(int(s["connection_errors"]) for s in result.stats)
            answers = await http_answers(http, server.url) if admin_token is not None else None
        if answers is not None:
            refused = {k: n for k, n in answers.items() if not k.startswith("2")}
            check(not refused, f"with auth on the server answered {refused} (401/403: no token; 429: rate limit)")
            check(transient == 0, f"the workers retried {transient} calls (a 429 or 5xx) with auth on")
        elapsed = result.last_done_at - started
        out = {
            "claim_amount": amount,
            "single_calls": single_calls,
            "claim_loops": p.worker_processes * p.workers_per_process,
            "concurrency_per_worker": amount,
            "tasks": total,
            "elapsed_s": round(elapsed, 3),
            "tasks_per_s": round(total / elapsed, 1),
            **result.claim_summary(),
            "cpu": cpu,
            **per_task(cpu, total),
            "verified": True,
            "transient_errors": transient,  # calls the workers retried (5xx, 408, 429, no connection)
        }
        if answers is not None:
            out["http_answers"] = answers
        if profile is not None:
            out["server_profile"] = profile
        ctx.log(
            f"end to end, claim amount {label}: {out['tasks_per_s']:.0f} tasks/s (mean claim {out['mean_claim_size']})"
        )
        return out
    finally:
        if pool is not None:
            pool.kill()
        await server.astop()
        await store.destroy()


async def run(ctx: Context, kind: str) -> Json:
    runs = [await run_one(ctx, kind, amount) for amount in ctx.params.e2e_claim_amounts]
    # The unmodified Go worker's way: claim 1, one done per HTTP call; the server's group commit is all it gets.
    return {"runs": runs, "single_calls": await run_one(ctx, kind, 1, single_calls=True)}
