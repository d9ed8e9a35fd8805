"""Request and response bodies. Field names match the original Tasques API exactly.

Responses reuse the domain models (`Task`, `RecurringTask`); requests are defined here because they carry
the wire rules: optional fields, patterns and lengths.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from tasques.domain.duration import Duration, PositiveDuration
from tasques.domain.http_target import HttpRequest
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.retry import RetryPolicy
from tasques.domain.task import Repeat, Task
from tasques.domain.timeline import Attempt
from tasques.domain.when import parse_run_at

# Queue names and ids appear as URL path segments, so they exclude '/', '?', '#', '%' and whitespace.
QueueName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:~+=-]+$", examples=["run-later"])
]
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:@~+=-]+$")]
Kind = Annotated[str, Field(min_length=1, max_length=200, examples=["sayHello"])]
JsonObject = dict[str, Any]
# RFC 3339 with an explicit offset, stored and returned in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda d: d.astimezone(UTC))]
# A task's first run time: RFC 3339 with an offset, UNIX epoch milliseconds, or e.g. "Dec 12 2012 12:12:12 AM +07:00".
RunAt = Annotated[
    AwareDatetime,
    BeforeValidator(parse_run_at),
    AfterValidator(lambda d: d.astimezone(UTC)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "examples": ["Dec 12 2012 12:12:12 AM +07:00"]},
                {"type": "integer", "description": "UNIX epoch milliseconds"},
            ]
        },
        mode="validation",
    ),
]


class _Request(BaseModel):
    # Unknown fields are ignored, as the original server did, so newer clients keep working.
    model_config = ConfigDict(extra="ignore")


class NewTask(_Request):
    queue: QueueName = Field(description="the queue the task is inserted into")
    kind: Kind = Field(description="the kind of task; roughly a function name")
    id: Identifier | None = Field(
        None, description="optional id for idempotency; a UUID is generated when absent. Reusing one gives 409"
    )
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1, description="higher runs first; default 0")
    run_at: RunAt | None = Field(
        None,
        description="when the task may first run; default now. RFC 3339 with an offset, UNIX epoch milliseconds, "
        "or a date with an offset such as `Dec 12 2012 12:12:12 AM +07:00`",
    )
    repeat: Repeat | None = Field(None, description="after each success, run again every interval")
    execution_delay: int | None = Field(
        None, ge=0, le=10 * 366 * 86_400_000, description="run this many milliseconds from now (instead of run_at)"
    )
    retry_times: int | None = Field(None, ge=0, le=1_000_000, description="retries after failure; server default")
    processing_timeout: PositiveDuration | None = Field(
        None, description="how long a worker has to finish or report in; server default"
    )
    args: JsonObject | None = Field(None, description="arguments for the task")
    context: JsonObject | None = Field(None, description="context for the task")
    http_request: HttpRequest | None = Field(
        None, description="makes this an HTTP-target task: the server's dispatcher sends this request; 2xx is done"
    )
    retry_policy: RetryPolicy | None = Field(
        None, description="how failed attempts are retried; the queue's default, else the server's backoff"
    )


class NewTasks(_Request):
    tasks: list[NewTask] = Field(
        min_length=1, max_length=1000, description="1 to 1,000 tasks; if any is invalid, none is created"
    )


class BulkItem(BaseModel):
    status: int = Field(description="201 if created, 409 if its id was taken", examples=[201])
    task: Task | None = Field(None, description="the created task")
    error: ErrorBody | None = Field(None, description="why this one was not created")


class BulkResult(BaseModel):
    results: list[BulkItem] = Field(description="one result per requested task, in request order")


class Claim(_Request):
    queues: list[QueueName] = Field(min_length=1, max_length=100, description="the queues to claim from")
    amount: int = Field(1, description="the most tasks to claim", examples=[1])
    block_for: Duration | None = Field(
        None, description="how long to wait when nothing is claimable; server default", examples=["1s"]
    )


class NewReport(_Request):
    data: JsonObject | None = Field(None, description="optional report data")


class Success(_Request):
    data: JsonObject | None = Field(None, description="optional result data")


class Failure(_Request):
    data: JsonObject | None = Field(None, description="optional failure data")


class NewRecurringTask(_Request):
    id: Identifier = Field(description="user-chosen id; must not collide with an existing one")
    schedule_expression: str = Field(
        min_length=1, max_length=200, description="5-field cron, @hourly/@daily/…, or @every <duration>"
    )
    task_definition: TaskDefinition = Field(description="the task enqueued at every slot")
    skip_if_outstanding_tasks_exist: bool = Field(
        False, description="skip a slot while a task it enqueued is neither done nor dead"
    )


class RecurringTaskUpdate(_Request):
    schedule_expression: str | None = Field(None, min_length=1, max_length=200)
    task_definition: TaskDefinition | None = None
    skip_if_outstanding_tasks_exist: bool | None = None


class ErrorDetail(BaseModel):
    field: str = Field(description="the offending field, as a dotted path")
    problem: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    message: str = Field(description="what went wrong")
    details: list[ErrorDetail] = Field(default_factory=list)


class TaskList(BaseModel):
    tasks: list[Task]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; absent on the last")


class StateCounts(BaseModel):
    queued: int = 0
    claimed: int = 0
    failed: int = 0
    done: int = 0
    dead: int = 0
    # Not in the original Tasques: shown only when non-zero, so the original's five-state shape is unchanged.
    cancelled: int | None = None


class QueueSummary(BaseModel):
    queue: str
    counts: StateCounts = Field(description="live (not archived) tasks by state")


class QueueSettingsUpdate(_Request):
    """Only the fields present are changed; send null to clear a limit or the retry policy."""

    max_dispatches_per_second: float | None = Field(None, gt=0, description="per-server dispatch rate limit")
    max_concurrent_dispatches: int | None = Field(None, ge=1, description="per-server requests in flight at once")
    retry_policy: RetryPolicy | None = Field(None, description="default retry policy of the queue's new tasks")


class Timeline(BaseModel):
    attempts: list[Attempt] = Field(description="the task's recorded attempts, oldest first (kept for a retention)")


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    store: str = Field(examples=["sqlite"])


BulkItem.model_rebuild()

__all__ = [
    "BulkItem",
    "BulkResult",
    "Claim",
    "ErrorBody",
    "ErrorDetail",
    "Failure",
    "Health",
    "NewRecurringTask",
    "NewReport",
    "NewTask",
    "NewTasks",
    "QueueSettings",
    "QueueSettingsUpdate",
    "QueueSummary",
    "RecurringTask",
    "RecurringTaskUpdate",
    "StateCounts",
    "Success",
    "Task",
    "TaskList",
    "Timeline",
]
