"""Task creation: defaults resolved, HTTP requests and sensitive tasks checked, single creates group-committed,
and each project's quota applied by the store (`Store.insert_tasks(quota=...)`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
)
from tasques.domain.horizon import later
from tasques.domain.http_target import HttpRequest, request_problems
from tasques.domain.ref import QueueRef
from tasques.domain.retry import RetryPolicy
from tasques.domain.task import NewTask, Task
from tasques.service.events import Source
from tasques.service.task_core import (
    HTTP_CLAIM_GRACE,
    TaskCore,
    TaskSpec,
    _generated_keys,
)
from tasques.store.base import GeneratedKeys


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
        return await self.insert(task, self._clock(), generated=_generated_keys([spec], [task]), source=Source.API)

    async def create_many(self, specs: Sequence[TaskSpec]) -> list[Task | AlreadyExists]:
        """Create many tasks of one project in one store round trip; a taken id fails only its own slot, the
        project's quota refuses them all (`QuotaExceeded`)."""
        news = await self._resolve_all(specs)
        return await self.insert_many(news, self._clock(), generated=_generated_keys(specs, news), source=Source.BULK)

    async def _resolve_all(self, specs: Sequence[TaskSpec]) -> list[NewTask]:
        settings = await self._queues.all()
        now = self._clock()
        news = []
        for spec in specs:
            queue = settings.get(QueueRef(spec.project, spec.queue))
            news.append(self.resolve(spec, now, queue.retry_policy if queue is not None else None))
        return news

    async def insert(
        self, new: NewTask, now: datetime, *, generated: GeneratedKeys = frozenset(), source: Source = Source.API
    ) -> Task:
        """Persist a task whose defaults are already resolved, and wake claims waiting on its queue.
        `generated`: the keys whose id `resolve` generated (see `Store.insert_task`)."""
        await self._register_http_queues([new])
        stored = await self._inserts.submit((Task.create(new, now), (new.queue, new.id) in generated))
        self._events.created([stored], source)
        self._signals.notify(stored.ref, stored.target)
        return stored

    async def insert_many(
        self,
        news: Sequence[NewTask],
        now: datetime,
        *,
        generated: GeneratedKeys = frozenset(),
        source: Source = Source.BULK,
    ) -> list[Task | AlreadyExists]:
        if len({n.project for n in news}) > 1:
            raise ValueError("insert_many takes the tasks of one project")
        if not news:
            return []
        await self._register_http_queues(news)
        quota = await self._quota_of(news[0].project)
        tasks = [Task.create(n, now) for n in news]
        results = await self._store.insert_tasks(tasks, generated=generated, quota=quota)
        self._events.created([r for r in results if isinstance(r, Task)], source)
        for ref, target in {(r.ref, r.target) for r in results if isinstance(r, Task)}:
            self._signals.notify(ref, target)
        return results

    async def _register_http_queues(self, news: Sequence[NewTask]) -> None:
        # HTTP tasks register their queue, so the dispatcher (which claims per queue) looks at it.
        for ref in dict.fromkeys(QueueRef(n.project, n.queue) for n in news if n.http_request is not None):
            await self._queues.register(ref)
