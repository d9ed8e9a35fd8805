"""The HTTP side of the metrics: an aiohttp middleware labelling each request by its route template."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tasques.observe.metrics import Metrics
from tasques.observe.requests import handle, route_of

# What a request the client abandoned counts as (nginx's convention).
CLIENT_GONE = 499


def http_metrics_middleware(metrics: Metrics) -> Middleware:
    """Outermost, so it counts what auth and the error mapping answered too."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()

        def ended(status: int | None, _: web.StreamResponse | None) -> None:
            elapsed = time.perf_counter() - started
            metrics.request(request.method, route_of(request), CLIENT_GONE if status is None else status, elapsed)

        return await handle(request, handler, ended)

    return middleware
