"""aiohttp application factory. Dependencies arrive as arguments; nothing is global."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tasques.api import routes_queues, routes_recurring, routes_tasks
from tasques.api.access_control import ANONYMOUS, OPEN_PATHS, Principal, required_role, requires, set_principal
from tasques.api.auth import basic_auth_middleware
from tasques.api.docs import add_doc_routes
from tasques.api.errors import error_middleware
from tasques.api.keys import READINESS, RECURRING, STORE_KIND, TASKS
from tasques.api.schemas import Health
from tasques.config import BasicAuthUser
from tasques.domain.errors import Forbidden
from tasques.domain.project import Role, may
from tasques.service.health import Readiness
from tasques.service.recurring import RecurringService
from tasques.service.tasks import TaskService


class MetricsPage(Protocol):
    """What `GET /metrics` serves (tasques.observe.metrics.Metrics)."""

    content_type: str

    async def render(self) -> bytes: ...


METRICS = web.AppKey("metrics", MetricsPage)

# Who sent a request (raises Unauthenticated, Forbidden or RateLimited); see tasques.api.access.
Authenticate = Callable[[web.Request], Awaitable[Principal]]


async def _anonymous(_: web.Request) -> Principal:
    return ANONYMOUS


def _role_of(request: web.Request) -> Role | None:
    """The role the matched route requires; None where no route matched (the handler answers 404/405)."""
    info = request.match_info
    if info.http_exception is not None:
        return None
    if isinstance(info.route.resource, web.StaticResource):
        return Role.VIEWER  # the Swagger UI's assets
    return required_role(info.handler)


def access_middleware(authenticate: Authenticate, open_paths: frozenset[str]) -> Middleware:
    """Every request but `open_paths` names its caller; the route's declared role decides (403 otherwise)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        caller = await authenticate(request)
        role = _role_of(request)
        if role is not None and not may(caller.role, role):
            raise Forbidden(f"the {caller.role} role may not call {request.method} {request.path}")
        set_principal(request, caller)
        return await handler(request)

    return middleware


@requires(Role.VIEWER)
async def metrics(request: web.Request) -> web.Response:
    page = request.app[METRICS]
    return web.Response(body=await page.render(), headers={"Content-Type": page.content_type})


@requires(Role.VIEWER)
async def health(request: web.Request) -> web.Response:
    body = Health(status="ok", store=request.app[STORE_KIND])
    return web.Response(body=body.model_dump_json(), content_type="application/json")


@requires(Role.VIEWER)
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
    authenticate: Authenticate = _anonymous,
    metrics_open: bool = False,
) -> web.Application:
    """`metrics_page`: served at `GET /metrics` (behind auth like the API unless `metrics_open`); `observers`:
    middlewares that see every request first (metrics, traces), outermost first; `authenticate`: names the
    caller of every request but `/health` and `/ready` (everyone is an admin of `default` when omitted)."""
    open_paths = OPEN_PATHS | ({"/metrics"} if metrics_open else set())
    middlewares: list[Middleware] = [error_middleware, access_middleware(authenticate, frozenset(open_paths))]
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
