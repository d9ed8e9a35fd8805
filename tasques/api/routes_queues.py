"""/queues/{queue}: inspect, settings, pause and resume, run-now and delete; and dead-letter replay."""

from __future__ import annotations

from aiohttp import web

from tasques.api.access_control import project_of, requires
from tasques.api.http import json_model, queue_ref, read_body
from tasques.api.keys import TASKS
from tasques.api.schemas import QueueSettingsUpdate, StateCounts
from tasques.api.schemas_queues import (
    QueueDeletion,
    QueueDetail,
    ReplayItem,
    ReplayRequest,
    ReplayResult,
    RunNowResult,
)
from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.limits import DEFAULT_REPLAY
from tasques.domain.project import Role
from tasques.domain.task import TaskKey
from tasques.service.replay import DeadFilter

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


@routes.get("/queues/{queue}")
@requires(Role.VIEWER)
async def inspect_queue(request: web.Request) -> web.Response:
    seen = await request.app[TASKS].inspect(queue_ref(request))
    return json_model(
        QueueDetail(
            queue=seen.queue,
            counts=StateCounts.every(seen.counts),
            paused=seen.settings.paused,
            settings=seen.settings,
            oldest_queued_age_seconds=seen.oldest_queued_age.total_seconds(),
            finished_last_minute=seen.finished_last_minute,
        )
    )


@routes.put("/queues/{queue}/run-now")
@requires(Role.PRODUCER)
async def run_queue_now(request: web.Request) -> web.Response:
    ref = queue_ref(request)
    return json_model(RunNowResult(queue=ref.queue, run_now=await request.app[TASKS].run_queue_now(ref)))


@routes.delete("/queues/{queue}")
@requires(Role.PRODUCER)
async def delete_queue(request: web.Request) -> web.Response:
    ref = queue_ref(request)
    history_text = request.query.get("history", "false")
    if history_text not in ("true", "false"):
        raise InvalidInput("the queue was not deleted", [FieldProblem("history", "must be true or false")])
    gone = await request.app[TASKS].delete_queue(ref, request.query.get("confirm"), history_text == "true")
    return json_model(
        QueueDeletion(queue=ref.queue, deleted=gone.deleted, cancelled=gone.cancelled, purged=gone.purged)
    )


@routes.post("/tasques/replay")
@requires(Role.PRODUCER)
async def replay(request: web.Request) -> web.Response:
    body = await read_body(request, ReplayRequest)
    problems = []
    if body.ids is not None and body.has_filter:
        problems.append(FieldProblem("ids", "give ids or a filter (queue, kind, dead_since, dead_until), not both"))
    elif body.ids is None and not body.has_filter:
        problems.append(
            FieldProblem("ids", "give ids, or a filter: at least one of queue, kind, dead_since, dead_until")
        )
    if body.ids is not None and body.limit is not None:
        problems.append(FieldProblem("limit", "only with a filter: ids are replayed all at once"))
    if body.dead_since is not None and body.dead_until is not None and body.dead_since >= body.dead_until:
        problems.append(FieldProblem("dead_until", "must be later than dead_since"))
    if problems:
        raise InvalidInput("invalid replay", problems)
    keys = [TaskKey(queue=k.queue, id=k.id) for k in body.ids] if body.ids is not None else None
    flt = None if keys is not None else DeadFilter(body.queue, body.kind, body.dead_since, body.dead_until)
    outcome = await request.app[TASKS].replay(project_of(request), keys, flt, body.limit or DEFAULT_REPLAY)
    items = [ReplayItem(queue=i.queue, id=i.id, status=i.status.value, task=i.task) for i in outcome.items]
    return json_model(ReplayResult(results=items, more=outcome.more))
