"""The Task model and its legal transitions.

Every transition is a pure function of the task, the acting worker and the time it is given; it returns a
new Task or raises a domain error. Stores persist the result conditionally on `metadata.version`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.duration import Duration
from tasques.domain.errors import ClaimMismatch, NotClaimed, NotOwnedByWorker
from tasques.domain.horizon import later
from tasques.domain.http_target import HttpRequest, TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT, MAX_REPEAT_INTERVAL, MAX_REPEAT_TIMES, RepeatInterval, at_most
from tasques.domain.ref import QueueRef
from tasques.domain.retry import BackoffPolicy, RetryPolicy

JsonObj = dict[str, Any]


class TaskState(StrEnum):
    # Not claimable until every task it depends on has finished (see domain/dependencies.py).
    WAITING = "waiting"
    QUEUED = "queued"
    CLAIMED = "claimed"
    FAILED = "failed"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


# The worker id on the claim record of a task the server gave up on before any worker had claimed it.
GIVEN_UP_BY = "tasques"

CLAIMABLE_STATES = frozenset({TaskState.QUEUED, TaskState.FAILED})
# Terminal: never run again. Archived after `archive_older_than`, like done and dead.
FINISHED_STATES = frozenset({TaskState.DONE, TaskState.DEAD, TaskState.CANCELLED})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskKey(_Frozen):
    """A task of the same project: its queue and id (what `depends_on` lists)."""

    queue: str = Field(description="the task's queue")
    id: str = Field(description="the task's id")


class DependencyFailure(StrEnum):
    """What a waiting task does when one of its dependencies ends dead or cancelled (or is deleted)."""

    CANCEL = "cancel"
    RUN = "run"


class Version(_Frozen):
    """Optimistic-concurrency token: Elasticsearch's seq_no/primary_term; SQLite uses a counter and term 1."""

    seq_num: int = Field(0, description="sequence number of the last write")
    primary_term: int = Field(1, description="primary term of the last write")


class Metadata(_Frozen):
    created_at: datetime = Field(description="when the record was created")
    modified_at: datetime = Field(description="when the record was last modified")
    version: Version = Field(default_factory=Version, description="versioning information")


class Report(_Frozen):
    at: datetime = Field(description="when the report was filed")
    data: JsonObj | None = Field(None, description="optional report data")


class Result(_Frozen):
    """The outcome of a claim: exactly one of `success` or `failure` is set."""

    at: datetime = Field(description="when the result was produced")
    failure: JsonObj | None = Field(None, description="failure data")
    success: JsonObj | None = Field(None, description="success data")


class LastClaimed(_Frozen):
    worker_id: str = Field(description="the worker that claimed the task")
    claim_id: str | None = Field(
        None,
        description="identifies this claim; send it as X-TASQUES-CLAIM-ID on report, done, failed and unclaim "
        "(absent on claims made before claim ids existed)",
    )
    claimed_at: datetime = Field(description="when the claim was made")
    times_out_at: datetime = Field(description="when the claim times out unless the worker reports or finishes")
    last_report: Report | None = Field(None, description="the last report filed by the claiming worker")
    result: Result | None = Field(None, description="the processing result")


class Repeat(_Frozen):
    """Run again `interval` after each success: `times` more times, or until cancelled when absent."""

    interval: RepeatInterval = Field(
        description=f"wait after a success before the next run; {at_most(MAX_REPEAT_INTERVAL)}"
    )
    times: int | None = Field(None, ge=1, le=MAX_REPEAT_TIMES, description="how many more runs; forever if absent")


class NewTask(_Frozen):
    """A task to create, with every default already resolved."""

    queue: str
    kind: str
    id: str
    priority: int = 0
    run_at: datetime
    retry_times: int
    processing_timeout: Duration
    args: JsonObj | None = None
    context: JsonObj | None = None
    recurring_task_id: str | None = None
    http_request: HttpRequest | None = None
    retry_policy: RetryPolicy | None = None
    repeat: Repeat | None = None
    project: str = DEFAULT_PROJECT
    sensitive: bool = False
    depends_on: tuple[TaskKey, ...] = ()
    on_dependency_failure: DependencyFailure = DependencyFailure.CANCEL
    batch_id: str | None = None
    # Created waiting: some dependency had not finished when the creation checked.
    waiting: bool = False


class Task(_Frozen):
    id: str = Field(description="unique identifier of the task within its queue")
    queue: str = Field(description="the queue the task is in", examples=["run-later"])
    kind: str = Field(description="the kind of task; roughly a function name", examples=["sayHello"])
    priority: int = Field(description="higher runs first")
    run_at: datetime = Field(description="when the task may next run")
    args: JsonObj | None = Field(None, description="arguments for the task")
    context: JsonObj | None = Field(None, description="context for the task")
    state: TaskState = Field(description="the state of the task")
    retry_times: int = Field(description="how many times the task is retried after failing")
    attempted: int = Field(description="how many times the task has been claimed")
    processing_timeout: Duration = Field(description="how long a worker has to finish or report in")
    last_enqueued_at: datetime = Field(description="when the task was last enqueued")
    recurring_task_id: str | None = Field(None, description="set when a recurring task enqueued this one")
    last_claimed: LastClaimed | None = Field(None, description="the last claim on the task")
    http_request: HttpRequest | None = Field(None, description="the request the dispatcher sends (http target)")
    retry_policy: RetryPolicy | None = Field(
        None, description="how failed attempts are retried; the server's exponential backoff when absent"
    )
    first_attempted_at: datetime | None = Field(None, description="when the task was first claimed")
    repeat: Repeat | None = Field(None, description="run again after each success")
    repeated: int | None = Field(None, description="how many times a repeating task has succeeded so far")
    project: str = Field(DEFAULT_PROJECT, description="the project (tenant) the task belongs to")
    sensitive: bool = Field(False, description="args and context are encrypted at rest")
    depends_on: list[TaskKey] | None = Field(
        None, description="tasks of the project that must finish first; the task is `waiting` until they have"
    )
    on_dependency_failure: DependencyFailure | None = Field(
        None, description="when a dependency ends dead or cancelled: cancel this task (the default) or run it anyway"
    )
    batch_id: str | None = Field(None, description="the batch the task was created in")
    cancel_reason: str | None = Field(None, description="why the server cancelled the task (e.g. a failed dependency)")
    replayed: int | None = Field(None, description="how many times the task was replayed after it was dead")
    metadata: Metadata

    @classmethod
    def create(cls, new: NewTask, at: datetime) -> Task:
        return cls(
            id=new.id,
            queue=new.queue,
            kind=new.kind,
            priority=new.priority,
            run_at=new.run_at,
            args=new.args,
            context=new.context,
            state=TaskState.WAITING if new.waiting else TaskState.QUEUED,
            retry_times=new.retry_times,
            attempted=0,
            processing_timeout=new.processing_timeout,
            last_enqueued_at=at,
            recurring_task_id=new.recurring_task_id,
            http_request=new.http_request,
            retry_policy=new.retry_policy,
            repeat=new.repeat,
            repeated=0 if new.repeat is not None else None,
            project=new.project,
            sensitive=new.sensitive,
            depends_on=list(new.depends_on) or None,
            on_dependency_failure=new.on_dependency_failure if new.depends_on else None,
            batch_id=new.batch_id,
            metadata=Metadata(created_at=at, modified_at=at),
        )

    @property
    def ref(self) -> QueueRef:
        """The task's queue, in its project."""
        return QueueRef(self.project, self.queue)

    @property
    def target(self) -> TaskTarget:
        """Who runs it: the dispatcher for a task with an HTTP request, pull workers otherwise. Stores index it."""
        return TaskTarget.PULL if self.http_request is None else TaskTarget.HTTP

    @property
    def claimable(self) -> bool:
        return self.state in CLAIMABLE_STATES

    def is_claimable_at(self, at: datetime) -> bool:
        return self.claimable and self.run_at <= at

    def claimed(self, worker_id: str, at: datetime, claim_id: str) -> Task:
        """A new claim; `claim_id` must be unique to it (the service generates one per task per claim)."""
        if not self.claimable:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not claimable")
        claim = LastClaimed(
            worker_id=worker_id, claim_id=claim_id, claimed_at=at, times_out_at=later(at, self.processing_timeout)
        )
        return self._with(
            at,
            state=TaskState.CLAIMED,
            attempted=self.attempted + 1,
            last_claimed=claim,
            first_attempted_at=self.first_attempted_at or at,
        )

    @property
    def claim_id(self) -> str | None:
        """The current (or last) claim's id, which the worker sends back with its calls."""
        return self.last_claimed.claim_id if self.last_claimed is not None else None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def cancelled(self, at: datetime, reason: str | None = None) -> Task:
        """Never run again. A claimed task too: its worker's later done/failed/report are refused."""
        if self.finished:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, it cannot be cancelled")
        return self._with(at, state=TaskState.CANCELLED, cancel_reason=reason)

    def released(self, at: datetime) -> Task:
        """A waiting task whose dependencies have settled: queued, claimable from its `run_at`."""
        if self.state is not TaskState.WAITING:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not waiting")
        return self._with(at, state=TaskState.QUEUED, last_enqueued_at=at)

    def replayed_now(self, at: datetime) -> Task:
        """A dead task back to queued with a fresh attempt budget; its last claim (the failure) stays visible."""
        if self.state is not TaskState.DEAD:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not dead")
        return self._with(
            at,
            state=TaskState.QUEUED,
            run_at=at,
            last_enqueued_at=at,
            attempted=0,
            first_attempted_at=None,
            replayed=(self.replayed or 0) + 1,
        )

    def run_now(self, at: datetime) -> Task:
        """Make a queued or failed task claimable at once."""
        if not self.claimable:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not queued or failed")
        return self._with(at, run_at=at)

    def reported(self, worker_id: str, data: JsonObj | None, at: datetime, claim_id: str | None = None) -> Task:
        claim = self._claim_of(worker_id, claim_id)
        new_claim = claim.model_copy(
            update={"last_report": Report(at=at, data=data), "times_out_at": later(at, self.processing_timeout)}
        )
        return self._with(at, last_claimed=new_claim)

    def done(self, worker_id: str, data: JsonObj | None, at: datetime, claim_id: str | None = None) -> Task:
        claim = self._claim_of(worker_id, claim_id)
        result = Result(at=at, success=data if data is not None else {})
        last = claim.model_copy(update={"result": result})
        repeat, repeated = self.repeat, (self.repeated or 0) + 1
        if repeat is not None and (repeat.times is None or repeated <= repeat.times):
            # Another run: a fresh set of attempts, `interval` from now.
            return self._with(
                at,
                state=TaskState.QUEUED,
                last_claimed=last,
                run_at=later(at, repeat.interval),
                last_enqueued_at=at,
                attempted=0,
                first_attempted_at=None,
                repeated=repeated,
            )
        return self._with(
            at, state=TaskState.DONE, last_claimed=last, repeated=repeated if repeat is not None else None
        )

    def failed(
        self, worker_id: str, data: JsonObj | None, at: datetime, backoff: BackoffPolicy, claim_id: str | None = None
    ) -> Task:
        claim = self._claim_of(worker_id, claim_id)
        return self._failed_attempt(claim, data if data is not None else {}, at, backoff)

    def failed_finally(self, worker_id: str, data: JsonObj, at: datetime, claim_id: str | None = None) -> Task:
        """A failed attempt that can never succeed (e.g. a refused destination): dead, whatever the retries."""
        return self._dead(self._claim_of(worker_id, claim_id), data, at)

    def timed_out(self, at: datetime, backoff: BackoffPolicy) -> Task:
        """The claim's worker went silent past `times_out_at`: a failed attempt, with the reason recorded."""
        claim = self.last_claimed
        if self.state is not TaskState.CLAIMED or claim is None:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not claimed")
        if claim.times_out_at > at:
            raise NotClaimed(f"task {self.id} in queue {self.queue} does not time out until {claim.times_out_at}")
        reason = {
            "reason": "processing timed out",
            "worker_id": claim.worker_id,
            "times_out_at": claim.times_out_at.isoformat().replace("+00:00", "Z"),
        }
        return self._failed_attempt(claim, reason, at, backoff)

    def given_up(self, reason: str, at: datetime) -> Task:
        """Dead, with `reason` as the result's failure: for a stored task no transition can process (e.g. one
        written by an older version whose values overflow). Computes no time, so it cannot fail the same way."""
        claim = self.last_claimed or LastClaimed(worker_id=GIVEN_UP_BY, claimed_at=at, times_out_at=at)
        return self._dead(claim, {"reason": reason}, at)

    def unclaimed(self, worker_id: str, at: datetime, claim_id: str | None = None) -> Task:
        """Hand the task back without using up an attempt. `last_claimed` stays, as in the original Tasques."""
        self._claim_of(worker_id, claim_id)
        return self._with(at, state=TaskState.QUEUED, attempted=max(0, self.attempted - 1), last_enqueued_at=at)

    def _failed_attempt(self, claim: LastClaimed, failure: JsonObj, at: datetime, backoff: BackoffPolicy) -> Task:
        policy = self.retry_policy
        if policy is None:
            final = self.attempted > self.retry_times
            delay = backoff.delay(self.attempted)
        else:
            final = policy.gives_up(self.attempted, self.retry_times, self.first_attempted_at, at)
            delay = policy.delay(self.attempted)
        if final:
            return self._dead(claim, failure, at)
        last = _with_failure(claim, failure, at)
        return self._with(at, state=TaskState.FAILED, last_claimed=last, run_at=later(at, delay), last_enqueued_at=at)

    def _dead(self, claim: LastClaimed, failure: JsonObj, at: datetime) -> Task:
        return self._with(at, state=TaskState.DEAD, last_claimed=_with_failure(claim, failure, at))

    def _claim_of(self, worker_id: str, claim_id: str | None) -> LastClaimed:
        """The current claim, if `worker_id` holds it. A `claim_id` must also be the current claim's: it tells
        apart two attempts by one worker id; without one only the worker id is checked (Go clients)."""
        claim = self.last_claimed
        if self.state is not TaskState.CLAIMED or claim is None:
            raise NotClaimed(f"task {self.id} in queue {self.queue} is {self.state}, not claimed")
        if claim.worker_id != worker_id:
            raise NotOwnedByWorker(f"task {self.id} in queue {self.queue} is claimed by another worker")
        if claim_id is not None and claim.claim_id != claim_id:
            raise ClaimMismatch(
                f"task {self.id} in queue {self.queue}: claim {claim_id} is not its current claim "
                "(that attempt timed out or was handed back, and the task was claimed again)"
            )
        return claim

    def _with(self, at: datetime, **changes: Any) -> Task:
        changes["metadata"] = self.metadata.model_copy(update={"modified_at": at})
        return self.model_copy(update=changes)


def _with_failure(claim: LastClaimed, failure: JsonObj, at: datetime) -> LastClaimed:
    return claim.model_copy(update={"result": Result(at=at, failure=failure)})


def claim_order_key(task: Task) -> tuple[int, datetime]:
    """Claim order: highest priority first, then earliest `run_at`."""
    return (-task.priority, task.run_at)
