"""The OpenAPI 3.1 document, generated from the request/response models and the operation table below.

`openapi.yaml` at the repo root is this document, committed; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from tasques import __version__
from tasques.api import schemas as s
from tasques.api import schemas_batches as sb
from tasques.api import schemas_overview as so
from tasques.api import schemas_projects as sp
from tasques.api import schemas_queues as sq
from tasques.api import schemas_workers as sw
from tasques.api.http import (
    CLAIM_ID_HEADER,
    IDENTIFIER,
    KIND,
    QUEUE_NAME,
    RECURRING_ID,
    WORKER_DRAINING_HEADER,
    WORKER_HOST_HEADER,
    WORKER_ID_HEADER,
    WORKER_ID_MAX_LENGTH,
    WORKER_INFO_MAX_LENGTH,
    WORKER_VERSION_HEADER,
)
from tasques.api.route_tables import route_roles
from tasques.domain.batch import BatchId
from tasques.domain.limits import (
    CLAIM_ID_MAX_LENGTH,
    CLAIM_ID_PATTERN,
    DEFAULT_PREVIEW,
    MAX_PREVIEW,
    MAX_SCHEDULE_LENGTH,
)
from tasques.domain.project import Role

REF = "#/components/schemas/{model}"
TAG_DESCRIPTIONS = {
    "tasks": "Create tasks, then claim, report on and finish them as a worker",
    "recurring-tasks": "Definitions that enqueue a task on a schedule",
    "queues": "Per-queue task counts, settings, pause and resume, run-now and delete",
    "batches": "Many tasks under one batch id: counts by state, and a task enqueued once every one has finished",
    "projects": "Projects (tenants) and their tokens: admin only",
    "workers": "The workers that claim and report, and drain",
    "meta": "Liveness, readiness and server information",
    "dashboard": "What the web dashboard at /ui reads besides the routes above",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: int = 200
    response: type[BaseModel] | None = None
    response_is_list: bool = False
    body: type[BaseModel] | None = None
    body_required: bool = True
    worker: bool = False
    claim: bool = False  # takes the optional claim id header
    errors: dict[int, str] = field(default_factory=dict)
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    uses_store: bool = True  # answers 503 while the store is unavailable
    text: str | None = None  # the media type of a text (not JSON) answer


_TASK_PATH = "{queue}/{id}"
_CLAIMED_ERRORS = {
    400: "Invalid input, the worker header is missing, or the claim id header is malformed",
    403: "The task is claimed by another worker",
    404: "The task does not exist",
    409: "The task is not claimed, or the claim id given is not its current claim's",
}

_BATCH_ERRORS = {
    400: "Invalid input or no worker header: nothing was applied; each problem names its item, e.g. tasks.3.id"
}

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/tasques", "create-task", "Add a new Task", "tasks", 201, s.Task, body=s.NewTask,
              errors={400: "Invalid input", 409: "The id is already in use in that queue"}),
    Operation("post", "/tasques/bulk", "create-tasks", "Add up to 1,000 Tasks in one request", "tasks",
              response=s.BulkResult, body=s.NewTasks,
              errors={400: "Invalid input: nothing was created; each problem names its task, e.g. tasks.3.queue"}),
    Operation("get", "/tasques", "list-tasks", "List Tasks, newest first", "tasks", response=s.TaskList,
              errors={400: "Invalid filter or cursor"},
              query=(("queue", "string", "only this queue"),
                     ("state", "string", "only these states, comma-separated or repeated"),
                     ("kind", "string", "only this kind"),
                     ("recurring_task_id", "string", "only tasks enqueued by this recurring task"),
                     ("limit", "integer", "page size, 1 to 1000; default 100"),
                     ("cursor", "string", "`next_cursor` of the previous page"))),
    Operation("get", f"/tasques/{_TASK_PATH}", "get-existing-task", "Get a Task", "tasks",
              response=s.TaskWithDependencies,
              errors={404: "The task does not exist"}),
    Operation("get", f"/tasques/timeline/{_TASK_PATH}", "get-task-timeline",
              "Get the attempt timeline of an HTTP-target Task", "tasks", response=s.Timeline,
              errors={404: "The task does not exist"}),
    Operation("post", "/tasques/claims", "claim-tasks", "Claim Tasks", "tasks", response=s.Task,
              response_is_list=True, body=s.Claim, worker=True, errors={400: "Invalid input, or no worker header"}),
    Operation("delete", f"/tasques/claims/{_TASK_PATH}", "unclaim-existing-task", "Unclaim a Task", "tasks",
              response=s.Task, worker=True, claim=True, errors=_CLAIMED_ERRORS),
    Operation("put", f"/tasques/reports/{_TASK_PATH}", "report-on-claimed-task", "Report on a Task", "tasks",
              response=s.Task, body=s.NewReport, body_required=False, worker=True, claim=True,
              errors=_CLAIMED_ERRORS),
    Operation("put", f"/tasques/done/{_TASK_PATH}", "mark-claimed-task-done", "Mark a Task as done", "tasks",
              response=s.Task, body=s.Success, body_required=False, worker=True, claim=True,
              errors=_CLAIMED_ERRORS),
    Operation("put", f"/tasques/failed/{_TASK_PATH}", "mark-claimed-task-failed", "Mark a Task as failed",
              "tasks", response=s.Task, body=s.Failure, body_required=False, worker=True, claim=True,
              errors=_CLAIMED_ERRORS),
    Operation("post", "/tasques/reports", "report-on-claimed-tasks", "Report on up to 1,000 Tasks in one request",
              "tasks", response=s.UpdateResult, body=s.TaskUpdates, worker=True, errors=_BATCH_ERRORS),
    Operation("post", "/tasques/done", "mark-claimed-tasks-done", "Mark up to 1,000 Tasks as done in one request",
              "tasks", response=s.UpdateResult, body=s.TaskUpdates, worker=True, errors=_BATCH_ERRORS),
    Operation("post", "/tasques/failed", "mark-claimed-tasks-failed",
              "Mark up to 1,000 Tasks as failed in one request", "tasks", response=s.UpdateResult,
              body=s.TaskUpdates, worker=True, errors=_BATCH_ERRORS),
    Operation("post", "/tasques/unclaims", "unclaim-tasks", "Unclaim up to 1,000 Tasks in one request", "tasks",
              response=s.UpdateResult, body=s.TaskUpdates, worker=True, errors=_BATCH_ERRORS),
    Operation("put", f"/tasques/cancel/{_TASK_PATH}", "cancel-task", "Cancel a Task: it never runs again",
              "tasks", response=s.Task,
              errors={404: "The task does not exist", 409: "The task is already done, dead or cancelled"}),
    Operation("put", f"/tasques/run-now/{_TASK_PATH}", "run-task-now", "Make a queued or failed Task runnable now",
              "tasks", response=s.Task,
              errors={404: "The task does not exist", 409: "The task is not queued or failed"}),
    Operation("post", "/tasques/replay", "replay-dead-tasks",
              "Put dead Tasks (live or archived) back to queued, by ids or by a filter, at most 1,000 per request",
              "tasks", response=sq.ReplayResult, body=sq.ReplayRequest,
              errors={400: "Invalid input: neither or both of ids and a filter, or a bad field (named)"}),
    Operation("get", "/recurring_tasques", "list-existing-recurring-tasks", "List Recurring Tasks",
              "recurring-tasks", response=s.RecurringTask, response_is_list=True),
    Operation("post", "/recurring_tasques", "create-recurring-task", "Add a new Recurring Task",
              "recurring-tasks", 201, s.RecurringTask, body=s.NewRecurringTask,
              errors={400: "Invalid input", 409: "The id is already in use"}),
    Operation("get", "/recurring_tasques/{id}", "get-existing-recurring-task", "Get a Recurring Task",
              "recurring-tasks", response=s.RecurringTask, errors={404: "The recurring task does not exist"}),
    Operation("put", "/recurring_tasques/{id}", "update-existing-recurring-task", "Update a Recurring Task",
              "recurring-tasks", response=s.RecurringTask, body=s.RecurringTaskUpdate,
              errors={400: "Invalid input", 404: "The recurring task does not exist"}),
    Operation("delete", "/recurring_tasques/{id}", "delete-existing-recurring-task", "Delete a Recurring Task",
              "recurring-tasks", response=s.RecurringTask, errors={404: "The recurring task does not exist"}),
    Operation("get", "/queues", "list-queues", "Count each queue's tasks by state", "queues",
              response=s.QueueSummary, response_is_list=True),
    Operation("get", "/queues/{queue}", "inspect-queue",
              "A queue's counts by state, settings, oldest due task's age and tasks finished in the last minute",
              "queues", response=sq.QueueDetail),
    Operation("put", "/queues/{queue}/run-now", "run-queue-now",
              "Make every queued or failed Task of a queue claimable now", "queues", response=sq.RunNowResult),
    Operation("delete", "/queues/{queue}", "delete-queue",
              "Delete a queue's queued, failed and waiting Tasks and cancel its claimed ones (and, with "
              "history=true, remove its finished Tasks, archived ones and their timeline)", "queues",
              response=sq.QueueDeletion,
              errors={400: "`confirm` is missing or is not the queue's name, or `history` is not true or false"},
              query=(("confirm", "string", "required: the queue's name again"),
                     ("history", "boolean", "also remove finished tasks, archived ones and the timeline; "
                                            "default false"))),
    Operation("get", "/queues/{queue}/settings", "get-queue-settings", "Get a queue's settings", "queues",
              response=s.QueueSettings),
    Operation("put", "/queues/{queue}/settings", "update-queue-settings",
              "Change a queue's dispatch limits or default retry policy", "queues", response=s.QueueSettings,
              body=s.QueueSettingsUpdate, errors={400: "Invalid input"}),
    Operation("put", "/queues/{queue}/pause", "pause-queue", "Pause a queue: claims and the dispatcher skip it",
              "queues", response=s.QueueSettings),
    Operation("put", "/queues/{queue}/resume", "resume-queue", "Resume a paused queue", "queues",
              response=s.QueueSettings),
    Operation("post", "/batches", "create-batch", "Add up to 5,000 Tasks under one batch id", "batches", 201,
              sb.BatchStatus, body=sb.NewBatch,
              errors={400: "Invalid input: nothing was created; each problem names its task, e.g. tasks.3.queue",
                      409: "The batch id is taken (nothing was created), or a task id of the batch is taken (the "
                           "tasks before it were created and the batch is marked failed)"}),
    Operation("get", "/batches/{id}", "get-batch", "Get a batch: its tasks counted by state, and its completion",
              "batches", response=sb.BatchStatus, errors={404: "The batch does not exist"}),
    Operation("post", "/projects", "create-project", "Create a project", "projects", 201, sp.ProjectInfo,
              body=sp.NewProject, errors={400: "Invalid input", 409: "The project exists"}),
    Operation("get", "/projects", "list-projects", "List projects", "projects", response=sp.ProjectList),
    Operation("get", "/projects/{project}", "get-project", "Get a project, with its outstanding tasks", "projects",
              response=sp.ProjectInfo, errors={404: "The project does not exist"}),
    Operation("put", "/projects/{project}", "update-project", "Change a project's quota", "projects",
              response=sp.ProjectInfo, body=sp.ProjectUpdate,
              errors={400: "Invalid input", 404: "The project does not exist"}),
    Operation("post", "/projects/{project}/tokens", "issue-token", "Issue a token (its secret is shown once)",
              "projects", 201, sp.IssuedTokenBody, body=sp.NewToken,
              errors={400: "Invalid input", 404: "The project does not exist"}),
    Operation("get", "/projects/{project}/tokens", "list-tokens", "List a project's tokens, without secrets",
              "projects", response=sp.TokenList),
    Operation("delete", "/projects/{project}/tokens/{token_id}", "revoke-token",
              "Revoke a token: refused by every server within seconds", "projects", response=sp.TokenInfo,
              errors={404: "No such token in the project"}),
    Operation("get", "/workers", "list-workers", "List the project's workers: state, queues, claims held",
              "workers", response=sw.WorkerList),
    Operation("put", "/workers/{id}/drain", "drain-worker",
              "Drain a worker: its claims return nothing (at once here, within about a second on other servers); "
              "it finishes the tasks it holds", "workers", response=sw.WorkerInfo,
              errors={404: "No server has seen the worker"}),
    Operation("put", "/workers/{id}/resume", "resume-worker", "Resume a drained worker", "workers",
              response=sw.WorkerInfo, errors={404: "No server has seen the worker"}),
    Operation("get", "/overview", "get-overview",
              "The caller's project at a glance: each queue's counts, paused flag, oldest due task and tasks "
              "finished per minute (the last 5 minutes), the leader, and the server that answered", "dashboard",
              response=so.OverviewBody),
    Operation("get", "/schedules/preview", "preview-schedule",
              "The next fire times of a recurring schedule expression, as the recurring enqueuer would fire them",
              "dashboard", response=so.SchedulePreview, uses_store=False,
              errors={400: "`expression` is missing or not a valid schedule, or `count` is out of range"},
              query=(("expression", "string", "required: a schedule_expression (cron, a macro, @every <duration>)"),
                     ("count", "integer", f"how many fire times, 1 to {MAX_PREVIEW}; default {DEFAULT_PREVIEW}"))),
    Operation("get", "/health", "health", "Liveness and the active store (never asks the store)", "meta",
              response=s.Health, uses_store=False),
    Operation("get", "/ready", "ready", "Readiness: 200 only while the store answers", "meta", response=s.Health),
    Operation("get", "/metrics", "metrics",
              "Prometheus metrics in the text exposition format (served while metrics.enabled is on)", "meta",
              uses_store=False, text="text/plain"),
)  # fmt: skip


def _name_schema(adapter: TypeAdapter[str]) -> dict[str, Any]:
    schema = adapter.json_schema()
    return {k: schema[k] for k in ("type", "minLength", "maxLength", "pattern") if k in schema}


# Path and query names are validated by the same rules as in bodies; their schemas say so.
_NAME_SCHEMAS = {
    "queue": _name_schema(QUEUE_NAME),
    "id": _name_schema(IDENTIFIER),
    "recurring_id": _name_schema(RECURRING_ID),
    "batch_id": _name_schema(TypeAdapter(BatchId)),
    "kind": _name_schema(KIND),
    "recurring_task_id": _name_schema(RECURRING_ID),
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "expression": {"type": "string", "minLength": 1, "maxLength": MAX_SCHEDULE_LENGTH},
    "count": {"type": "integer", "minimum": 1, "maximum": MAX_PREVIEW},
    "project": {"type": "string", "minLength": 1, "maxLength": 40, "pattern": "^[a-z0-9][a-z0-9_-]*$"},
    "token_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "worker_id": {"type": "string", "minLength": 1, "maxLength": WORKER_ID_MAX_LENGTH},
}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(op: Operation, role: Role | None) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if role is not None:
        # The role the route declares; the roles that may call it are this one and admin (viewer: any role).
        out["x-tasques-role"] = role.value
    params: list[dict[str, Any]] = []
    for name in ("project", "token_id", "queue", "id"):
        if "{" + name + "}" in op.path:
            key = name
            if name == "id" and op.path.startswith("/recurring_tasques"):
                key = "recurring_id"
            elif name == "id" and op.path.startswith("/batches"):
                key = "batch_id"
            elif name == "id" and op.path.startswith("/workers"):
                key = "worker_id"
            params.append({"name": name, "in": "path", "required": True, "schema": _NAME_SCHEMAS[key]})
    if op.worker:
        params.append(
            {"name": WORKER_ID_HEADER, "in": "header", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": WORKER_ID_MAX_LENGTH},
             "description": "id of the worker making the request"}
        )  # fmt: skip
        for header, what in ((WORKER_VERSION_HEADER, "version"), (WORKER_HOST_HEADER, "host")):
            params.append(
                {"name": header, "in": "header", "required": False,
                 "schema": {"type": "string", "maxLength": WORKER_INFO_MAX_LENGTH},
                 "description": f"the worker's {what} (printable), shown by GET /workers"}
            )  # fmt: skip
    if op.claim:
        params.append(
            {"name": CLAIM_ID_HEADER, "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": CLAIM_ID_MAX_LENGTH, "pattern": CLAIM_ID_PATTERN},
             "description": "`last_claimed.claim_id` of the claim this worker holds: a call from an earlier "
                            "attempt (same worker id, older claim) is refused with 409. Without it only the worker "
                            "id is checked"}
        )  # fmt: skip
    for name, typ, desc in op.query:
        schema = _NAME_SCHEMAS.get(name, {"type": typ})
        params.append({"name": name, "in": "query", "required": False, "schema": schema, "description": desc})
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    responses: dict[str, Any] = {}
    if op.response is not None:
        schema = {"type": "array", "items": _ref(op.response)} if op.response_is_list else _ref(op.response)
        responses[str(op.ok)] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        if op.worker:
            responses[str(op.ok)]["headers"] = {
                WORKER_DRAINING_HEADER: {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "the worker is put to drain: claim no more, finish the tasks held, exit",
                }
            }
    if op.text is not None:
        responses[str(op.ok)] = {"description": "OK", "content": {op.text: {"schema": {"type": "string"}}}}
    error = {"application/json": {"schema": _ref(s.ErrorBody)}}
    for status, desc in sorted(op.errors.items()):
        responses[str(status)] = {"description": desc, "content": error}
    if op.uses_store:
        responses["503"] = {
            "description": "The store is unavailable or too slow; retry after the `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
            "content": error,
        }
    if op.path not in {"/health", "/ready"}:
        responses.setdefault("401", {"description": "Auth is on and the credentials are missing or wrong",
                                     "content": error})  # fmt: skip
        responses.setdefault("403", {"description": "The token's role or networks do not allow this call",
                                     "content": error})  # fmt: skip
        responses.setdefault("429", {"description": "The token's rate limit (see `Retry-After`) or the project's "
                                     "quota of outstanding tasks is exceeded", "content": error})  # fmt: skip
    out["responses"] = dict(sorted(responses.items()))
    return out


def build_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [s.ErrorBody]
    for op in OPERATIONS:
        models.extend(m for m in (op.body, op.response) if m is not None)
    unique = list(dict.fromkeys(models))
    _, defs = models_json_schema(
        [(m, "validation" if m in {op.body for op in OPERATIONS} else "serialization") for m in unique],
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    roles = route_roles()
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, roles.get((op.method, op.path)))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tasques API",
            "version": __version__,
            "description": "A durable task server. Wire-compatible with the original Go Tasques.",
            "license": {"name": "Apache 2.0", "identifier": "Apache-2.0"},
        },
        # The API is served from the root of whatever host serves this document.
        "servers": [{"url": "/"}],
        "tags": [{"name": t, "description": TAG_DESCRIPTIONS[t]} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(defs.get("$defs", {}).items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "a `tq_` token or a JWT"},
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "user: the project; password: one of its tokens",
                },
            },
        },
        # Auth is optional: an empty requirement lets clients call a server that has none configured.
        "security": [{}, {"bearerAuth": []}, {"basicAuth": []}],
    }


class _NoAliasDumper(yaml.SafeDumper):
    # Shared sub-dicts would otherwise become YAML anchors, which some generators mishandle.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=120)
