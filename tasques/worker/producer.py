"""A small async producer client: create tasks (one, many, or a batch with an `on_complete` task) and read batches.

It speaks only HTTP, like the worker client, and raises its errors: `ApiError` (4xx, with the server's message and
the fields it names in `details`) and `ServerUnavailable` (unreachable, 5xx, 408, 429). Build task bodies with
`new_task` (also what `create` sends); `depends_on` is sent as `[{"queue": q, "id": x}, ...]`.

    async with Producer("http://127.0.0.1:8080", token="tq_...") as producer:
        batch = await producer.create_batch(
            [new_task("images", "resize", {"n": i}) for i in range(50)],
            on_complete=new_task("albums", "build", {"album": 7}),
        )
        print((await producer.get_batch(batch.id)).counts)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from yarl import URL

from tasques.worker.client import (
    MAX_BATCH,
    ApiError,
    JsonDict,
    SessionOwner,
    Task,
    basic_auth_header,
    format_duration,
)

MAX_BATCH_TASKS = 5000  # the server's limit of tasks per batch
_TRANSIENT_STATUSES = frozenset({408, 429})
# A dependency: (queue, id), or a mapping with "queue" and "id".
Dependency = tuple[str, str] | Mapping[str, str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskRef(_Model):
    queue: str
    id: str


class BatchStatus(_Model):
    """A batch as `POST /batches` and `GET /batches/{id}` return it."""

    id: str
    total: int
    counts: dict[str, int]
    finished: int
    completed: bool
    completed_at: datetime | None = None
    on_complete: JsonDict | None = None
    callback: TaskRef | None = None
    failed_at: datetime | None = None
    failure: str | None = None
    created_at: datetime | None = None


def new_task(
    queue: str,
    kind: str,
    args: JsonDict | None = None,
    *,
    id: str | None = None,
    depends_on: Sequence[Dependency] | None = None,
    on_dependency_failure: str | None = None,
    **options: Any,
) -> JsonDict:
    """The JSON body of a task to create. `options` are the other fields of `POST /tasques` (priority, run_at,
    execution_delay, retry_times, processing_timeout, context, http_request, retry_policy, repeat, sensitive);
    datetimes are sent as RFC 3339 and timedeltas as durations. Fields left None are not sent."""
    body: JsonDict = {"queue": queue, "kind": kind}
    if args is not None:
        body["args"] = args
    if id is not None:
        body["id"] = id
    if depends_on is not None:
        body["depends_on"] = [_dependency(d) for d in depends_on]
    if on_dependency_failure is not None:
        body["on_dependency_failure"] = on_dependency_failure
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                raise ValueError(f"{name} must be a time-zone-aware datetime")
            value = value.isoformat()
        elif isinstance(value, timedelta):
            value = format_duration(value)
        body[name] = value
    return body


def _dependency(d: Dependency) -> JsonDict:
    if isinstance(d, tuple):
        queue, task_id = d
        return {"queue": queue, "id": task_id}
    return {"queue": d["queue"], "id": d["id"]}


class Producer(SessionOwner):
    """Creates tasks over HTTP; use it as an async context manager. `token` alone is sent as a bearer token;
    with `project`, as basic auth (user: the project; password: the token)."""

    def __init__(
        self, base_url: str, token: str | None = None, project: str | None = None, *, request_timeout: float = 30.0
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self._base = url.with_path(url.path.rstrip("/"))
        self._headers = {"User-Agent": "tasques-producer"}
        if token is not None:
            if not token.strip() or not token.isprintable():
                raise ValueError("token must be printable and not empty")
            self._headers["Authorization"] = (
                basic_auth_header(project, token.strip()) if project is not None else f"Bearer {token.strip()}"
            )
        elif project is not None:
            raise ValueError("a project is given with its token")
        self._timeout = request_timeout

    async def create(
        self,
        queue: str,
        kind: str,
        args: JsonDict | None = None,
        *,
        id: str | None = None,
        depends_on: Sequence[Dependency] | None = None,
        on_dependency_failure: str | None = None,
        **options: Any,
    ) -> Task:
        """Create one task (`POST /tasques`); see `new_task` for the fields."""
        body = new_task(
            queue, kind, args, id=id, depends_on=depends_on, on_dependency_failure=on_dependency_failure, **options
        )
        return Task.model_validate(await self._call("POST", ("tasques",), body))

    async def create_many(self, tasks: Sequence[JsonDict]) -> list[Task | ApiError]:
        """Create tasks with `POST /tasques/bulk`, MAX_BATCH per request: one slot per task, the created task or
        why it was not (e.g. 409, its id taken). An invalid task raises `ApiError` for its request, which then
        creates nothing; requests before it stay created."""
        out: list[Task | ApiError] = []
        for start in range(0, len(tasks), MAX_BATCH):
            raw = await self._call("POST", ("tasques", "bulk"), {"tasks": list(tasks[start : start + MAX_BATCH])})
            for item in raw["results"]:
                if item.get("status") == 201:
                    out.append(Task.model_validate(item["task"]))
                else:
                    error = item.get("error") or {}
                    out.append(ApiError(int(item["status"]), str(error.get("message")), error.get("details")))
        return out

    async def create_batch(
        self, tasks: Sequence[JsonDict], on_complete: JsonDict | None = None, id: str | None = None
    ) -> BatchStatus:
        """Create a batch (`POST /batches`): up to MAX_BATCH_TASKS tasks, all or none validated. `on_complete` is
        a task definition (`new_task(queue, kind, args, ...)` without id or dependencies), created once every
        task has finished, with `args["batch"] = {"id", "total", "counts"}`."""
        if not 1 <= len(tasks) <= MAX_BATCH_TASKS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_TASKS} tasks, not {len(tasks)}")
        body: JsonDict = {"tasks": list(tasks)}
        if on_complete is not None:
            body["on_complete"] = on_complete
        if id is not None:
            body["id"] = id
        return BatchStatus.model_validate(await self._call("POST", ("batches",), body))

    async def get_batch(self, batch_id: str) -> BatchStatus:
        return BatchStatus.model_validate(await self._call("GET", ("batches", batch_id), None))
