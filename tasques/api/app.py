"""aiohttp application factory. Dependencies arrive as arguments; nothing is global."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from tasques.api import routes_meta
from tasques.api.access_control import OPEN_PATHS, Authenticate, access_middleware, anonymous
from tasques.api.docs import add_doc_routes
from tasques.api.errors import error_middleware
from tasques.api.keys import BATCHES, OVERVIEW, PROJECTS, READINESS, RECURRING, STORE_KIND, TASKS, WORKERS
from tasques.api.route_tables import ROUTE_TABLES
from tasques.api.routes_meta import METRICS, MetricsPage
from tasques.api.routes_workers import mark_draining
from tasques.service.batches import BatchService
from tasques.service.health import Readiness
from tasques.service.overview import OverviewService
from tasques.service.projects import ProjectService
from tasques.service.recurring import RecurringService
from tasques.service.tasks import TaskService
from tasques.service.workers import WorkerRegistry


def build_app(
    tasks: TaskService,
    recurring: RecurringService,
    projects: ProjectService,
    batches: BatchService,
    store_kind: str,
    *,
    readiness: Readiness,
    metrics_page: MetricsPage | None = None,
    observers: Sequence[Middleware] = (),
    authenticate: Authenticate = anonymous,
    metrics_open: bool = False,
    workers: WorkerRegistry,
    overview: OverviewService,
) -> web.Application:
    """`metrics_page`: served at `GET /metrics` (behind auth like the API unless `metrics_open`); `observers`:
    middlewares that see every request first (metrics, traces), outermost first; `authenticate`: names the
    caller of every request but `/health` and `/ready` (everyone is an admin of `default` when omitted); `workers`:
    the worker registry (sightings, drain); `overview`: the dashboard's overview of a project."""
    open_paths = OPEN_PATHS | ({"/metrics"} if metrics_open else set())
    middlewares: list[Middleware] = [*observers, error_middleware, access_middleware(authenticate, open_paths)]
    app = web.Application(middlewares=middlewares, client_max_size=8 * 1024 * 1024)
    app[TASKS] = tasks
    app[RECURRING] = recurring
    app[PROJECTS] = projects
    app[BATCHES] = batches
    app[STORE_KIND] = store_kind
    app[READINESS] = readiness
    app[WORKERS] = workers
    app[OVERVIEW] = overview
    app.on_response_prepare.append(mark_draining)
    if metrics_page is not None:
        app[METRICS] = metrics_page
        app.router.add_get("/metrics", routes_meta.metrics)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    add_doc_routes(app)
    return app
