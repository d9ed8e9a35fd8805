"""The dashboard's reads: `GET /overview` (a project's queues, throughput and leader) and
`GET /schedules/preview` (a schedule expression's next fire times)."""

from __future__ import annotations

from aiohttp import web

from tasques.api.access_control import project_of, requires
from tasques.api.http import json_model, query_int
from tasques.api.keys import OVERVIEW, RECURRING
from tasques.api.schemas import StateCounts
from tasques.api.schemas_overview import LeaderInfo, OverviewBody, QueueOverview, SchedulePreview, ServerInfo
from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.limits import DEFAULT_PREVIEW, MAX_PREVIEW, MAX_SCHEDULE_LENGTH
from tasques.domain.project import Role

routes = web.RouteTableDef()


@routes.get("/overview")
@requires(Role.VIEWER)
async def overview(request: web.Request) -> web.Response:
    seen = await request.app[OVERVIEW].overview(project_of(request))
    leader = seen.leader
    body = OverviewBody(
        store=seen.store,
        server=ServerInfo(id=seen.server_id, leader=seen.server_leads),
        leader=LeaderInfo(holder=leader.holder, expires_at=leader.expires_at) if leader is not None else None,
        minutes=seen.minutes,
        queues=[
            QueueOverview(
                queue=q.queue,
                counts=StateCounts.every(q.counts),
                paused=q.paused,
                oldest_queued_age_seconds=q.oldest_queued_age.total_seconds(),
                finished_per_minute=q.finished_per_minute,
            )
            for q in seen.queues
        ],
    )
    return json_model(body, exclude_none=False)


@routes.get("/schedules/preview")
@requires(Role.VIEWER)
async def schedule_preview(request: web.Request) -> web.Response:
    expression = request.query.get("expression")
    if expression is None or not 1 <= len(expression) <= MAX_SCHEDULE_LENGTH:
        problem = f"must be given, 1 to {MAX_SCHEDULE_LENGTH} characters (a recurring task's schedule_expression)"
        raise InvalidInput("invalid preview", [FieldProblem("expression", problem)])
    count = query_int(request, "count", DEFAULT_PREVIEW, 1, MAX_PREVIEW)
    fires = request.app[RECURRING].preview(expression, count)
    return json_model(SchedulePreview(expression=expression, next=fires))
