"""/batches: create many tasks under one batch id, and read its counts and completion."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from tasques.api.access_control import project_of, requires
from tasques.api.http import json_model, path_name, read_body
from tasques.api.keys import BATCHES
from tasques.api.routes_tasks import _spec
from tasques.api.schemas_batches import BatchCounts, BatchStatus, NewBatch
from tasques.domain.batch import BatchId
from tasques.domain.project import Role
from tasques.service.batches import BatchView

routes = web.RouteTableDef()
BATCH_ID: TypeAdapter[str] = TypeAdapter(BatchId)


def status_of(view: BatchView) -> BatchStatus:
    b = view.batch
    return BatchStatus(
        id=b.id,
        total=b.total,
        counts=BatchCounts.model_validate({s.value: n for s, n in view.counts.items()}),
        finished=view.finished,
        deleted=b.deleted,
        completed=b.completed_at is not None,
        completed_at=b.completed_at,
        on_complete=b.on_complete,
        callback=b.callback,
        failed_at=b.failed_at,
        failure=b.failure,
        created_at=b.metadata.created_at,
    )


@routes.post("/batches")
@requires(Role.PRODUCER)
async def create_batch(request: web.Request) -> web.Response:
    body = await read_body(request, NewBatch)
    project = project_of(request)
    specs = [_spec(t, project) for t in body.tasks]
    view = await request.app[BATCHES].create(project, body.id, specs, body.on_complete)
    return json_model(status_of(view), status=201)


@routes.get("/batches/{id}")
@requires(Role.VIEWER)
async def get_batch(request: web.Request) -> web.Response:
    batch_id = path_name(request, "id", BATCH_ID)
    return json_model(status_of(await request.app[BATCHES].get(project_of(request), batch_id)))
