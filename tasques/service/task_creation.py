"""Task creation: defaults resolved, HTTP requests and sensitive tasks checked, single creates group-committed,
and each project's quota applied by the store (`Store.insert_tasks(quota=...)`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from tasques.domain.dependencies import Verdict, check_no_cycle, decide, distinct
from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
)
from tasques.domain.horizon import later
from tasques.domain.http_target import HttpRequest, request_problems
from tasques.domain.limits import MAX_DEPENDENCIES
from tasques.domain.ref import QueueRef
from tasques.domain.retry import RetryPolicy
from tasques.domain.task import NewTask, Task, TaskKey, TaskState
from tasques.service.events import Source
from tasques.service.task_core import (
    HTTP_CLAIM_GRACE,
    TaskCore,
    TaskSpec,
    _generated_keys,
)
from tasques.store.base import GeneratedKeys

# Dependencies read per `Store.get_tasks` call.
DEPENDENCY_READ_CHUNK = 1000


def _initial(new: NewTask, now: datetime, cancel_reason: str | None) -> Task:
    task = Task.create(new, now)
    return task.cancelled(now, cancel_reason) if cancel_reason is not None else task


class TaskCreation(TaskCore):
    def resolve(self, spec: TaskSpec, now: datetime, queue_retry_policy: RetryPolicy | None = None) -> NewTask:
        """Fill in the defaults: a generated id, run now, the configured retries and timeout, the queue's
        retry policy."""
        if spec.run_at is not None and spec.execution_delay is not None:
            raise InvalidInput(
                "invalid task", [FieldProblem("execution_delay", "give run_at or execution_delay, not both")]
            )
        if spec.processing_timeout is not None and spec.processing_timeout <= timedelta(0):
            raise InvalidInput("invalid task", [FieldProblem("processing_timeout", "must be a positive duration")])
        if spec.http_request is not None:
            self.check_http_request(spec.http_request, "http_request")
        if spec.sensitive:
            self.check_sensitive("sensitive")
        return NewTask(
            id=spec.id or str(uuid.uuid4()),
            queue=spec.queue,
            kind=spec.kind,
            priority=spec.priority,
            run_at=spec.run_at or (later(now, spec.execution_delay) if spec.execution_delay is not None else now),
            retry_times=self._settings.retry_times if spec.retry_times is None else spec.retry_times,
            processing_timeout=spec.processing_timeout or self._default_timeout(spec),
            args=spec.args,
            context=spec.context,
            http_request=spec.http_request,
            retry_policy=spec.retry_policy or queue_retry_policy,
            repeat=spec.repeat,
            project=spec.project,
            sensitive=spec.sensitive,
            depends_on=spec.depends_on,
            on_dependency_failure=spec.on_dependency_failure,
        )

    def check_sensitive(self, field: str) -> None:
        """InvalidInput naming `field` when the store cannot encrypt a sensitive task's args and context."""
        if not self._settings.encrypts_at_rest:
            problem = (
                "args and context cannot be encrypted at rest: this server has no encryption keys (encryption.keys)"
            )
            raise InvalidInput("sensitive tasks are not available", [FieldProblem(field, problem)])

    def check_http_request(self, request: HttpRequest, field: str) -> None:
        """InvalidInput naming `field.<sub-field>` for a request the dispatcher would refuse to send."""
        problems = request_problems(request, self._settings.tls_files_dir)
        if problems:
            raise InvalidInput("invalid HTTP request", [FieldProblem(f"{field}.{f}", p) for f, p in problems])

    def _default_timeout(self, spec: TaskSpec) -> timedelta:
        return self.default_processing_timeout(spec.http_request)

    def default_processing_timeout(self, http_request: HttpRequest | None) -> timedelta:
        # The dispatcher holds an HTTP task's claim for one request: if its server dies, retry soon after.
        if http_request is not None:
            return http_request.timeout + HTTP_CLAIM_GRACE
        return self._settings.processing_timeout

    async def create(self, spec: TaskSpec) -> Task:
        [task] = await self._resolve_all([spec])
        [task], reasons = await self.with_dependencies([task], generated=_generated_keys([spec], [task]), bulk=False)
        return await self.insert(
            task,
            self._clock(),
            generated=_generated_keys([spec], [task]),
            source=Source.API,
            cancel_reason=reasons.get(0),
        )

    async def create_many(self, specs: Sequence[TaskSpec]) -> list[Task | AlreadyExists]:
        """Create many tasks of one project in one store round trip; a taken id fails only its own slot, the
        project's quota refuses them all (`QuotaExceeded`)."""
        news = await self._resolve_all(specs)
        generated = _generated_keys(specs, news)
        news, reasons = await self.with_dependencies(news, generated=generated, bulk=True)
        return await self.insert_many(
            news, self._clock(), generated=generated, source=Source.BULK, cancel_reasons=reasons
        )

    async def dependency_states(self, project: str, keys: Sequence[TaskKey]) -> dict[TaskKey, TaskState | None]:
        """Each key's state (None: no such task, live or archived), read `DEPENDENCY_READ_CHUNK` at a time."""
        out: dict[TaskKey, TaskState | None] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), DEPENDENCY_READ_CHUNK):
            chunk = unique[start : start + DEPENDENCY_READ_CHUNK]
            for key, task in zip(chunk, await self._store.get_tasks(chunk, project=project), strict=True):
                out[key] = task.state if task is not None else None
        return out

    async def with_dependencies(
        self, news: list[NewTask], *, generated: GeneratedKeys, bulk: bool
    ) -> tuple[list[NewTask], dict[int, str]]:
        """Check each task's `depends_on` (InvalidInput naming `depends_on.<j>`, `tasks.<i>.depends_on.<j>` in a
        bulk) and pick its initial state: queued when every dependency has already settled, cancelled (the reason
        in the answer) when one already failed, else waiting. Repeated dependencies count once."""
        if not any(n.depends_on for n in news):
            return news, {}

        def prefix(i: int) -> str:
            return f"tasks.{i}." if bulk else ""

        problems = [
            FieldProblem(f"{prefix(i)}depends_on", f"at most {MAX_DEPENDENCIES:,} dependencies")
            for i, n in enumerate(news)
            if len(n.depends_on) > MAX_DEPENDENCIES
        ]
        if problems:
            raise InvalidInput("too many dependencies", problems)
        # A generated id is random: no other item can name it.
        own = {TaskKey(queue=n.queue, id=n.id) for n in news if (n.queue, n.id) not in generated}
        states = await self.dependency_states(news[0].project, [d for n in news for d in n.depends_on])
        for i, n in enumerate(news):
            me = TaskKey(queue=n.queue, id=n.id)
            for j, dep in enumerate(n.depends_on):
                if dep == me:
                    problems.append(FieldProblem(f"{prefix(i)}depends_on.{j}", "a task cannot depend on itself"))
                elif states[dep] is None and dep not in own:
                    problems.append(FieldProblem(f"{prefix(i)}depends_on.{j}", "no such task in this project"))
        if problems:
            raise InvalidInput("unknown dependencies", problems)
        if bulk:  # edges between items: only those not already stored tasks
            check_no_cycle(
                [(TaskKey(queue=n.queue, id=n.id), [d for d in n.depends_on if states[d] is None]) for n in news]
            )
        out: list[NewTask] = []
        reasons: dict[int, str] = {}
        for i, n in enumerate(news):
            if not n.depends_on:
                out.append(n)
                continue
            deps = distinct(n.depends_on)
            # Items of this bulk are not stored yet: unknown, so their dependents start waiting.
            known = {d: states[d] for d in deps if states[d] is not None}
            decision = decide(deps, n.on_dependency_failure, known)
            if decision.verdict is Verdict.CANCEL and decision.reason is not None:
                reasons[i] = decision.reason
            out.append(n.model_copy(update={"depends_on": deps, "waiting": decision.verdict is Verdict.WAIT}))
        return out, reasons

    async def _resolve_all(self, specs: Sequence[TaskSpec]) -> list[NewTask]:
        settings = await self._queues.all()
        now = self._clock()
        news = []
        for spec in specs:
            queue = settings.get(QueueRef(spec.project, spec.queue))
            news.append(self.resolve(spec, now, queue.retry_policy if queue is not None else None))
        return news

    async def insert(
        self,
        new: NewTask,
        now: datetime,
        *,
        generated: GeneratedKeys = frozenset(),
        source: Source = Source.API,
        cancel_reason: str | None = None,
    ) -> Task:
        """Persist a task whose defaults are already resolved, and wake claims waiting on its queue.
        `generated`: the keys whose id `resolve` generated (see `Store.insert_task`). `cancel_reason`: created
        cancelled, for that reason (a dependency had already failed)."""
        await self._register_http_queues([new])
        stored = await self._inserts.submit((_initial(new, now, cancel_reason), (new.queue, new.id) in generated))
        self._events.created([stored], source)
        self._signals.notify(stored.ref, stored.target)
        self._after_insert([stored])
        return stored

    async def insert_many(
        self,
        news: Sequence[NewTask],
        now: datetime,
        *,
        generated: GeneratedKeys = frozenset(),
        source: Source = Source.BULK,
        cancel_reasons: Mapping[int, str] | None = None,
    ) -> list[Task | AlreadyExists]:
        if len({n.project for n in news}) > 1:
            raise ValueError("insert_many takes the tasks of one project")
        if not news:
            return []
        await self._register_http_queues(news)
        quota = await self._quota_of(news[0].project)
        reasons = cancel_reasons or {}
        tasks = [_initial(n, now, reasons.get(i)) for i, n in enumerate(news)]
        results = await self._store.insert_tasks(tasks, generated=generated, quota=quota)
        stored = [r for r in results if isinstance(r, Task)]
        self._events.created(stored, source)
        for ref, target in {(r.ref, r.target) for r in stored}:
            self._signals.notify(ref, target)
        self._after_insert(stored)
        return results

    def _after_insert(self, stored: Sequence[Task]) -> None:
        """Waiting tasks are looked at once more (a dependency may have finished since the check); tasks created
        cancelled settle their own dependents (items of the same bulk)."""
        waiting = [t for t in stored if t.state is TaskState.WAITING]
        if waiting:
            for hook in self.on_waiting:
                hook(waiting)
        self.settled([t for t in stored if t.state is TaskState.CANCELLED])

    async def _register_http_queues(self, news: Sequence[NewTask]) -> None:
        # HTTP tasks register their queue, so the dispatcher (which claims per queue) looks at it.
        for ref in dict.fromkeys(QueueRef(n.project, n.queue) for n in news if n.http_request is not None):
            await self._queues.register(ref)
