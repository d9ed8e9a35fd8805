"""The `Store` protocol: the narrow set of primitives every backend implements.

A store decides no business rule. It persists what it is given, atomically, and refuses a write whose
expected version is stale (`VersionConflict`). Claims are the one compound primitive: the store finds the
claimable tasks and applies the caller's pure `change` to each, because finding and claiming must be one
atomic step (SQLite: one transaction; Elasticsearch: conditional bulk updates that skip lost races).

Semantics every backend must honour (checked by `tests/contract/`):
- Every record belongs to a project (a tenant), and the project is part of its identity: task identity is
  (project, queue, id), recurring task identity (project, id), queue settings identity (project, queue), an
  attempt's (project, queue, task id, run, attempt). Two projects may use the same names and never see each
  other's records: every read, search, count and conditional write is confined to the project it names.
  Methods that take a key take `project` as a keyword (`DEFAULT_PROJECT` when omitted, the project of a
  server without auth); records carry theirs in `.project`. Leader-side sweeps (timeouts, archiving, attempt
  retention, the recurring scheduler's listing) span every project.
- `metadata.version` of a returned record is the version the store now holds; conditional writes compare
  the version of the record passed in.
- "Claimable" means state queued or failed and `run_at <= now`; claim order is priority descending, then
  `run_at` ascending. A claim takes only tasks of the `target` it names (pull workers never get HTTP tasks,
  the dispatcher never gets pull tasks).
- Archived tasks are still returned by `get_task`.
- Read-your-writes per store instance: every read reflects every write made through the same instance.
  Writes made by *other* instances (other servers sharing an Elasticsearch cluster) are always seen by
  `get_task` and by conditional writes, and become visible to searches (claims, listings, counts) within
  the backend's refresh interval.
- Faults: a store that cannot be reached, does not answer within its deadline, or says it is overloaded
  raises `StoreUnavailable` from any operation (never a driver exception). The outcome of a write that
  raised it is unknown: it may have been applied, even later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from tasques.domain.batch import Batch
from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.project import ApiToken, Project
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.domain.timeline import Attempt
from tasques.domain.worker import WorkerRecord, WorkerSighting

# (queue, id) keys of tasks whose id the server generated (a random UUID4): no archived task can have one, so
# a store whose "archived ids stay taken" check costs a round trip may skip it for these.
GeneratedKeys = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class TaskFilter:
    project: str = DEFAULT_PROJECT
    queue: str | None = None
    states: frozenset[TaskState] = frozenset()
    kind: str | None = None
    recurring_task_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None = None


@dataclass(frozen=True)
class QueueProbe:
    """Where `claimable_queues` looks for tasks of one target: `queues` of `project`, or every queue when None, less
    `excluding`. `project` None means every project (the dispatcher's probe); `queues` must then be None too."""

    target: TaskTarget
    queues: frozenset[str] | None = None
    excluding: frozenset[tuple[str, str]] = frozenset()  # (project, queue)
    project: str | None = DEFAULT_PROJECT


@dataclass(frozen=True)
class TaskChange:
    """One read-modify-write: `change` is applied to the task (project, queue, id) as the store holds it now."""

    queue: str
    id: str
    change: Callable[[Task], Task]
    project: str = DEFAULT_PROJECT


def check_distinct(changes: Sequence[TaskChange]) -> None:
    """`modify_tasks` takes each key once: ValueError otherwise (every store checks it the same way)."""
    if len({(c.project, c.queue, c.id) for c in changes}) != len(changes):
        raise ValueError("modify_tasks needs distinct (project, queue, id) keys")


def same_but_version(a: Task, b: Task) -> bool:
    """The same task record but for its version: how `restore_archived` recognises a restore it made before."""
    metadata = a.metadata.model_copy(update={"version": b.metadata.version})
    return a.model_copy(update={"metadata": metadata}) == b


@dataclass(frozen=True)
class QueueCounts:
    queue: str
    project: str = DEFAULT_PROJECT
    counts: dict[TaskState, int] = field(default_factory=dict)
    # The earliest `run_at` of the queue's queued and failed tasks (None when it has none). When it is <= now it
    # is the run_at of the task that has waited longest for a worker (metrics: the oldest queued task's age).
    earliest_run_at: datetime | None = None


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, and when their lease runs out (wall-clock UTC, as `acquire_lock` was given it)."""

    holder: str
    expires_at: datetime


def lease_live(expires_at: datetime, now: datetime) -> bool:
    """A lease is live until its expiry, exclusive: at exactly `expires_at` another holder may take the lock."""
    return expires_at > now


# Told (queue, count) of conditional claim writes that lost a race to another writer (Elasticsearch only; a
# SQLite claim is one transaction and cannot lose one).
ClaimConflicts = Callable[[str, int], None]


@runtime_checkable
class ReportsClaimConflicts(Protocol):
    """A store whose claims can lose conditional writes to other servers, and says so when asked."""

    on_claim_conflicts: ClaimConflicts | None


class Store(Protocol):
    """Persistence for tasks, recurring tasks and the leader lock."""

    kind: str

    @property
    def search_delay(self) -> timedelta:
        """How long a write by another store instance may stay invisible to searches (claims, probes): polling
        them more often than this finds nothing new."""
        ...

    async def open(self) -> None:
        """Create the schema or indices if missing. Idempotent."""

    async def close(self) -> None: ...

    async def ping(self, within: timedelta) -> None:
        """Return once the store answers a cheap request `within` that long; else raise `StoreUnavailable`."""

    # Tasks
    async def insert_task(self, task: Task, *, generated: GeneratedKeys = frozenset()) -> Task:
        """Persist a new task. Raises `AlreadyExists` if (project, queue, id) is taken, live or archived.

        `generated` names the keys whose id the server generated; for those an archived duplicate cannot
        exist, and the store need not look for one (a live duplicate is still refused)."""

    async def insert_tasks(
        self, tasks: Sequence[Task], *, generated: GeneratedKeys = frozenset(), quota: int | None = None
    ) -> list[Task | AlreadyExists]:
        """Persist many new tasks in one round trip; each slot is the stored task or why it was refused.
        `generated` as for `insert_task`.

        `quota` (the tasks must then share one project): raise `QuotaExceeded`, writing nothing, if the project's
        outstanding tasks (neither done, dead nor cancelled) plus `len(tasks)` would exceed it. The check holds
        across every store instance racing on the same project (it counts what the store holds, not what this
        instance wrote), and may refuse early while a refused or duplicate slot's reservation is recent."""

    async def get_task(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> Task:
        """Raises `NotFound`."""

    async def update_task(self, task: Task) -> Task:
        """Replace a task if its stored version still equals `task.metadata.version`.

        Raises `VersionConflict` if it changed, `NotFound` if it is gone.
        """

    async def update_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict]:
        """Conditional replace of many tasks in one round trip; each slot is the stored task or the conflict."""

    async def modify_tasks(self, changes: Sequence[TaskChange]) -> list[Task | Exception]:
        """Read each task, apply its pure `change`, write the result conditionally on the version read: many
        tasks in one store trip, each slot independent of the others.

        A slot is the stored task; `NotFound` (no such live task; an archived one is passed to `change` so that
        its refusal is the answer, and is `NotFound` if `change` accepts it); the exception `change` raised; or
        `VersionConflict` if another writer got in between (the caller reads again by calling again). The keys
        must be distinct (`ValueError` otherwise)."""

    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
        *,
        project: str | None = DEFAULT_PROJECT,
    ) -> list[Task]:
        """Atomically apply `change` to up to `limit` claimable tasks of `queues` of `project` and `target`, in
        claim order. `project` None: those queues in every project (the dispatcher's claims)."""

    async def claimable_queues(self, now: datetime, probes: Sequence[QueueProbe]) -> set[tuple[str, str, TaskTarget]]:
        """The (project, queue, target) triples of `probes` that hold a task claimable at `now`, in one cheap round trip
        (idle waiters poll this instead of claiming). It sees what `claim_tasks` would see at the same moment:
        it may name a queue whose candidates a claim then loses or finds unreadable, never miss one it would find."""

    async def find_claimed_by(
        self, worker_id: str, claimed_at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> list[Task]:
        """Tasks still claimed by `worker_id` with exactly this `last_claimed.claimed_at`: what is left of one
        claim call. Sees every write made before it, through any store instance (it may cost a refresh)."""

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        """Claimed tasks whose `times_out_at <= now`, oldest deadline first, in every project."""

    async def list_tasks(self, flt: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        """Live tasks of `flt.project`, newest first, with an opaque keyset cursor for the next page."""

    async def queue_counts(self, *, project: str | None = None) -> list[QueueCounts]:
        """Live tasks of `project` (None: of every project, one entry per project and queue) counted by state, with each queue's `earliest_run_at`: never a scan of tasks
        (SQLite: an index; Elasticsearch: an aggregation)."""

    async def count_outstanding(self, recurring_task_id: str, *, project: str = DEFAULT_PROJECT) -> int:
        """Live tasks of a recurring task that are neither done nor dead. Exact: includes a task just created."""

    async def archive_finished(self, finished_before: datetime, limit: int) -> int:
        """Move up to `limit` done/dead tasks (of every project) last modified before the cutoff into the archive."""

    # Recurring tasks
    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        """Raises `AlreadyExists`."""

    async def get_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        """Raises `NotFound`."""

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        """Conditional on version, like `update_task`."""

    async def delete_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        """Remove and return it. Raises `NotFound`."""

    async def list_recurring(self, *, project: str | None = None) -> list[RecurringTask]:
        """The recurring tasks of `project`, or of every project when None (the scheduler)."""

    # Queue settings
    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        """Raises `AlreadyExists`."""

    async def get_queue_settings(self, queue: str, *, project: str = DEFAULT_PROJECT) -> QueueSettings:
        """Raises `NotFound`."""

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        """Conditional on version, like `update_task`."""

    async def list_queue_settings(self, *, project: str | None = None) -> list[QueueSettings]:
        """The settings of `project`'s queues (every project's when None), by project and queue name. Sees every
        server's writes at once."""

    # Attempt timeline
    async def insert_attempt(self, attempt: Attempt) -> None:
        """Record an attempt; recording the same (queue, task id, attempt number) again replaces it."""

    async def list_attempts(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> list[Attempt]:
        """A task's attempts, in attempt order."""

    async def delete_attempts(self, ended_before: datetime, limit: int) -> int:
        """Delete up to `limit` attempts (of every project) that ended before the cutoff; returns how many."""

    async def count_project_outstanding(self, project: str) -> int:
        """The project's live tasks that are neither done, dead nor cancelled (what `quota` counts)."""

    # Projects and tokens (not per project themselves: admin records)
    async def insert_project(self, project: Project) -> Project:
        """Raises `AlreadyExists`."""

    async def get_project(self, name: str) -> Project:
        """Raises `NotFound`. Sees every server's writes at once."""

    async def update_project(self, project: Project) -> Project:
        """Conditional on version, like `update_task`."""

    async def list_projects(self) -> list[Project]: ...

    async def insert_token(self, token: ApiToken) -> ApiToken:
        """Raises `AlreadyExists` if the id is taken."""

    async def get_token(self, token_id: str) -> ApiToken:
        """Raises `NotFound`. Sees every server's writes at once (revocation reads it)."""

    async def update_token(self, token: ApiToken) -> ApiToken:
        """Conditional on version, like `update_task`."""

    async def list_tokens(self, project: str) -> list[ApiToken]:
        """The project's tokens, revoked ones included, oldest first."""

    # Dependencies (issue 17). A task's `depends_on` names tasks of its own project.
    async def get_tasks(self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT) -> list[Task | None]:
        """Each key's task, live or archived, or None: many in one round trip, seeing every write at once
        (Elasticsearch: a realtime multi-get)."""

    async def find_dependents(
        self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT, limit: int = 1000
    ) -> list[Task]:
        """Up to `limit` waiting tasks of `project` whose `depends_on` names any of `keys`, through an index
        (never a scan of waiting tasks). Searches: another instance's writes show within `search_delay`."""

    async def waiting_tasks(self, after: tuple[str, str, str] | None, limit: int) -> list[Task]:
        """Waiting tasks of every project in (project, queue, id) order after `after`: the leader's repair sweep."""

    # Batches
    async def insert_batch(self, batch: Batch) -> Batch:
        """Raises `AlreadyExists`."""

    async def get_batch(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> Batch:
        """Raises `NotFound`. Sees every server's writes at once."""

    async def update_batch(self, batch: Batch) -> Batch:
        """Conditional on version, like `update_task`."""

    async def open_batches(self, limit: int, *, after: Batch | None = None) -> list[Batch]:
        """Up to `limit` batches of every project neither completed nor failed, oldest first (by created_at, then
        project and id), after `after` when given (the leader's repair sweep pages through them)."""

    async def batch_counts(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> dict[TaskState, int]:
        """The batch's tasks, live and archived, counted by state (a search: refresh-lagged on Elasticsearch,
        where a finish shows within `search_delay`)."""

    # Workers
    async def record_workers(self, sightings: Sequence[WorkerSighting]) -> None:
        """Create or update each (project, worker id): last seen is the later of the stored and the sighted time,
        queues are the union, version and host the sighted ones when given. Never touches `draining`."""

    async def get_worker(self, worker_id: str, *, project: str = DEFAULT_PROJECT) -> WorkerRecord:
        """Raises `NotFound`. Sees every server's writes at once."""

    async def list_workers(self, *, project: str | None = None, draining_only: bool = False) -> list[WorkerRecord]:
        """The workers of `project` (of every project when None), by project and id; `draining_only`: only those put
        to drain (a cheap read through an index, which every server polls), seeing every drain at once."""

    async def set_worker_draining(
        self, worker_id: str, draining: bool, at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> WorkerRecord:
        """Set or clear the drain flag (at `at`). Raises `NotFound` for a worker never seen."""

    async def claims_by_worker(self, *, project: str = DEFAULT_PROJECT) -> dict[str, int]:
        """How many tasks of `project` each worker id holds claimed now."""

    async def forget_workers(self, seen_before: datetime, limit: int) -> int:
        """Delete up to `limit` worker records (every project) last seen before the cutoff; returns how many."""

    # Replay and queue operations
    async def find_dead(
        self,
        *,
        project: str,
        queue: str | None,
        kind: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        archived: bool,
    ) -> list[Task]:
        """Up to `limit` dead tasks of `project` (live, or archived when `archived`), whose death
        (`metadata.modified_at`) is in [since, until), oldest death first."""

    async def restore_archived(self, tasks: Sequence[Task]) -> list[Task | Exception]:
        """Put archived tasks back among the live ones, each as given (a changed copy of the archived task),
        and remove the archived copy. A slot is the live task, `AlreadyExists` if a live task has the key,
        `NotFound` if it is no longer archived, or `VersionConflict` if the archived copy changed. Safe to repeat."""

    async def delete_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict | NotFound]:
        """Delete live tasks, each only while its stored version still equals the one given."""

    async def purge_finished(self, queue: str, *, project: str = DEFAULT_PROJECT) -> int:
        """Delete the queue's finished history: done, dead and cancelled tasks, live and archived, and its
        attempts. Returns how many tasks were deleted."""

    async def count_finished_since(self, queue: str, since: datetime, *, project: str = DEFAULT_PROJECT) -> int:
        """Live tasks of the queue that finished (done, dead, cancelled) at or after `since`."""

    async def finished_per_minute(self, since: datetime, *, project: str) -> dict[str, dict[datetime, int]]:
        """The project's live tasks that finished at or after `since` (as `count_finished_since` counts them), by
        queue and by the start of the UTC minute they finished in; minutes and queues with none are left out.
        Through an index, never a scan of tasks (SQLite: one seek per queue; Elasticsearch: one aggregation)."""

    # Leader lock
    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        """Take or renew the lock for `holder` until `expires_at`; False if another holder's lease is live."""

    async def release_lock(self, name: str, holder: str) -> None:
        """Give the lock up early, if `holder` still has it."""

    async def lock_holder(self, name: str, now: datetime) -> LockHolder | None:
        """Who holds the lock with a lease live at `now` (`lease_live`); None when nobody does. Sees every
        server's writes at once."""
