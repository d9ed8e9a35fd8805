"""/recurring_tasques: CRUD for recurring tasks."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from tasques.api.access_control import project_of, requires
from tasques.api.http import RECURRING_ID, json_list, json_model, path_name, read_body
from tasques.api.keys import RECURRING
from tasques.api.schemas import NewRecurringTask, RecurringTaskUpdate
from tasques.domain.project import Role
from tasques.domain.recurring import RecurringTask

routes = web.RouteTableDef()
RECURRING_LIST = TypeAdapter(list[RecurringTask])


@routes.post("/recurring_tasques")
@requires(Role.PRODUCER)
async def create_recurring(request: web.Request) -> web.Response:
    body = await read_body(request, NewRecurringTask)
    created = await request.app[RECURRING].create(
        project=project_of(request),
        task_id=body.id,
        schedule_expression=body.schedule_expression,
        task_definition=body.task_definition,
        skip_if_outstanding_tasks_exist=body.skip_if_outstanding_tasks_exist,
    )
    return json_model(created, status=201)


@routes.get("/recurring_tasques")
@requires(Role.VIEWER)
async def list_recurring(request: web.Request) -> web.Response:
    return json_list(await request.app[RECURRING].list_all(project_of(request)), RECURRING_LIST)


@routes.get("/recurring_tasques/{id}")
@requires(Role.VIEWER)
async def get_recurring(request: web.Request) -> web.Response:
    return json_model(await request.app[RECURRING].get(project_of(request), path_name(request, "id", RECURRING_ID)))


@routes.put("/recurring_tasques/{id}")
@requires(Role.PRODUCER)
async def update_recurring(request: web.Request) -> web.Response:
    body = await read_body(request, RecurringTaskUpdate)
    updated = await request.app[RECURRING].update(
        project_of(request),
        path_name(request, "id", RECURRING_ID),
        schedule_expression=body.schedule_expression,
        task_definition=body.task_definition,
        skip_if_outstanding_tasks_exist=body.skip_if_outstanding_tasks_exist,
    )
    return json_model(updated)


@routes.delete("/recurring_tasques/{id}")
@requires(Role.PRODUCER)
async def delete_recurring(request: web.Request) -> web.Response:
    return json_model(await request.app[RECURRING].delete(project_of(request), path_name(request, "id", RECURRING_ID)))
