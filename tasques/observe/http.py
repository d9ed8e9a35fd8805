"""The HTTP side of the metrics: an aiohttp middleware labelling each request by its route template."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tasques.observe.metrics import Metrics

# The label of a request no route matched (404, 405): its path is untrusted and unbounded.
UNMATCHED = "other"
# What a request the client abandoned counts as (nginx's convention).
CLIENT_GONE = 499


def route_of(request: web.Request) -> str:
    """The matched route's template (`/tasques/{queue}/{id}`), never the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def http_metrics_middleware(metrics: Metrics) -> Middleware:
    """Outermost, so it counts what auth and the error mapping answered too."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            metrics.request(request.method, route_of(request), status, time.perf_counter() - started)

    return middleware
