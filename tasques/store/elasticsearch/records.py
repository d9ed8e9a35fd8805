"""Records of the Elasticsearch store besides tasks: recurring tasks, queue settings, the attempt timeline
and the leader lock.

Each in its own small index. Recurring tasks and queue settings (rare writes) are written with
`refresh=true` (conditional creates and replaces in `_create_small`/`_replace_small`), so every server lists
them at once. Attempts (one per dispatch) are not: like tasks, they rely on a coalesced refresher, so this
server's timeline reads see them and other servers' within the refresh interval. The lock is only read by
realtime GET.
See README.md, "Leader lock".
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from elasticsearch import ConflictError, NotFoundError

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.timeline import Attempt
from tasques.store.elasticsearch.core import StoreCore
from tasques.store.elasticsearch.documents import (
    _OK,
    _queue_settings_from,
    _Versioned,
    _versioned,
    _with_version,
    es_date,
)
from tasques.store.elasticsearch.mappings import JsonDict

_DELETE_RETRIES = 5


class RecordsMixin(StoreCore):
    """Recurring tasks, queue settings, attempts and the leader lock."""

    # Recurring tasks: rare writes, each refreshed at once so every server's list_recurring sees it.

    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        return await self._create_small(self.names.recurring, task.id, task, f"recurring task {task.id} already exists")

    async def get_recurring(self, task_id: str) -> RecurringTask:
        try:
            resp = await self._client.get(index=self.names.recurring, id=task_id)
        except NotFoundError:
            raise NotFound(f"no recurring task {task_id}") from None
        return self.recurring_of(resp.body)

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        return await self._replace_small(self.names.recurring, task.id, task, f"recurring task {task.id}")

    async def delete_recurring(self, task_id: str) -> RecurringTask:
        for _ in range(_DELETE_RETRIES):
            current = await self.get_recurring(task_id)
            version = current.metadata.version
            try:
                await self._client.delete(
                    index=self.names.recurring,
                    id=task_id,
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

    async def list_recurring(self) -> list[RecurringTask]:
        hits = await self._search_all(
            self.names.recurring, {"match_all": {}}, [{"id": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(self.recurring_of, "recurring", hit) for hit in hits)
        return [r for r in parsed if r is not None]

    # Queue settings: rare writes, each refreshed at once so every server's list_queue_settings sees it.

    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        return await self._create_small(
            self.names.queues, settings.queue, settings, f"queue {settings.queue} already has settings"
        )

    async def get_queue_settings(self, queue: str) -> QueueSettings:
        try:
            resp = await self._client.get(index=self.names.queues, id=queue)
        except NotFoundError:
            raise NotFound(f"no settings for queue {queue}") from None
        return QueueSettings.model_validate(_with_version(resp.body))

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        return await self._replace_small(
            self.names.queues, settings.queue, settings, f"settings of queue {settings.queue}"
        )

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

    async def list_queue_settings(self) -> list[QueueSettings]:
        hits = await self._search_all(
            self.names.queues, {"match_all": {}}, [{"queue": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(_queue_settings_from, "queues", hit) for hit in hits)
        return [q for q in parsed if q is not None]

    # Attempt timeline: one write per dispatch, so no refresh per write; reads wait for the coalesced one.

    async def insert_attempt(self, attempt: Attempt) -> None:
        try:
            await self._client.index(
                index=self.names.timeline, id=attempt.key, document=attempt.model_dump(mode="json")
            )
        finally:
            self.timeline_refresher.wrote()

    async def list_attempts(self, queue: str, task_id: str) -> list[Attempt]:
        await self.timeline_refresher.ensure_fresh()
        hits = await self._search_all(
            self.names.timeline,
            {"bool": {"filter": [{"term": {"queue": queue}}, {"term": {"task_id": task_id}}]}},
            [{"run": "asc"}, {"attempt": "asc"}],  # unique within one task: the document id is queue/id/run/attempt
        )
        return [Attempt.model_validate(hit["_source"]) for hit in hits]

    async def delete_attempts(self, ended_before: datetime, limit: int) -> int:
        deleted = 0
        # A page at a time; deleted attempts are gone after the refresh, so each search starts again.
        await self.timeline_refresher.ensure_fresh()
        while deleted < limit:
            size = min(self._settings.page_size, limit - deleted)
            resp = await self._client.search(
                index=self.names.timeline,
                query={"range": {"ended_at": {"lt": es_date(ended_before)}}},
                sort=[{"ended_at": "asc"}],
                size=size,
                source=False,
                track_total_hits=False,
            )
            hits = resp.body["hits"]["hits"]
            if not hits:
                break
            ops: list[JsonDict] = [{"delete": {"_index": self.names.timeline, "_id": hit["_id"]}} for hit in hits]
            items = await self._bulk(ops, live=False)
            await self._client.indices.refresh(index=self.names.timeline)
            page_deleted = sum(1 for item in items if item["status"] in _OK)
            deleted += page_deleted
            if page_deleted < size:
                break
        return deleted

    # Leader lock

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        es_date(now)
        document = {"holder": holder, "expires_at": es_date(expires_at)}
        held = self._held_locks.pop(name, None)
        if held is not None and held[0] == holder:
            # A renewal: conditional on the version we wrote last, so no read first (one request, not two).
            # A conflict means someone wrote the lock since: then look, as for a first take.
            with contextlib.suppress(ConflictError):
                return self._hold(name, holder, await self._write_lock(name, document, held[1], held[2]))
        try:
            resp = await self._client.get(index=self.names.locks, id=name)
        except NotFoundError:
            try:
                written = await self._client.index(index=self.names.locks, id=name, document=document, op_type="create")
            except ConflictError:
                return False
            return self._hold(name, holder, written.body)
        source = resp.body["_source"]
        if source["holder"] != holder and datetime.fromisoformat(source["expires_at"]) > now:
            return False
        try:
            body = await self._write_lock(name, document, resp.body["_seq_no"], resp.body["_primary_term"])
        except ConflictError:
            return False
        return self._hold(name, holder, body)

    async def _write_lock(self, name: str, document: JsonDict, seq_no: int, primary_term: int) -> JsonDict:
        resp = await self._client.index(
            index=self.names.locks, id=name, document=document, if_seq_no=seq_no, if_primary_term=primary_term
        )
        return dict(resp.body)

    def _hold(self, name: str, holder: str, written: JsonDict) -> bool:
        self._held_locks[name] = (holder, written["_seq_no"], written["_primary_term"])
        return True

    async def release_lock(self, name: str, holder: str) -> None:
        self._held_locks.pop(name, None)
        try:
            resp = await self._client.get(index=self.names.locks, id=name)
        except NotFoundError:
            return
        if resp.body["_source"]["holder"] != holder:
            return
        # A conflict: renewed, taken over or released meanwhile, so not ours to delete any more.
        with contextlib.suppress(ConflictError, NotFoundError):
            await self._client.delete(
                index=self.names.locks,
                id=name,
                if_seq_no=resp.body["_seq_no"],
                if_primary_term=resp.body["_primary_term"],
            )
