"""/workers: the worker registry (viewer), drain and resume (producer, as pausing a queue is); and the sightings
and drain header of every worker call.

Drain and resume take the `producer` role, like `PUT /queues/{queue}/pause`: operating what runs where is a
producer's job, not a worker's (a worker could otherwise stop its peers), and not an admin's alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from tasques.api.access_control import project_of, requires
from tasques.api.http import WORKER_DRAINING_HEADER, check_worker_id, json_model, worker_id, worker_info
from tasques.api.keys import WORKERS
from tasques.api.schemas_workers import WorkerInfo, WorkerList
from tasques.domain.project import Role

routes = web.RouteTableDef()

# The (project, worker id) of a worker call, for the drain header on its response.
_CALLER = web.RequestKey("tasques.worker", tuple)


def seen_worker(request: web.Request, queues: Iterable[str] = ()) -> tuple[str, str | None, str | None]:
    """The caller's worker id, version and host, recorded as a sighting (in memory); its response will say
    whether it is draining."""
    who = worker_id(request)
    version, host = worker_info(request)
    project = project_of(request)
    request.app[WORKERS].seen(project, who, queues, version, host)
    request[_CALLER] = (project, who)
    return who, version, host


async def mark_draining(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: tell a draining worker so on every response to it."""
    caller = request.get(_CALLER)
    if caller is not None and request.app[WORKERS].draining(*caller):
        response.headers[WORKER_DRAINING_HEADER] = "true"


def _path_worker(request: web.Request) -> str:
    return check_worker_id(request.match_info["id"], "id")


@routes.get("/workers")
@requires(Role.VIEWER)
async def list_workers(request: web.Request) -> web.Response:
    views = await request.app[WORKERS].list(project_of(request))
    return json_model(WorkerList(workers=[WorkerInfo.of(v) for v in views]))


@routes.put("/workers/{id}/drain")
@requires(Role.PRODUCER)
async def drain_worker(request: web.Request) -> web.Response:
    """Its claims return `[]` (at once, even blocked ones) with `X-TASQUES-WORKER-DRAINING: true`; the tasks it
    holds stay its own to finish. Applies at once on this server, within about a second on the others."""
    view = await request.app[WORKERS].drain(project_of(request), _path_worker(request))
    return json_model(WorkerInfo.of(view))


@routes.put("/workers/{id}/resume")
@requires(Role.PRODUCER)
async def resume_worker(request: web.Request) -> web.Response:
    view = await request.app[WORKERS].resume(project_of(request), _path_worker(request))
    return json_model(WorkerInfo.of(view))
