"""Task reads and writes of the Elasticsearch store, claims, listings and archiving aside.

Inserts (one `_bulk` of `op_type=create`, after the quota's admission when one is asked for, then the check
that refuses archived ids, skipped for ids the server generated), the realtime `get_task` with its archive
fallback, conditional updates and `ping`. See README.md, "Writes" and "Quotas".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from elasticsearch import ApiError, ConflictError, NotFoundError

from tasques.domain.errors import AlreadyExists, NotFound, StoreUnavailable, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task
from tasques.store.base import GeneratedKeys
from tasques.store.elasticsearch.core import log
from tasques.store.elasticsearch.documents import (
    _OK,
    _item_error,
    _versioned,
)
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import doc_log_fields, task_doc_id
from tasques.store.elasticsearch.quota import QuotaMixin


class TasksMixin(QuotaMixin):
    """Inserts, gets, updates, listing and counts of tasks."""

    async def insert_task(self, task: Task, *, generated: GeneratedKeys = frozenset()) -> Task:
        [stored] = await self.insert_tasks([task], generated=generated)
        if isinstance(stored, AlreadyExists):
            raise stored
        return stored

    async def insert_tasks(
        self, tasks: Sequence[Task], *, generated: GeneratedKeys = frozenset(), quota: int | None = None
    ) -> list[Task | AlreadyExists]:
        if not tasks:
            return []
        index = self.names.tasks
        doc_ids = [task_doc_id(task.project, task.queue, task.id) for task in tasks]
        if quota is not None:
            await self._admit(tasks, doc_ids, quota)  # or QuotaExceeded, nothing written
        ops: list[JsonDict] = []
        for task, doc_id in zip(tasks, doc_ids, strict=True):
            ops.append({"create": {"_index": index, "_id": doc_id}})
            ops.append(self.source_of(task))
        items = await self._bulk(ops)
        results: list[Task | AlreadyExists] = []
        created: dict[str, tuple[int, JsonDict]] = {}
        # A 409 is AlreadyExists even if the request was a transport retry of our own create: the same task
        # twice in one batch has the same source, so "our own write" cannot be told apart here.
        for task, item in zip(tasks, items, strict=True):
            status = item["status"]
            if status in _OK:
                if (task.queue, task.id) not in generated:  # a generated id cannot be archived: no search
                    created[item["_id"]] = (len(results), item)
                results.append(_versioned(task, item["_seq_no"], item["_primary_term"]))
            elif status == 409:
                results.append(AlreadyExists(f"task {task.id} already exists in queue {task.queue}"))  # its project
            else:
                raise _item_error("insert", item)
        if created:
            await self._refuse_archived(tasks, created, results)
        return results

    async def _refuse_archived(
        self, tasks: Sequence[Task], created: dict[str, tuple[int, JsonDict]], results: list[Task | AlreadyExists]
    ) -> None:
        """Undo the creation of tasks whose id is archived.

        Checked after creating, not before: the archiver makes its archive copy searchable before it deletes
        the live task, so once a create has succeeded the archive check cannot miss a concurrent archiving.
        """
        archived = [doc_id for doc_id in await self._archived_hits(list(created)) if doc_id in created]
        if not archived:
            return
        ops: list[JsonDict] = []
        for doc_id in archived:
            _, item = created[doc_id]
            ops.append(
                {
                    "delete": {
                        "_index": self.names.tasks,
                        "_id": doc_id,
                        "if_seq_no": item["_seq_no"],
                        "if_primary_term": item["_primary_term"],
                    }
                }
            )
        for doc_id, item in zip(archived, await self._bulk(ops), strict=True):
            if item["status"] not in _OK:
                log.warning("task %s is archived but its re-insert could not be undone: %s", doc_id, item,
                            extra=doc_log_fields(doc_id))  # fmt: skip
            position, _ = created[doc_id]
            task = tasks[position]
            results[position] = AlreadyExists(f"task {task.id} already exists in queue {task.queue} (archived)")

    async def get_task(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> Task:
        doc_id = task_doc_id(project, queue, task_id)
        try:
            resp = await self._client.get(index=self.names.tasks, id=doc_id)
        except NotFoundError:
            pass
        else:
            return self.task_of(resp.body)
        resp = await self._client.search(
            index=self.names.archive_alias,
            query={"ids": {"values": [doc_id]}},
            size=1,
            seq_no_primary_term=True,
            track_total_hits=False,
        )
        hits = resp.body["hits"]["hits"]
        if not hits:
            raise NotFound(f"no task {task_id} in queue {queue}")
        return self.task_of(hits[0])

    async def update_task(self, task: Task) -> Task:
        doc_id = task_doc_id(task.project, task.queue, task.id)
        version = task.metadata.version
        # Built once: sealed fields take a fresh nonce each time, and the own-write check below compares it.
        document = self.source_of(task)
        try:
            resp = await self._client.index(
                index=self.names.tasks,
                id=doc_id,
                document=document,
                if_seq_no=version.seq_num,
                if_primary_term=version.primary_term,
            )
        except ConflictError:
            self.refresher.wrote(claimable=task.claimable)
            # Also what a conditional write on a missing document answers.
            try:
                current = await self._client.get(index=self.names.tasks, id=doc_id)
            except NotFoundError:
                raise NotFound(f"no task {task.id} in queue {task.queue}") from None
            if current.body["_source"] != document:
                raise VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read") from None
            resp = current  # our own write, applied before a transport retry of the same request
        except BaseException:
            self.refresher.wrote(claimable=task.claimable)
            raise
        generation = self.refresher.wrote(claimable=task.claimable)
        if task.claimable:
            self._put_back([doc_id])
        else:
            self._took_out([doc_id], generation)
        stored = _versioned(task, resp.body["_seq_no"], resp.body["_primary_term"])
        self.recent.wrote(doc_id, stored)
        return stored

    async def update_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict]:
        if not tasks:
            return []
        ops: list[JsonDict] = []
        for task in tasks:
            ops.extend(self._conditional_index(task, task))
        results: list[Task | VersionConflict] = []
        items = await self._bulk(ops, claimable=any(t.claimable for t in tasks))
        mine = await self._own(items, ops)
        for task, item in zip(tasks, items, strict=True):
            item = mine.get(item["_id"], item)
            if item.get("found") or item["status"] in _OK:
                stored = _versioned(task, item["_seq_no"], item["_primary_term"])
                self.recent.wrote(item["_id"], stored)
                results.append(stored)
            elif item["status"] == 409:
                # Changed or gone (the protocol's slot has no NotFound; a re-read by the caller will tell).
                results.append(VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read"))
            else:
                raise _item_error("update", item)
        return results

    async def ping(self, within: timedelta) -> None:
        # A count on the live index: answered only while the cluster has a master and the index's shards.
        try:
            await self._client.options(request_timeout=within.total_seconds()).count(index=self.names.tasks)
        except ApiError as e:  # e.g. the index is missing: not ready either
            raise StoreUnavailable(f"elasticsearch answered {e.meta.status} ({e.error})") from e
