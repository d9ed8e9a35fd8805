"""/tasques: create, get, list, claim, report, done, failed, unclaim."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import TypeAdapter

from tasques.api.access_control import project_of, requires
from tasques.api.errors import error_of
from tasques.api.http import (
    DIGITS,
    KIND,
    QUEUE_NAME,
    RECURRING_ID,
    check_name,
    claim_id,
    json_list,
    json_model,
    read_body,
    task_key,
    worker_id,
)
from tasques.api.keys import TASKS, WORKERS
from tasques.api.routes_workers import seen_worker
from tasques.api.schemas import (
    BulkItem,
    BulkResult,
    Claim,
    DependencyState,
    ErrorBody,
    ErrorDetail,
    Failure,
    NewReport,
    NewTask,
    NewTasks,
    QueueSummary,
    Success,
    TaskList,
    TaskUpdates,
    TaskWithDependencies,
    Timeline,
    UpdateItem,
    UpdateResult,
)
from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.project import Role
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.service.tasks import TaskSpec, WorkerUpdate
from tasques.store.base import TaskFilter

routes = web.RouteTableDef()
TASK_LIST = TypeAdapter(list[Task])
SUMMARY_LIST = TypeAdapter(list[QueueSummary])
DEFAULT_PAGE = 100
# The states the original Tasques counts; others appear in /queues only when non-zero.
_ORIGINAL = frozenset(TaskState) - {TaskState.CANCELLED, TaskState.WAITING}


def _spec(body: NewTask, project: str) -> TaskSpec:
    return TaskSpec(
        project=project,
        queue=body.queue,
        kind=body.kind,
        id=body.id,
        priority=body.priority,
        run_at=body.run_at,
        execution_delay=timedelta(milliseconds=body.execution_delay) if body.execution_delay is not None else None,
        retry_times=body.retry_times,
        processing_timeout=body.processing_timeout,
        args=body.args,
        context=body.context,
        http_request=body.http_request,
        retry_policy=body.retry_policy,
        repeat=body.repeat,
        sensitive=body.sensitive,
        depends_on=tuple(TaskKey(queue=d.queue, id=d.id) for d in body.depends_on or ()),
        on_dependency_failure=body.on_dependency_failure,
    )


@routes.post("/tasques")
@requires(Role.PRODUCER)
async def create_task(request: web.Request) -> web.Response:
    body = await read_body(request, NewTask)
    return json_model(await request.app[TASKS].create(_spec(body, project_of(request))), status=201)


@routes.post("/tasques/bulk")
@requires(Role.PRODUCER)
async def create_tasks(request: web.Request) -> web.Response:
    body = await read_body(request, NewTasks)
    project = project_of(request)
    results = await request.app[TASKS].create_many([_spec(t, project) for t in body.tasks])
    items = [
        BulkItem(status=201, task=r)
        if isinstance(r, Task)
        else BulkItem(status=409, error=ErrorBody(message=str(r), details=[ErrorDetail(field="id", problem="taken")]))
        for r in results
    ]
    return json_model(BulkResult(results=items))


@routes.get("/tasques")
@requires(Role.VIEWER)
async def list_tasks(request: web.Request) -> web.Response:
    q = request.query
    try:
        states = frozenset(TaskState(s) for v in q.getall("state", []) for s in v.split(",") if s)
    except ValueError:
        raise InvalidInput(
            "invalid listing", [FieldProblem("state", f"must be one of {', '.join(s.value for s in TaskState)}")]
        ) from None
    limit_text = q.get("limit", str(DEFAULT_PAGE))
    if not DIGITS.fullmatch(limit_text):
        raise InvalidInput("invalid listing", [FieldProblem("limit", "must be a positive whole number")])
    names = {"queue": QUEUE_NAME, "kind": KIND, "recurring_task_id": RECURRING_ID}
    given = {f: check_name(q[f], adapter, f) for f, adapter in names.items() if f in q}
    flt = TaskFilter(
        project=project_of(request),
        queue=given.get("queue"),
        states=states,
        kind=given.get("kind"),
        recurring_task_id=given.get("recurring_task_id"),
    )
    page = await request.app[TASKS].list_tasks(flt, int(limit_text), q.get("cursor"))
    return json_model(TaskList(tasks=page.tasks, next_cursor=page.next_cursor))


@routes.get("/tasques/{queue}/{id}")
@requires(Role.VIEWER)
async def get_task(request: web.Request) -> web.Response:
    service = request.app[TASKS]
    task = await service.get(*task_key(request))
    if not task.depends_on:
        return json_model(task)
    states = await service.dependency_states(task.project, task.depends_on)
    dependencies = [
        DependencyState(queue=d.queue, id=d.id, state=states[d] if states[d] is not None else "missing")
        for d in task.depends_on
    ]
    return json_model(TaskWithDependencies.model_validate({**dict(task), "dependencies": dependencies}))


@routes.get("/tasques/timeline/{queue}/{id}")
@requires(Role.VIEWER)
async def get_timeline(request: web.Request) -> web.Response:
    return json_model(Timeline(attempts=await request.app[TASKS].timeline(*task_key(request))))


@routes.post("/tasques/claims")
@requires(Role.WORKER)
async def claim_tasks(request: web.Request) -> web.Response:
    worker_id(request)  # checked before the body, as ever
    body = await read_body(request, Claim)
    service = request.app[TASKS]
    weights = body.queue_weights
    queues = [*body.queues, *(weights or {})]
    worker, *_ = seen_worker(request, queues)
    project = project_of(request)
    tasks = await request.app[WORKERS].claim(
        project,
        worker,
        lambda stop: service.claim(
            worker, project, body.queues, body.amount, body.block_for, weights=weights, stop=stop
        ),
    )
    if tasks and (request.transport is None or request.transport.is_closing()):
        # The worker hung up during the long poll: hand the tasks back now rather than after their timeout.
        await service.unclaim_all(worker, tasks)
        return web.Response(status=499)
    return json_list(tasks, TASK_LIST)


@routes.delete("/tasques/claims/{queue}/{id}")
@requires(Role.WORKER)
async def unclaim_task(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    return json_model(await request.app[TASKS].unclaim(worker, *task_key(request), claim_id(request)))


@routes.put("/tasques/reports/{queue}/{id}")
@requires(Role.WORKER)
async def report_on_task(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, NewReport, optional=True)
    return json_model(await request.app[TASKS].report(worker, *task_key(request), body.data, claim_id(request)))


@routes.put("/tasques/done/{queue}/{id}")
@requires(Role.WORKER)
async def mark_done(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, Success, optional=True)
    return json_model(await request.app[TASKS].done(worker, *task_key(request), body.data, claim_id(request)))


@routes.put("/tasques/failed/{queue}/{id}")
@requires(Role.WORKER)
async def mark_failed(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, Failure, optional=True)
    return json_model(await request.app[TASKS].fail(worker, *task_key(request), body.data, claim_id(request)))


def _updates(body: TaskUpdates) -> list[WorkerUpdate]:
    return [WorkerUpdate(queue=t.queue, id=t.id, claim_id=t.claim_id, data=t.data) for t in body.tasks]


def _update_result(results: list[Task | Exception]) -> web.Response:
    items = []
    for r in results:
        if isinstance(r, Task):
            items.append(UpdateItem(status=200, task=r))
        else:
            status, error = error_of(r)
            items.append(UpdateItem(status=status, error=error))
    return json_model(UpdateResult(results=items))


# Batches of the four calls above: one store write for the lot, a result per item.
@routes.post("/tasques/reports")
@requires(Role.WORKER)
async def report_on_tasks(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, TaskUpdates)
    return _update_result(await request.app[TASKS].report_many(worker, project_of(request), _updates(body)))


@routes.post("/tasques/done")
@requires(Role.WORKER)
async def mark_many_done(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, TaskUpdates)
    return _update_result(await request.app[TASKS].done_many(worker, project_of(request), _updates(body)))


@routes.post("/tasques/failed")
@requires(Role.WORKER)
async def mark_many_failed(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, TaskUpdates)
    return _update_result(await request.app[TASKS].fail_many(worker, project_of(request), _updates(body)))


@routes.post("/tasques/unclaims")
@requires(Role.WORKER)
async def unclaim_tasks(request: web.Request) -> web.Response:
    worker, *_ = seen_worker(request)
    body = await read_body(request, TaskUpdates)
    return _update_result(await request.app[TASKS].unclaim_many(worker, project_of(request), _updates(body)))


@routes.put("/tasques/cancel/{queue}/{id}")
@requires(Role.PRODUCER)
async def cancel_task(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].cancel(*task_key(request)))


@routes.put("/tasques/run-now/{queue}/{id}")
@requires(Role.PRODUCER)
async def run_task_now(request: web.Request) -> web.Response:
    return json_model(await request.app[TASKS].run_now(*task_key(request)))


@routes.get("/queues")
@requires(Role.VIEWER)
async def list_queues(request: web.Request) -> web.Response:
    counts = await request.app[TASKS].queue_counts(project_of(request))
    summaries = [
        QueueSummary(queue=c.queue, counts={s: n for s in TaskState if (n := c.counts.get(s, 0)) or s in _ORIGINAL})
        for c in counts
    ]
    return json_list(summaries, SUMMARY_LIST)
