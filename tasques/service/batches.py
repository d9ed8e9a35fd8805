"""Batches: create many tasks under one batch id, count them, and enqueue the batch's `on_complete` task once
every one has finished.

Creation validates every item first (nothing is written if one is invalid), checks the project's quota for the
whole batch, then writes the batch record FIRST and the tasks after (MAX_BATCH_ITEMS per store write). A batch
completes only when the count of its finished tasks reaches its `total`, so a batch whose tasks are still being
written cannot complete early. If writing the tasks fails part way (a taken task id, the store failing), the
batch is marked failed (`failed_at`, `failure`): it never completes and never runs its callback, and the tasks
already written stay (they run as any task does). The error names what failed.

Completion is checked when tasks of a batch settle (`TaskCore.on_settled`, coalesced per batch) and by the
leader's sweep of open batches (`sweep`, which repairs completions lost to a crash). The callback's id is
`{batch id}.done` in its queue: when two servers see the completion at once, the store refuses the second insert
(archived ids stay taken too), so it is created exactly once; both then mark the batch completed. Elasticsearch
counts lag by `store.search_delay`: when a check finds the batch unfinished but nothing of it still waiting to
run (the rest are claimed, maybe finished on another server a moment ago), it checks once more after that delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from tasques.domain.batch import MAX_BATCH_TASKS, Batch, finished_count, is_finished, may_be_finished_elsewhere
from tasques.domain.dependencies import check_no_cycle
from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, QuotaExceeded, VersionConflict
from tasques.domain.limits import MAX_BATCH_ITEMS
from tasques.domain.recurring import TaskDefinition
from tasques.domain.ref import QueueRef
from tasques.domain.task import Metadata, NewTask, Task, TaskKey, TaskState
from tasques.service.batching import Coalescer
from tasques.service.clock import Clock
from tasques.service.conflicts import CONFLICT_RETRIES
from tasques.service.events import Source
from tasques.service.task_core import QuotaOf, TaskSpec, _generated_keys, _no_quota
from tasques.service.tasks import TaskService
from tasques.store.base import Store

log = logging.getLogger(__name__)

# (project, batch id, whether a check that finds it unfinished may schedule a delayed re-check)
_Check = tuple[str, str, bool]
# Margin on top of the store's search delay before a re-check (the refresh itself takes a moment).
RECHECK_MARGIN = 0.25


@dataclass(frozen=True)
class BatchView:
    """A batch and its tasks counted by state (live and archived)."""

    batch: Batch
    counts: dict[TaskState, int]

    @property
    def finished(self) -> int:
        return finished_count(self.counts)


class BatchService:
    def __init__(self, store: Store, tasks: TaskService, clock: Clock, quota_of: QuotaOf = _no_quota) -> None:
        self._store = store
        self._tasks = tasks
        self._clock = clock
        self._quota_of = quota_of
        self._checks: Coalescer[_Check, bool] = Coalescer(self._check_many, max_batch=MAX_BATCH_ITEMS, flushes=1)
        self._rechecks: dict[tuple[str, str], float] = {}  # (project, batch id) -> loop time it is due
        self._background: set[asyncio.Task[None]] = set()
        self._sweep_after: Batch | None = None

    # Creation and reads

    async def create(
        self, project: str, batch_id: str | None, specs: Sequence[TaskSpec], on_complete: TaskDefinition | None
    ) -> BatchView:
        """Create the batch and its tasks. `InvalidInput` naming `tasks.<i>.<field>` (nothing written),
        `AlreadyExists` for a taken batch id, `QuotaExceeded` when the project's quota cannot take every task."""
        news = await self._validate(project, batch_id or str(uuid.uuid4()), specs, on_complete)
        # Dependencies as in a bulk; the tasks are then written in an order where each comes after the items it
        # depends on, so no chunk's waiting task is looked at before the items it waits on are stored.
        generated = _generated_keys(specs, news)
        news, reasons = await self._tasks.with_dependencies(news, generated=generated, bulk=True)
        order = check_no_cycle([(TaskKey(queue=n.queue, id=n.id), n.depends_on) for n in news])
        news = [news[i] for i in order]
        reasons = {k: reasons[i] for k, i in enumerate(order) if i in reasons}
        bid = news[0].batch_id
        assert bid is not None
        quota = await self._quota_of(project)
        if quota is not None:
            outstanding = await self._store.count_project_outstanding(project)
            if outstanding + len(news) > quota:
                raise QuotaExceeded(
                    f"project {project} has {outstanding} outstanding tasks: a batch of {len(news)} would pass its "
                    f"quota of {quota}"
                )
        now = self._clock()
        batch = await self._store.insert_batch(
            Batch(
                id=bid,
                project=project,
                total=len(news),
                on_complete=on_complete,
                metadata=Metadata(created_at=now, modified_at=now),
            )
        )
        created: list[Task] = []
        try:
            for start in range(0, len(news), MAX_BATCH_ITEMS):
                chunk = news[start : start + MAX_BATCH_ITEMS]
                chunk_reasons = {i - start: r for i, r in reasons.items() if start <= i < start + MAX_BATCH_ITEMS}
                results = await self._tasks.insert_many(
                    chunk, now, generated=generated, source=Source.BATCH, cancel_reasons=chunk_reasons
                )
                created += [r for r in results if isinstance(r, Task)]
                taken = [(order[i], r) for i, r in enumerate(results, start) if isinstance(r, AlreadyExists)]
                if taken:
                    raise _TaskTaken(*taken[0])  # the rest of this chunk is written; later chunks are not
        except Exception as e:
            await self._fail(batch, e, len(created))
            if isinstance(e, _TaskTaken):
                raise AlreadyExists(
                    f"batch {bid} failed: tasks.{e.index}: {e.error}; {len(created)} of {len(news)} tasks were "
                    "created and run on their own, and the batch is marked failed (it will not complete)"
                ) from None
            raise
        return BatchView(batch, dict(Counter(t.state for t in created)))

    async def get(self, project: str, batch_id: str) -> BatchView:
        """Raises `NotFound`. Counts are a search: on Elasticsearch, another server's changes show within its
        refresh interval."""
        batch = await self._store.get_batch(batch_id, project=project)
        return BatchView(batch, await self._store.batch_counts(batch_id, project=project))

    async def _validate(
        self, project: str, batch_id: str, specs: Sequence[TaskSpec], on_complete: TaskDefinition | None
    ) -> list[NewTask]:
        if not 1 <= len(specs) <= MAX_BATCH_TASKS:
            raise InvalidInput("invalid batch", [FieldProblem("tasks", f"1 to {MAX_BATCH_TASKS:,} tasks")])
        problems: list[FieldProblem] = []
        if on_complete is not None:
            problems += _problems(lambda: self._check_definition(on_complete), "on_complete.")
        settings = await self._tasks.queues.all()
        now = self._clock()
        news: list[NewTask] = []
        seen: set[tuple[str, str]] = set()
        for i, spec in enumerate(specs):
            if spec.project != project:
                raise ValueError("a batch takes the tasks of its own project")
            if spec.id is not None and (spec.queue, spec.id) in seen:
                problems.append(FieldProblem(f"tasks.{i}.id", "names a task already named earlier in the batch"))
            seen.add((spec.queue, spec.id or ""))
            queue = settings.get(QueueRef(project, spec.queue))
            policy = queue.retry_policy if queue is not None else None
            try:
                news.append(self._tasks.resolve(spec, now, policy).model_copy(update={"batch_id": batch_id}))
            except InvalidInput as e:
                problems += [FieldProblem(f"tasks.{i}.{p.field}", p.problem) for p in e.problems]
        if problems:
            raise InvalidInput("invalid batch: no task was created", problems)
        return news

    def _check_definition(self, d: TaskDefinition) -> None:
        if d.http_request is not None:
            self._tasks.check_http_request(d.http_request, "http_request")
        if d.sensitive:
            self._tasks.check_sensitive("sensitive")

    async def _fail(self, batch: Batch, error: Exception, created: int) -> None:
        reason = f"{created} of {batch.total} tasks were created, then: {type(error).__name__}: {error}"
        log.warning("batch %s of project %s failed: %s", batch.id, batch.project, reason)
        try:
            await self._store.update_batch(batch.failed(self._clock(), reason))
        except Exception:
            # Still open with fewer tasks than its total: it never completes (the sweep keeps looking at it).
            log.exception("could not mark batch %s failed", batch.id)

    # Completion

    def settled(self, tasks: Sequence[Task]) -> None:
        """`TaskCore.on_settled`: check the batches of these tasks (in the background; returns at once). A settled
        task that has not finished was deleted: its batch counts it as deleted first."""
        deleted = Counter((t.project, t.batch_id) for t in tasks if t.batch_id is not None and not t.finished)
        for project, batch_id in {(t.project, t.batch_id) for t in tasks if t.batch_id is not None}:
            assert batch_id is not None
            count = deleted.get((project, batch_id), 0)
            if count:
                self._spawn(self._deleted_then_check(project, batch_id, count))
            else:
                self._spawn(self._checks.submit((project, batch_id, True)))

    async def _deleted_then_check(self, project: str, batch_id: str, count: int) -> None:
        for _ in range(CONFLICT_RETRIES):
            batch = await self._store.get_batch(batch_id, project=project)
            if not batch.open:
                return
            try:
                await self._store.update_batch(batch.with_deleted(count))
                break
            except VersionConflict:
                continue
        else:
            raise VersionConflict(f"batch {batch_id} kept changing; {count} deleted tasks not recorded")
        await self._checks.submit((project, batch_id, True))

    async def close(self) -> None:
        """Stop the background checks (the leader's sweep completes what they leave)."""
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)

    async def check(self, project: str, batch_id: str, *, recheck: bool = True) -> bool:
        """Complete the batch if every task has finished; whether it is complete (or failed) now."""
        batch = await self._store.get_batch(batch_id, project=project)
        if not batch.open:
            return True
        counts = await self._store.batch_counts(batch_id, project=project)
        if is_finished(batch, counts):
            await self._complete(batch, counts)
            return True
        delay = self._store.search_delay.total_seconds()
        if recheck and delay > 0 and may_be_finished_elsewhere(counts):
            self._recheck_later(project, batch_id, delay + RECHECK_MARGIN)
        return False

    async def sweep(self, limit: int) -> int:
        """The leader's pass: complete the open batches that have finished, `limit` per pass, going on from
        where the last pass stopped (and from the oldest again after the newest). Returns how many completed."""
        batches = await self._store.open_batches(limit, after=self._sweep_after)
        self._sweep_after = batches[-1] if len(batches) >= limit else None
        completed = 0
        for batch in batches:
            try:
                counts = await self._store.batch_counts(batch.id, project=batch.project)
                if is_finished(batch, counts):
                    await self._complete(batch, counts)
                    completed += 1
            except Exception:
                log.exception("could not complete batch %s", batch.id)
        return completed

    async def _complete(self, batch: Batch, counts: dict[TaskState, int]) -> Batch:
        now = self._clock()
        callback: TaskKey | None = None
        d = batch.on_complete
        if d is not None:
            timeout = self._tasks.default_processing_timeout(d.http_request)
            new = batch.callback_task(counts, now, self._tasks.settings.retry_times, timeout)
            # AlreadyExists: another server (or an earlier pass that did not get to mark the batch) created it.
            with contextlib.suppress(AlreadyExists):
                await self._tasks.insert(new, now, source=Source.BATCH)
            callback = TaskKey(queue=new.queue, id=new.id)
        for _ in range(CONFLICT_RETRIES):
            try:
                return await self._store.update_batch(batch.completed(now, callback))
            except VersionConflict:
                batch = await self._store.get_batch(batch.id, project=batch.project)
                if not batch.open:
                    return batch  # another server marked it
        raise VersionConflict(f"batch {batch.id} kept changing; not marked completed")

    async def _check_many(self, items: list[_Check]) -> list[bool | Exception]:
        wanted: dict[tuple[str, str], bool] = {}
        for project, batch_id, recheck in items:
            wanted[(project, batch_id)] = wanted.get((project, batch_id), False) or recheck
        answers: dict[tuple[str, str], bool | Exception] = {}
        for (project, batch_id), recheck in wanted.items():
            try:
                answers[(project, batch_id)] = await self.check(project, batch_id, recheck=recheck)
            except Exception as e:
                log.exception("could not check batch %s", batch_id)
                answers[(project, batch_id)] = e
        return [answers[(p, b)] for p, b, _ in items]

    def _recheck_later(self, project: str, batch_id: str, after: float) -> None:
        """One delayed re-check per batch at a time; a later settle moves it later rather than adding one."""
        key = (project, batch_id)
        due = asyncio.get_running_loop().time() + after
        if key in self._rechecks:
            self._rechecks[key] = max(self._rechecks[key], due)
            return
        self._rechecks[key] = due
        self._spawn(self._recheck(key))

    async def _recheck(self, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._rechecks[key] - loop.time()))
        if self._rechecks[key] > loop.time():  # a later settle moved it
            self._spawn(self._recheck(key))
            return
        del self._rechecks[key]
        await self._checks.submit((*key, False))  # a re-check never schedules another: the sweep is the backstop

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(_quietly(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _quietly(work: Coroutine[Any, Any, object]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.debug("a batch check failed (logged where it failed)", exc_info=True)


class _TaskTaken(Exception):
    def __init__(self, index: int, error: AlreadyExists) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def _problems(check: Callable[[], None], prefix: str) -> list[FieldProblem]:
    try:
        check()
    except InvalidInput as e:
        return [FieldProblem(f"{prefix}{p.field}", p.problem) for p in e.problems]
    return []
