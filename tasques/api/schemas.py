"""Request and response bodies. Field names match the original Tasques API exactly.

Responses reuse the domain models (`Task`, `RecurringTask`); requests are defined here because they carry
the wire rules: optional fields, patterns and lengths.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, timedelta
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from tasques.domain.duration import coerce_duration, format_duration
from tasques.domain.http_target import HttpRequest
from tasques.domain.limits import (
    MAX_BATCH_ITEMS,
    MAX_CONCURRENT_DISPATCHES,
    MAX_DEPENDENCIES,
    MAX_DISPATCHES_PER_SECOND,
    MAX_EXECUTION_DELAY_MS,
    MAX_PRIORITY,
    MAX_PROCESSING_TIMEOUT,
    MAX_RETRY_TIMES,
    MAX_SCHEDULE_LENGTH,
    MIN_PRIORITY,
    RUN_AT_MAX,
    RUN_AT_MIN,
    ClaimId,
    Identifier,
    Kind,
    ProcessingTimeout,
    QueueName,
    RecurringId,
    at_most,
)
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.retry import RetryPolicy
from tasques.domain.task import DependencyFailure, Repeat, Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.domain.when import check_run_at, is_go_zero_time, parse_run_at

JsonObject = dict[str, Any]
# RFC 3339 with an explicit offset, stored and returned in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda d: d.astimezone(UTC))]
# A task's first run time: RFC 3339 with an offset, UNIX epoch milliseconds, or e.g. "Dec 12 2012 12:12:12 AM +07:00".
RunAt = Annotated[
    AwareDatetime,
    BeforeValidator(parse_run_at),
    AfterValidator(lambda d: check_run_at(d.astimezone(UTC))),
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


# block_for: any Go duration (an unmodified Go worker may send its MaxInt64); the service clamps it.
BlockFor = Annotated[
    timedelta,
    # Values beyond MAX_DURATION saturate: the service clamps them to its own maximum anyway.
    BeforeValidator(partial(coerce_duration, saturate=True)),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": "A Go-style duration, e.g. `1s`", "examples": ["1s"]}),
]


class _Request(BaseModel):
    # Unknown fields are ignored, as the original server did, so newer clients keep working.
    model_config = ConfigDict(extra="ignore")


class DependencyKey(BaseModel):
    """A task of the same project, in any queue."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName = Field(description="the dependency's queue")
    id: Identifier = Field(description="the dependency's id")


class NewTask(_Request):
    queue: QueueName = Field(description="the queue the task is inserted into")
    kind: Kind = Field(description="the kind of task; roughly a function name")
    id: Identifier | None = Field(
        None, description="optional id for idempotency; a UUID is generated when absent. Reusing one gives 409"
    )
    priority: int = Field(
        0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="higher runs first; default 0; a 32-bit signed integer"
    )
    run_at: RunAt | None = Field(
        None,
        description="when the task may first run; default now. RFC 3339 with an offset, UNIX epoch milliseconds, "
        "or a date with an offset such as `Dec 12 2012 12:12:12 AM +07:00`; from "
        f"{RUN_AT_MIN:%Y-%m-%d} up to (not including) {RUN_AT_MAX:%Y-%m-%d}. Go's zero time "
        "`0001-01-01T00:00:00Z` means now",
    )
    repeat: Repeat | None = Field(None, description="after each success, run again every interval")
    execution_delay: int | None = Field(
        None,
        ge=0,
        le=MAX_EXECUTION_DELAY_MS,
        description=f"run this many milliseconds from now (instead of run_at); at most {MAX_EXECUTION_DELAY_MS:,}",
    )
    retry_times: int | None = Field(
        None,
        ge=0,
        le=MAX_RETRY_TIMES,
        description=f"retries after failure; server default; at most {MAX_RETRY_TIMES:,}",
    )
    processing_timeout: ProcessingTimeout | None = Field(
        None,
        description="how long a worker has to finish or report in; server default; " + at_most(MAX_PROCESSING_TIMEOUT),
    )
    args: JsonObject | None = Field(None, description="arguments for the task")
    context: JsonObject | None = Field(None, description="context for the task")
    http_request: HttpRequest | None = Field(
        None, description="makes this an HTTP-target task: the server's dispatcher sends this request; 2xx is done"
    )
    retry_policy: RetryPolicy | None = Field(
        None, description="how failed attempts are retried; the queue's default, else the server's backoff"
    )
    sensitive: bool = Field(
        False,
        description="encrypt args and context at rest (HTTP headers, bodies and TLS keys always are); refused "
        "with 400 by a server without encryption keys. Responses show them in plaintext",
    )
    depends_on: list[DependencyKey] | None = Field(
        None,
        max_length=MAX_DEPENDENCIES,
        description=f"tasks of the project (any queue; in a bulk, also other items) that must finish first; at most "
        f"{MAX_DEPENDENCIES:,}, repeats count once. Until then the task is `waiting` and never claimed; unknown "
        "ones and cycles are a 400",
    )
    on_dependency_failure: DependencyFailure = Field(
        DependencyFailure.CANCEL,
        description="when a dependency ends dead or cancelled (or is deleted): `cancel` this task (the reason "
        "is recorded in `cancel_reason`) or `run` it anyway",
    )

    @model_validator(mode="before")
    @classmethod
    def _go_zero_time_is_now(cls, data: Any) -> Any:
        # The original Go client sends its zero time when no run_at was set; the original server read it as now.
        if isinstance(data, dict) and is_go_zero_time(data.get("run_at")):
            return {**data, "run_at": None}
        return data


class NewTasks(_Request):
    tasks: list[NewTask] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="1 to 1,000 tasks; if any is invalid, none is created"
    )


class BulkItem(BaseModel):
    status: int = Field(description="201 if created, 409 if its id was taken", examples=[201])
    task: Task | None = Field(None, description="the created task")
    error: ErrorBody | None = Field(None, description="why this one was not created")


class BulkResult(BaseModel):
    results: list[BulkItem] = Field(description="one result per requested task, in request order")


QueueWeight = Annotated[int, Field(ge=1, le=1000)]


class Claim(_Request):
    # Required, as in the original API (generated clients keep a plain list); it may be empty with queue_weights.
    queues: list[QueueName] = Field(
        max_length=100,
        description="the queues to claim from, in claim order (priority, then run_at); may be empty when "
        "queue_weights names some",
    )
    queue_weights: dict[QueueName, QueueWeight] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="queue -> weight (1 to 1000): the amount is split among the queues with claimable tasks by "
        "weight, and over successive claims each gets its share (none is starved); a queue's unused share goes "
        "to the others. Queues also listed in `queues` (or only there) weigh 1 unless named here; at most 100 "
        "queues in all",
        examples=[{"urgent": 3, "bulk": 1}],
    )
    amount: int = Field(
        1,
        description="the most tasks to claim, at least 1; more than the server's maximum claims that many",
        examples=[1],
    )
    block_for: BlockFor | None = Field(
        None,
        description="how long to wait when nothing is claimable, at least 0s; server default; longer than the "
        "server's maximum waits that long",
        examples=["1s"],
    )


class NewReport(_Request):
    data: JsonObject | None = Field(None, description="optional report data")


class Success(_Request):
    data: JsonObject | None = Field(None, description="optional result data")


class Failure(_Request):
    data: JsonObject | None = Field(None, description="optional failure data")


class TaskUpdate(_Request):
    queue: QueueName = Field(description="the task's queue")
    id: Identifier = Field(description="the task's id")
    claim_id: ClaimId | None = Field(
        None, description="the claim's `last_claimed.claim_id`; absent: only the worker is checked"
    )
    data: JsonObject | None = Field(None, description="report, result or failure data (ignored by unclaims)")


class TaskUpdates(_Request):
    tasks: list[TaskUpdate] = Field(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description=f"1 to {MAX_BATCH_ITEMS:,} tasks, applied in order (a task named twice: one after the other)",
    )


class UpdateItem(BaseModel):
    status: int = Field(
        description="200 if applied; else what the single call would answer: 403 claimed by another worker, "
        "404 no such task, 409 not claimed or another claim, 503 the store refused it",
        examples=[200],
    )
    task: Task | None = Field(None, description="the task as stored now")
    error: ErrorBody | None = Field(None, description="why this one was not applied")


class UpdateResult(BaseModel):
    results: list[UpdateItem] = Field(description="one result per requested task, in request order")


class NewRecurringTask(_Request):
    id: RecurringId = Field(description="user-chosen id; must not collide with an existing one")
    schedule_expression: str = Field(
        min_length=1, max_length=MAX_SCHEDULE_LENGTH, description="5-field cron, @hourly/@daily/…, or @every <duration>"
    )
    task_definition: TaskDefinition = Field(description="the task enqueued at every slot")
    skip_if_outstanding_tasks_exist: bool = Field(
        False, description="skip a slot while a task it enqueued is neither done nor dead"
    )


class RecurringTaskUpdate(_Request):
    schedule_expression: str | None = Field(None, min_length=1, max_length=MAX_SCHEDULE_LENGTH)
    task_definition: TaskDefinition | None = None
    skip_if_outstanding_tasks_exist: bool | None = None


class ErrorDetail(BaseModel):
    field: str = Field(description="the offending field, as a dotted path")
    problem: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    message: str = Field(description="what went wrong")
    details: list[ErrorDetail] = Field(default_factory=list)


class DependencyState(BaseModel):
    queue: str = Field(description="the dependency's queue")
    id: str = Field(description="the dependency's id")
    state: TaskState | Literal["missing"] = Field(description="its state now; `missing` when the task no longer exists")


class TaskWithDependencies(Task):
    """A task, with the states of the tasks it depends on when it has any."""

    dependencies: list[DependencyState] | None = Field(
        None, description="each of `depends_on` with its state now (only on a task with dependencies)"
    )


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
    waiting: int | None = None

    @classmethod
    def every(cls, counts: Mapping[TaskState, int]) -> StateCounts:
        """Every state, zeros included (the newer routes' shape)."""
        return cls(**{state.value: counts.get(state, 0) for state in TaskState})


class QueueSummary(BaseModel):
    queue: str
    counts: StateCounts = Field(description="live (not archived) tasks by state")


class QueueSettingsUpdate(_Request):
    """Only the fields present are changed; send null to clear a limit or the retry policy."""

    max_dispatches_per_second: float | None = Field(
        None,
        gt=0,
        le=MAX_DISPATCHES_PER_SECOND,
        allow_inf_nan=False,
        description=f"per-server dispatch rate limit; at most {MAX_DISPATCHES_PER_SECOND:,.0f}",
    )
    max_concurrent_dispatches: int | None = Field(
        None,
        ge=1,
        le=MAX_CONCURRENT_DISPATCHES,
        description=f"per-server requests in flight at once; at most {MAX_CONCURRENT_DISPATCHES:,}",
    )
    retry_policy: RetryPolicy | None = Field(None, description="default retry policy of the queue's new tasks")


class Timeline(BaseModel):
    attempts: list[Attempt] = Field(description="the task's recorded attempts, oldest first (kept for a retention)")


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    store: str = Field(examples=["sqlite"])


BulkItem.model_rebuild()
UpdateItem.model_rebuild()

__all__ = [
    "BulkItem",
    "BulkResult",
    "Claim",
    "DependencyKey",
    "DependencyState",
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
    "TaskUpdate",
    "TaskUpdates",
    "TaskWithDependencies",
    "Timeline",
    "UpdateItem",
    "UpdateResult",
]
