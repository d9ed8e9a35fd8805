"""What both request middlewares (metrics, traces) need: the route template, and the status a request ended with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

# The route of a request no route matched (404, 405): its path is untrusted and unbounded.
UNMATCHED = "other"


def route_of(request: web.Request) -> str:
    """The matched route's template (`/tasques/{queue}/{id}`), never the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


async def handle(
    request: web.Request,
    handler: Handler,
    ended: Callable[[int | None, web.StreamResponse | None], None],
) -> web.StreamResponse:
    """`handler(request)`, then `ended(status, response)`: the response's status or the HTTP exception's, 500 for
    any other error, None when the client hung up (the handler was cancelled)."""
    status: int | None = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except asyncio.CancelledError:
        status = None
        raise
    finally:
        ended(status, response)
