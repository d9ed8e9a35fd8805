"""Scenario 10, a fan-out and its join (issue 17): how long a join waits after its last dependency is done.

`fanout_tasks` tasks are created by POST /tasques/bulk (1,000 a request), then one join task whose
`depends_on` names all of them. A claimer is blocked on the join's queue from the start (long polls of 30 s);
workers claim the fan-out `fanout_claim_amount` at a time and finish each batch with POST /tasques/done. Measured:
from just before the last done batch is sent to the moment the join's claim answers (`done_to_join_claim`),
and from that batch's answer (`answer_to_join_claim`: what is left after the finishing call returned).

The baseline, measured on the same server in the same run: a claimer blocked on an empty queue, and one plain
task created there (`create_to_claim`: how fast a new task reaches a parked claimer). The join's latency is
reported as a ratio to it. `fanout_rounds` rounds, each on fresh queues; medians reported.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp

from bench.api import BULK_MAX, JSON_HEADERS, bulk_enqueue, session
from bench.context import Context
from bench.env import Json, check

FANOUT = "fanout"
JOIN = "join"
WORKER = {"X-TASQUES-WORKER-ID": "bench-fanout", **JSON_HEADERS}


async def _claim(http: aiohttp.ClientSession, url: str, queue: str, amount: int, block_for: str) -> list[Json]:
    body = json.dumps({"queues": [queue], "amount": amount, "block_for": block_for})
    async with http.post(f"{url}/tasques/claims", data=body, headers=WORKER) as resp:
        text = await resp.text()
        check(resp.status == 200, f"claim answered {resp.status}: {text[:200]}")
    claimed: list[Json] = json.loads(text)
    return claimed


async def _wait_for_join(http: aiohttp.ClientSession, url: str, queue: str) -> float:
    """Block on the join's queue until it is claimed; the time of the answer."""
    while True:
        claimed = await _claim(http, url, queue, 1, "30s")
        if claimed:
            check(claimed[0]["id"] == "join", f"claimed {claimed[0]['id']} from the join queue")
            return time.time()


async def _baseline(http: aiohttp.ClientSession, url: str, queue: str) -> float:
    """Seconds from sending a plain task's create to the answer of a claim parked on its (empty) queue."""
    waiter = asyncio.create_task(_claim(http, url, queue, 1, "30s"))
    await asyncio.sleep(0.2)  # parked in its long poll
    body = json.dumps({"queue": queue, "kind": "plain"})
    sent = time.time()
    async with http.post(f"{url}/tasques", data=body, headers=JSON_HEADERS) as resp:
        check(resp.status == 201, f"creating the baseline task answered {resp.status}")
    claimed = await asyncio.wait_for(waiter, timeout=60)
    check(len(claimed) == 1, "the baseline claim came back empty")
    return time.time() - sent


async def _round(http: aiohttp.ClientSession, url: str, total: int, amount: int, n: int) -> Json:
    fanout, join_queue = f"{FANOUT}-{n}", f"{JOIN}-{n}"
    started = time.time()
    ids = await bulk_enqueue(http, url, fanout, total, id_prefix="f-")
    join = {"queue": join_queue, "kind": "join", "id": "join", "depends_on": [{"queue": fanout, "id": i} for i in ids]}
    async with http.post(f"{url}/tasques", data=json.dumps(join), headers=JSON_HEADERS) as resp:
        text = await resp.text()
        check(resp.status == 201, f"creating the join answered {resp.status}: {text[:200]}")
        check(json.loads(text)["state"] == "waiting", f"the join is not waiting: {text[:200]}")
    created_in = time.time() - started
    waiter = asyncio.create_task(_wait_for_join(http, url, join_queue))
    await asyncio.sleep(0.2)  # the join's claimer is parked in its long poll
    finished = 0
    last_sent = last_answered = 0.0
    while finished < total:
        claimed = await _claim(http, url, fanout, min(amount, BULK_MAX), "1s")
        check(bool(claimed), f"no fan-out task to claim after {finished} of {total} were done")
        check(not waiter.done(), f"the join was claimed after {finished} of {total} dependencies")
        items = [{"queue": fanout, "id": t["id"], "claim_id": t["last_claimed"]["claim_id"]} for t in claimed]
        last_sent = time.time()
        async with http.post(f"{url}/tasques/done", data=json.dumps({"tasks": items}), headers=WORKER) as resp:
            text = await resp.text()
            check(resp.status == 200, f"done answered {resp.status}: {text[:200]}")
        last_answered = time.time()
        check(all(r["status"] == 200 for r in json.loads(text)["results"]), "a done was refused")
        finished += len(claimed)
    joined_at = await asyncio.wait_for(waiter, timeout=60)
    return {
        "setup_s": round(created_in, 3),
        "done_to_join_claim_ms": round((joined_at - last_sent) * 1000, 1),
        "answer_to_join_claim_ms": round((joined_at - last_answered) * 1000, 1),
    }


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    total, amount = p.fanout_tasks, p.fanout_claim_amount
    store = ctx.store(kind, "fanout")
    server = await ctx.start_server(store, f"{kind}-fanout")
    try:
        async with session() as http:
            url = server.url
            baselines = [await _baseline(http, url, f"plain-{n}") for n in range(5)]
            rounds = [await _round(http, url, total, amount, n) for n in range(p.fanout_rounds)]
        base_ms = statistics.median(baselines) * 1000
        join_ms = statistics.median(r["done_to_join_claim_ms"] for r in rounds)
        out = {
            "fanout_tasks": total,
            "claim_amount": amount,
            "rounds": rounds,
            "done_to_join_claim_ms": round(join_ms, 1),
            "answer_to_join_claim_ms": round(statistics.median(r["answer_to_join_claim_ms"] for r in rounds), 1),
            "baseline_create_to_claim_ms": round(base_ms, 1),
            "join_vs_baseline": round(join_ms / base_ms, 2) if base_ms > 0 else None,
        }
        ctx.log(
            f"fan-out {total}: join claimed {out['done_to_join_claim_ms']} ms after the last done was sent "
            f"(a plain create reaches a parked claim in {out['baseline_create_to_claim_ms']} ms)"
        )
        return out
    finally:
        await server.astop()
