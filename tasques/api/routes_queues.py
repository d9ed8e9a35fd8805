"""/queues/{queue}: settings, pause and resume."""

from __future__ import annotations

from aiohttp import web

from tasques.api.access_control import requires
from tasques.api.http import json_model, queue_ref, read_body
from tasques.api.keys import TASKS
from tasques.api.schemas import QueueSettingsUpdate
from tasques.domain.project import Role

routes = web.RouteTableDef()


@routes.get("/queues/{queue}/settings")
@requires(Role.VIEWER)
async def get_settings(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.get(queue_ref(request)))


@routes.put("/queues/{queue}/settings")
@requires(Role.PRODUCER)
async def update_settings(request: web.Request) -> web.Response:
    body = await read_body(request, QueueSettingsUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    queues = request.app[TASKS].queues
    return json_model(await queues.update(queue_ref(request), **changes))


@routes.put("/queues/{queue}/pause")
@requires(Role.PRODUCER)
async def pause(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.pause(queue_ref(request)))


@routes.put("/queues/{queue}/resume")
@requires(Role.PRODUCER)
async def resume(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.resume(queue_ref(request)))
