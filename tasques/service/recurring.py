"""Recurring task use cases, and the enqueuer the leader runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, VersionConflict
from tasques.domain.limits import MAX_PREVIEW
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.schedule import Schedule, ScheduleError, parse_schedule
from tasques.domain.task import Metadata
from tasques.log_fields import about
from tasques.service.clock import Clock
from tasques.service.conflicts import retry_conflicts
from tasques.service.events import NO_EVENTS, RecurringOutcome, Source, TaskEvents
from tasques.service.tasks import TaskService, describe_error
from tasques.store.base import Store

log = logging.getLogger(__name__)


def _check_schedule(expression: str, field: str = "schedule_expression") -> Schedule:
    try:
        return parse_schedule(expression)
    except ScheduleError as e:
        raise InvalidInput("invalid schedule", [FieldProblem(field, str(e))]) from e


@dataclass(frozen=True)
class CatchUp:
    """Missed slots within `window` of now are each enqueued (at most `max_slots`); older gaps collapse."""

    window: timedelta = timedelta(minutes=5)
    max_slots: int = 100


class RecurringService:
    def __init__(
        self,
        store: Store,
        tasks: TaskService,
        clock: Clock,
        catch_up: CatchUp | None = None,
        events: TaskEvents = NO_EVENTS,
    ) -> None:
        self._catch_up = catch_up or CatchUp()
        self._events = events
        self._store = store
        self._tasks = tasks
        self._clock = clock

    async def create(
        self,
        *,
        project: str,
        task_id: str,
        schedule_expression: str,
        task_definition: TaskDefinition,
        skip_if_outstanding_tasks_exist: bool = False,
    ) -> RecurringTask:
        _check_schedule(schedule_expression)
        self._check_request(task_definition)
        now = self._clock()
        task = RecurringTask(
            project=project,
            id=task_id,
            schedule_expression=schedule_expression,
            task_definition=task_definition,
            skip_if_outstanding_tasks_exist=skip_if_outstanding_tasks_exist,
            # Slots are counted from creation: the first task is enqueued at the first slot after now.
            last_slot_at=now,
            metadata=Metadata(created_at=now, modified_at=now),
        )
        return self.effective(await self._store.insert_recurring(task))

    def effective(self, rt: RecurringTask) -> RecurringTask:
        """`rt` as the API shows it: the retries and processing timeout its tasks get, the server defaults
        where the definition names none (as the original server shows them).

        Resolved when shown, not stored: the stored definition keeps "none given", so it follows the server's
        configuration (and an HTTP definition's request timeout) exactly as the enqueuer does at each slot.
        """
        d = rt.task_definition
        retry_times = self._tasks.settings.retry_times if d.retry_times is None else d.retry_times
        timeout = d.processing_timeout or self._tasks.default_processing_timeout(d.http_request)
        resolved = d.model_copy(update={"retry_times": retry_times, "processing_timeout": timeout})
        return rt.model_copy(update={"task_definition": resolved})

    def _check_request(self, definition: TaskDefinition) -> None:
        if definition.http_request is not None:
            self._tasks.check_http_request(definition.http_request, "task_definition.http_request")
        if definition.sensitive:
            self._tasks.check_sensitive("task_definition.sensitive")

    async def get(self, project: str, task_id: str) -> RecurringTask:
        return self.effective(await self._store.get_recurring(task_id, project=project))

    async def list_all(self, project: str) -> list[RecurringTask]:
        return [self.effective(rt) for rt in await self._store.list_recurring(project=project)]

    async def update(
        self,
        project: str,
        task_id: str,
        *,
        schedule_expression: str | None = None,
        task_definition: TaskDefinition | None = None,
        skip_if_outstanding_tasks_exist: bool | None = None,
    ) -> RecurringTask:
        if schedule_expression is not None:
            _check_schedule(schedule_expression)
        if task_definition is not None:
            self._check_request(task_definition)

        async def attempt() -> RecurringTask:
            current = await self._store.get_recurring(task_id, project=project)
            now = self._clock()
            changes: dict[str, object] = {"metadata": current.metadata.model_copy(update={"modified_at": now})}
            if schedule_expression is not None:
                changes["schedule_expression"] = schedule_expression
            if task_definition is not None:
                changes["task_definition"] = task_definition
            if skip_if_outstanding_tasks_exist is not None:
                changes["skip_if_outstanding_tasks_exist"] = skip_if_outstanding_tasks_exist
            return self.effective(await self._store.update_recurring(current.model_copy(update=changes)))

        return await retry_conflicts(f"recurring task {task_id}", attempt, self._tasks.settings.conflict_retries)

    async def delete(self, project: str, task_id: str) -> RecurringTask:
        return self.effective(await self._store.delete_recurring(task_id, project=project))

    def preview(self, expression: str, count: int) -> list[datetime]:
        """The schedule's next `count` (1 to MAX_PREVIEW) fire times after now, UTC: the slots the enqueuer
        would fire (each strictly after the one before). A bad expression is a 400 naming `expression`."""
        if not 1 <= count <= MAX_PREVIEW:
            raise InvalidInput("invalid preview", [FieldProblem("count", f"must be between 1 and {MAX_PREVIEW}")])
        schedule = _check_schedule(expression, "expression")
        slots = [schedule.next_after(self._clock())]
        while len(slots) < count:
            slots.append(schedule.next_after(slots[-1]))
        return slots

    async def enqueue_due(self) -> int:
        """Enqueue the due slots of every recurring task. Safe to run on any server, any number of times.

        The task id derives from (recurring id, slot), so a slot enqueues at most once even across a leader
        failover between the insert and the bookkeeping write. One recurring task that fails (a bad stored
        definition, an overflow, a store error for it) is logged, its `last_error` set, and the pass goes on.
        """
        enqueued = 0
        for rt in await self._store.list_recurring():
            try:
                enqueued += await self._enqueue_one(rt)
            except VersionConflict:
                log.debug("recurring task %s changed while enqueueing; it is picked up next pass", rt.id,
                          extra=about(recurring_id=rt.id))  # fmt: skip
            except Exception as e:
                log.exception("recurring task %s could not be enqueued; the others go on", rt.id,
                              extra=about(recurring_id=rt.id))  # fmt: skip
                self._events.recurring_run(RecurringOutcome.ERROR)
                await self._record_error(rt, e)
        return enqueued

    async def _enqueue_one(self, rt: RecurringTask) -> int:
        now = self._clock()
        updated = rt
        if rt.loaded_at is None or rt.loaded_at < rt.metadata.modified_at:
            updated = updated.loaded(now)
        enqueued = 0
        error: Exception | None = None
        for slot in rt.due_slots(now, self._catch_up.window, self._catch_up.max_slots):
            try:
                enqueued += await self._enqueue_slot(rt, slot, now)
            except Exception as e:
                # Slots before this one stay handled; this one is tried again next pass (same id, so once).
                log.exception("recurring task %s: slot %s could not be enqueued", rt.id, slot,
                              extra=about(recurring_id=rt.id))  # fmt: skip
                self._events.recurring_run(RecurringOutcome.ERROR)
                error = e
                break
            updated = updated.handled(slot).enqueued_fine()
        if error is not None:
            updated = updated.failed_to_enqueue(describe_error(error), now)
        if updated != rt:
            await self._store.update_recurring(updated)
        return enqueued

    async def _enqueue_slot(self, rt: RecurringTask, slot: datetime, now: datetime) -> int:
        outstanding = rt.skip_if_outstanding_tasks_exist and await self._store.count_outstanding(
            rt.id, project=rt.project
        )
        if outstanding:
            log.debug("recurring task %s: slot %s skipped, a task is still outstanding", rt.id, slot,
                      extra=about(recurring_id=rt.id))  # fmt: skip
            self._events.recurring_run(RecurringOutcome.SKIPPED)
            return 0
        settings = self._tasks.settings
        timeout = self._tasks.default_processing_timeout(rt.task_definition.http_request)
        new = rt.new_task(slot, settings.retry_times, timeout)
        try:
            # The project's quota applies: a refusal is this slot's error, tried again next pass.
            await self._tasks.insert(new, now, source=Source.RECURRING)
        except AlreadyExists:
            # Counted by the pass that enqueued it (this server's or a former leader's).
            log.debug("recurring task %s: slot %s was already enqueued", rt.id, slot,
                      extra=about(recurring_id=rt.id, task_id=new.id, queue=new.queue))  # fmt: skip
            return 0
        self._events.recurring_run(RecurringOutcome.ENQUEUED)
        return 1

    async def _record_error(self, rt: RecurringTask, error: Exception) -> None:
        """Best effort: make the failure visible on the recurring task itself."""
        try:
            await self._store.update_recurring(rt.failed_to_enqueue(describe_error(error), self._clock()))
        except Exception:
            log.exception("recurring task %s: its error could not be recorded", rt.id, extra=about(recurring_id=rt.id))
