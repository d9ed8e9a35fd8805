"""/health, /ready and /metrics: what load balancers and Prometheus call."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from tasques.api.access_control import requires
from tasques.api.keys import READINESS, STORE_KIND
from tasques.api.schemas import Health
from tasques.domain.project import Role

routes = web.RouteTableDef()


class MetricsPage(Protocol):
    """What `GET /metrics` serves (tasques.observe.metrics.Metrics)."""

    content_type: str

    async def render(self) -> bytes: ...


METRICS = web.AppKey("metrics", MetricsPage)


@requires(Role.VIEWER)
async def metrics(request: web.Request) -> web.Response:
    """Added to the app only when metrics are on (see `build_app`)."""
    page = request.app[METRICS]
    return web.Response(body=await page.render(), headers={"Content-Type": page.content_type})


@routes.get("/health")
@requires(Role.VIEWER)
async def health(request: web.Request) -> web.Response:
    body = Health(status="ok", store=request.app[STORE_KIND])
    return web.Response(body=body.model_dump_json(), content_type="application/json")


@routes.get("/ready")
@requires(Role.VIEWER)
async def ready(request: web.Request) -> web.Response:
    """200 only while the store answers; a `StoreUnavailable` becomes the usual 503 with Retry-After."""
    readiness = request.app[READINESS]
    await readiness.check()
    body = Health(status="ready", store=readiness.store_kind)
    return web.Response(body=body.model_dump_json(), content_type="application/json")
