"""Scenario 6, idle cost: one server with blocked claims and registered HTTP queues, and nothing to do.

`idle_claims` long-polling claims, each on its own empty pull queue, and `idle_http_queues` registered HTTP
queues (settings records, so the dispatcher looks at each). Measured over `idle_seconds` per phase: the
server's CPU (from /proc) and, on Elasticsearch, every request the server sends, counted by endpoint in a
relay between the server and the node (`bench/es_relay.py`). Two phases: claims parked for the whole window
(`block_for` 60 s), then claims that end every 5 s and start again at once, as SDK workers' long-polls do.
The leader's housekeeping runs as configured by default (lock renewal, reaper, recurring pass every second);
its requests are counted and shown apart from the claim and dispatch ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp

from bench.api import JSON_HEADERS, session
from bench.context import Context
from bench.env import Json, check
from bench.es_relay import CountingRelay
from bench.server import Server

PHASES = (("parked", 60.0), ("sdk_churn", 5.0))  # (name, block_for seconds)
SETTLE_S = 3.0  # after the claims start: the first claims reach the store, then everything is parked
QUIET_REQUESTS_PER_S = 6  # what housekeeping and the ticks send at most per second once parked
# Endpoints of the leader's housekeeping: the lock, the recurring enqueuer, the timeline and archive, and the
# reaper's search of timed-out claims.
_HOUSEKEEPING = ("{prefix}-locks", "{prefix}-recurring", "{prefix}-timeline", "{prefix}-archive", "(timed out)")


async def _claim_loop(http: aiohttp.ClientSession, url: str, i: int, block_for: float, stop: asyncio.Event) -> int:
    """Long-poll claims on queue idle-pull-{i} until `stop`; returns how many claims it sent."""
    body = f'{{"queues":["idle-pull-{i}"],"amount":10,"block_for":"{block_for:g}s"}}'.encode()
    headers = {**JSON_HEADERS, "X-TASQUES-WORKER-ID": f"idle-worker-{i}"}
    sent = 0
    while not stop.is_set():
        sent += 1
        async with http.post(f"{url}/tasques/claims", data=body, headers=headers) as resp:
            text = await resp.read()
            check(resp.status == 200, f"POST /tasques/claims answered {resp.status}: {text[:200]!r}")
            check(text.strip() == b"[]", f"an idle claim got tasks: {text[:200]!r}")
    return sent


async def _register(http: aiohttp.ClientSession, url: str, queues: int) -> None:
    for i in range(queues):
        body = b'{"max_concurrent_dispatches": 5}'
        async with http.put(f"{url}/queues/idle-http-{i}/settings", data=body, headers=JSON_HEADERS) as resp:
            check(resp.status == 200, f"PUT /queues/idle-http-{i}/settings answered {resp.status}")


async def _settle(relay: CountingRelay | None) -> None:
    """Until every claim is parked: SETTLE_S, and on Elasticsearch until a second passes with no more requests
    than the idle ticks send (the first claims reach the store; on a busy machine that takes a while)."""
    await asyncio.sleep(SETTLE_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while relay is not None and loop.time() < deadline:
        before = relay.total
        await asyncio.sleep(1.0)
        if relay.total - before <= QUIET_REQUESTS_PER_S:
            return


def _split(counts: dict[str, int]) -> tuple[int, int]:
    """(claim and dispatch requests, housekeeping requests)."""
    housekeeping = sum(n for e, n in counts.items() if any(h in e for h in _HOUSEKEEPING))
    return sum(counts.values()) - housekeeping, housekeeping


async def _phase(ctx: Context, kind: str, server: Server, relay: CountingRelay | None, block_for: float) -> Json:
    p = ctx.params
    stop = asyncio.Event()
    async with session(connections=p.idle_claims + 8) as http:
        loops = [asyncio.create_task(_claim_loop(http, server.url, i, block_for, stop)) for i in range(p.idle_claims)]
        await _settle(relay)
        before = dict(relay.counts) if relay is not None else {}
        meter = ctx.meter(kind, server).start()
        t0 = time.monotonic()
        await asyncio.sleep(p.idle_seconds)
        wall = time.monotonic() - t0
        cpu = meter.stop()
        after = dict(relay.counts) if relay is not None else {}
        stop.set()
        for loop in loops:
            loop.cancel()  # a parked long-poll would otherwise hold the phase up to its block_for
        await asyncio.gather(*loops, return_exceptions=True)
    server_cpu_pct = round(100 * cpu["cpu_s"]["server"] / wall, 3)
    out: Json = {"block_for_s": block_for, "seconds": round(wall, 2), "server_cpu_pct": server_cpu_pct, "cpu": cpu}
    if relay is not None:
        delta = {e: after.get(e, 0) - before.get(e, 0) for e in after}
        delta = {e: n for e, n in sorted(delta.items()) if n}
        claims_and_dispatch, housekeeping = _split(delta)
        out["es_requests_per_s"] = round(sum(delta.values()) / wall, 3)
        out["es_claim_dispatch_requests_per_s"] = round(claims_and_dispatch / wall, 3)
        out["es_housekeeping_requests_per_s"] = round(housekeeping / wall, 3)
        out["es_requests_by_endpoint"] = delta
    line = f"{block_for:g}s long-polls: server CPU {server_cpu_pct}% of a core"
    if relay is not None:
        line += (
            f", {out['es_requests_per_s']} ES requests/s ({out['es_claim_dispatch_requests_per_s']} claims and "
            f"dispatch, {out['es_housekeeping_requests_per_s']} housekeeping)"
        )
    ctx.log(line)
    return out


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    store = ctx.store(kind, "idle")
    relay: CountingRelay | None = None
    if kind == "elasticsearch":
        assert ctx.es is not None
        relay = await CountingRelay(ctx.es.url, store.es_prefix).start()
        store.es = dataclasses.replace(ctx.es, url=relay.url)  # the server talks to the node through the relay
    server = await ctx.start_server(store, f"{kind}-idle")
    try:
        async with session() as http:
            await _register(http, server.url, p.idle_http_queues)
        phases = {name: await _phase(ctx, kind, server, relay, block_for) for name, block_for in PHASES}
        return {"claims": p.idle_claims, "http_queues": p.idle_http_queues, **phases}
    finally:
        await server.astop()
        if relay is not None:
            assert ctx.es is not None
            store.es = ctx.es
            await relay.close()
        await store.destroy()
