"""Recurring task use cases, and the enqueuer the leader runs."""

from __future__ import annotations

import logging

from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, VersionConflict
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.schedule import ScheduleError, parse_schedule
from tasques.domain.task import Metadata
from tasques.service.clock import Clock
from tasques.service.tasks import TaskService
from tasques.store.base import Store

log = logging.getLogger(__name__)


def _check_schedule(expression: str) -> None:
    try:
        parse_schedule(expression)
    except ScheduleError as e:
        raise InvalidInput("invalid schedule", [FieldProblem("schedule_expression", str(e))]) from e


class RecurringService:
    def __init__(self, store: Store, tasks: TaskService, clock: Clock) -> None:
        self._store = store
        self._tasks = tasks
        self._clock = clock

    async def create(
        self,
        *,
        task_id: str,
        schedule_expression: str,
        task_definition: TaskDefinition,
        skip_if_outstanding_tasks_exist: bool = False,
    ) -> RecurringTask:
        _check_schedule(schedule_expression)
        self._check_request(task_definition)
        now = self._clock()
        task = RecurringTask(
            id=task_id,
            schedule_expression=schedule_expression,
            task_definition=task_definition,
            skip_if_outstanding_tasks_exist=skip_if_outstanding_tasks_exist,
            # Slots are counted from creation: the first task is enqueued at the first slot after now.
            last_slot_at=now,
            metadata=Metadata(created_at=now, modified_at=now),
        )
        return await self._store.insert_recurring(task)

    def _check_request(self, definition: TaskDefinition) -> None:
        if definition.http_request is not None:
            self._tasks.check_http_request(definition.http_request, "task_definition.http_request")

    async def get(self, task_id: str) -> RecurringTask:
        return await self._store.get_recurring(task_id)

    async def list_all(self) -> list[RecurringTask]:
        return await self._store.list_recurring()

    async def update(
        self,
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
        for _ in range(self._tasks.settings.conflict_retries):
            current = await self._store.get_recurring(task_id)
            now = self._clock()
            changes: dict[str, object] = {"metadata": current.metadata.model_copy(update={"modified_at": now})}
            if schedule_expression is not None:
                changes["schedule_expression"] = schedule_expression
            if task_definition is not None:
                changes["task_definition"] = task_definition
            if skip_if_outstanding_tasks_exist is not None:
                changes["skip_if_outstanding_tasks_exist"] = skip_if_outstanding_tasks_exist
            try:
                return await self._store.update_recurring(current.model_copy(update=changes))
            except VersionConflict:
                continue
        raise VersionConflict(f"recurring task {task_id} kept changing; gave up after retries")

    async def delete(self, task_id: str) -> RecurringTask:
        return await self._store.delete_recurring(task_id)

    async def enqueue_due(self) -> int:
        """Enqueue the due slot of every recurring task. Safe to run on any server, any number of times.

        The task id derives from (recurring id, slot), so a slot enqueues at most once even across a leader
        failover between the insert and the bookkeeping write.
        """
        enqueued = 0
        for rt in await self._store.list_recurring():
            try:
                enqueued += await self._enqueue_one(rt)
            except VersionConflict:
                log.info("recurring task %s changed while enqueueing; it is picked up next pass", rt.id)
        return enqueued

    async def _enqueue_one(self, rt: RecurringTask) -> int:
        now = self._clock()
        updated = rt
        if rt.loaded_at is None or rt.loaded_at < rt.metadata.modified_at:
            updated = updated.loaded(now)
        slot = rt.due_slot(now)
        enqueued = 0
        if slot is not None:
            if rt.skip_if_outstanding_tasks_exist and await self._store.count_outstanding(rt.id) > 0:
                log.debug("recurring task %s: slot %s skipped, a task is still outstanding", rt.id, slot)
            else:
                settings = self._tasks.settings
                timeout = self._tasks.default_processing_timeout(rt.task_definition.http_request)
                new = rt.new_task(slot, settings.retry_times, timeout)
                try:
                    await self._tasks.insert(new, now)
                    enqueued = 1
                except AlreadyExists:
                    log.info("recurring task %s: slot %s was already enqueued", rt.id, slot)
            updated = updated.handled(slot)
        if updated is not rt:
            await self._store.update_recurring(updated)
        return enqueued
