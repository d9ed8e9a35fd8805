"""aiohttp application factory. Dependencies arrive as arguments; nothing is global."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from tasques.api import routes_queues, routes_recurring, routes_tasks
from tasques.api.auth import basic_auth_middleware
from tasques.api.docs import add_doc_routes
from tasques.api.errors import error_middleware
from tasques.api.keys import READINESS, RECURRING, STORE_KIND, TASKS
from tasques.api.schemas import Health
from tasques.config import BasicAuthUser
from tasques.service.health import Readiness
from tasques.service.recurring import RecurringService
from tasques.service.tasks import TaskService


class MetricsPage(Protocol):
    """What `GET /metrics` serves (tasques.observe.metrics.Metrics)."""

    content_type: str

    async def render(self) -> bytes: ...


METRICS = web.AppKey("metrics", MetricsPage)


async def metrics(request: web.Request) -> web.Response:
    page = request.app[METRICS]
    return web.Response(body=await page.render(), headers={"Content-Type": page.content_type})


async def health(request: web.Request) -> web.Response:
    body = Health(status="ok", store=request.app[STORE_KIND])
    return web.Response(body=body.model_dump_json(), content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    """200 only while the store answers; a `StoreUnavailable` becomes the usual 503 with Retry-After."""
    readiness = request.app[READINESS]
    await readiness.check()
    body = Health(status="ready", store=readiness.store_kind)
    return web.Response(body=body.model_dump_json(), content_type="application/json")


def build_app(
    tasks: TaskService,
    recurring: RecurringService,
    store_kind: str,
    basic_auth: list[BasicAuthUser] | None = None,
    *,
    readiness: Readiness,
    metrics_page: MetricsPage | None = None,
    observers: Sequence[Middleware] = (),
) -> web.Application:
    """`metrics_page`: served at `GET /metrics` (behind basic auth like the API); `observers`: middlewares that
    see every request first (metrics, traces), outermost first."""
    middlewares: list[Middleware] = [error_middleware]
    if basic_auth:
        middlewares.insert(0, basic_auth_middleware(basic_auth))
    middlewares[:0] = observers
    app = web.Application(middlewares=middlewares, client_max_size=8 * 1024 * 1024)
    app[TASKS] = tasks
    app[RECURRING] = recurring
    app[STORE_KIND] = store_kind
    app[READINESS] = readiness
    if metrics_page is not None:
        app[METRICS] = metrics_page
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_routes(routes_tasks.routes)
    app.router.add_routes(routes_recurring.routes)
    app.router.add_routes(routes_queues.routes)
    add_doc_routes(app)
    return app
