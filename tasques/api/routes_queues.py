"""/queues/{queue}: settings, pause and resume."""

from __future__ import annotations

from aiohttp import web

from tasques.api.http import QUEUE_NAME, json_model, path_name, read_body
from tasques.api.keys import TASKS
from tasques.api.schemas import QueueSettingsUpdate

routes = web.RouteTableDef()


@routes.get("/queues/{queue}/settings")
async def get_settings(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.get(path_name(request, "queue", QUEUE_NAME)))


@routes.put("/queues/{queue}/settings")
async def update_settings(request: web.Request) -> web.Response:
    body = await read_body(request, QueueSettingsUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    queues = request.app[TASKS].queues
    return json_model(await queues.update(path_name(request, "queue", QUEUE_NAME), **changes))


@routes.put("/queues/{queue}/pause")
async def pause(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.pause(path_name(request, "queue", QUEUE_NAME)))


@routes.put("/queues/{queue}/resume")
async def resume(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].queues.resume(path_name(request, "queue", QUEUE_NAME)))
