"""`tasques dummy-webhook`: a target for trying HTTP-target tasks out.

It logs every request body, counts requests, answers 500 to every 7th and every 11th request (so retries can
be seen), and otherwise 200 with `{"request": n}`, after a random delay (100-500 ms by default).
`GET /stats` answers the count without counting itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger("tasques.dummy_webhook")


@dataclass
class WebhookState:
    min_delay_ms: float = 100
    max_delay_ms: float = 500
    count: int = 0
    failed: list[int] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)


def fails(n: int) -> bool:
    return n % 7 == 0 or n % 11 == 0


def build_webhook_app(state: WebhookState) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state.count += 1
        n = state.count
        log.info("request %d: %s %s %s", n, request.method, request.path_qs, body.decode("utf-8", "replace"))
        await asyncio.sleep(state.rng.uniform(state.min_delay_ms, state.max_delay_ms) / 1000)
        if fails(n):
            state.failed.append(n)
            return web.json_response({"request": n, "error": "scheduled failure"}, status=500)
        return web.json_response({"request": n})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"count": state.count, "failed": state.failed})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_route("*", "/{tail:.*}", hook)
    return app


async def run_webhook(host: str, port: int, state: WebhookState) -> None:
    runner = web.AppRunner(build_webhook_app(state))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("dummy webhook on http://%s:%d", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
