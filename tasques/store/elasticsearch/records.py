"""Recurring tasks and queue settings of the Elasticsearch store, and the helpers of every small record.

Each in its own small index, `_id` = `{project}/{id}` and `{project}/{queue}`. Rare writes, each written with
`refresh=true` (conditional creates and replaces in `_create_small`/`_replace_small`, reads in `_get_small`, also
used by admin.py), so every server lists them at once; reads of one record are realtime GETs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from elasticsearch import ConflictError, NotFoundError

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.store.elasticsearch.core import RMW_RETRIES, StoreCore
from tasques.store.elasticsearch.documents import (
    _queue_settings_from,
    _Versioned,
    _versioned,
)
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import queue_doc_id, recurring_doc_id

R = TypeVar("R")


def _of_project(project: str | None) -> JsonDict:
    return {"match_all": {}} if project is None else {"term": {"project": project}}


class RecordsMixin(StoreCore):
    """Recurring tasks and queue settings."""

    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        doc_id = recurring_doc_id(task.project, task.id)
        return await self._create_small(self.names.recurring, doc_id, task, f"recurring task {task.id} already exists")

    async def get_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        doc_id = recurring_doc_id(project, task_id)
        return await self._get_small(self.names.recurring, doc_id, self.recurring_of, f"no recurring task {task_id}")

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        doc_id = recurring_doc_id(task.project, task.id)
        return await self._replace_small(self.names.recurring, doc_id, task, f"recurring task {task.id}")

    async def delete_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        for _ in range(RMW_RETRIES):
            current = await self.get_recurring(task_id, project=project)
            version = current.metadata.version
            try:
                await self._client.delete(
                    index=self.names.recurring,
                    id=recurring_doc_id(project, task_id),
                    if_seq_no=version.seq_num,
                    if_primary_term=version.primary_term,
                    refresh=True,
                )
            except ConflictError:
                continue  # changed (or deleted) since it was read: read it again
            except NotFoundError:
                raise NotFound(f"no recurring task {task_id}") from None
            return current
        raise VersionConflict(f"recurring task {task_id} kept changing; not deleted")

    async def list_recurring(self, *, project: str | None = None) -> list[RecurringTask]:
        hits = await self._search_all(
            self.names.recurring, _of_project(project), [{"project": "asc"}, {"id": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(self.recurring_of, "recurring", hit) for hit in hits)
        return [r for r in parsed if r is not None]

    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        doc_id = queue_doc_id(settings.project, settings.queue)
        return await self._create_small(
            self.names.queues, doc_id, settings, f"queue {settings.queue} already has settings"
        )

    async def get_queue_settings(self, queue: str, *, project: str = DEFAULT_PROJECT) -> QueueSettings:
        doc_id = queue_doc_id(project, queue)
        return await self._get_small(self.names.queues, doc_id, _queue_settings_from, f"no settings for queue {queue}")

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        doc_id = queue_doc_id(settings.project, settings.queue)
        return await self._replace_small(self.names.queues, doc_id, settings, f"settings of queue {settings.queue}")

    async def list_queue_settings(self, *, project: str | None = None) -> list[QueueSettings]:
        hits = await self._search_all(
            self.names.queues, _of_project(project), [{"project": "asc"}, {"queue": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(_queue_settings_from, "queues", hit) for hit in hits)
        return [q for q in parsed if q is not None]

    async def _get_small(self, index: str, doc_id: str, parse: Callable[[JsonDict], R], missing: str) -> R:
        """A realtime GET of one small record: it sees every server's writes at once."""
        try:
            resp = await self._client.get(index=index, id=doc_id)
        except NotFoundError:
            raise NotFound(missing) from None
        return parse(resp.body)

    async def _create_small(self, index: str, doc_id: str, record: _Versioned, taken: str) -> _Versioned:
        """Create a rarely written record, refreshed at once so every server lists it."""
        try:
            resp = await self._client.index(
                index=index, id=doc_id, document=self.source_of(record), op_type="create", refresh=True
            )
        except ConflictError:
            raise AlreadyExists(taken) from None
        return _versioned(record, resp.body["_seq_no"], resp.body["_primary_term"])

    async def _replace_small(self, index: str, doc_id: str, record: _Versioned, what: str) -> _Versioned:
        """Conditional replace of a rarely written record, refreshed at once so every server lists it."""
        version = record.metadata.version
        try:
            resp = await self._client.index(
                index=index,
                id=doc_id,
                document=self.source_of(record),
                if_seq_no=version.seq_num,
                if_primary_term=version.primary_term,
                refresh=True,
            )
        except ConflictError:
            if await self._client.exists(index=index, id=doc_id):
                raise VersionConflict(f"{what} changed since it was read") from None
            raise NotFound(f"no {what}") from None
        return _versioned(record, resp.body["_seq_no"], resp.body["_primary_term"])
