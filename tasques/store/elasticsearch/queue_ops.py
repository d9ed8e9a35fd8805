"""Replay and queue operations on Elasticsearch: dead tasks by time of death, putting archived tasks back live,
conditional deletes, a queue's history purge, and its tasks finished since a time (in all, and per minute).

No `_delete_by_query` (the store never uses it): deletes are searches paged with `search_after`, each page one
`_bulk` of deletes conditional on the version searched. A restore is `op_type=create` on the live index, then a
conditional delete of the archived copy in the concrete archive index it was read from. A crash between the two
leaves both: `get_task` prefers the live one, and the same restore sent again recognises its own live copy
(`same_but_version`) and deletes the archived one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskState
from tasques.store.base import same_but_version
from tasques.store.elasticsearch.core import StoreCore, log
from tasques.store.elasticsearch.documents import _FINISHED, _OK, _item_error, _versioned, es_date
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import doc_log_fields, task_doc_id

# `finished_per_minute` names at most this many queues of a project (the terms aggregation's size; those with the
# most finished tasks in the window win). A dashboard's view, not a listing the server relies on.
MAX_THROUGHPUT_QUEUES = 1000
# A queue's tasks, unique per document within it: the sort of the purge's pages.
_BY_ID: list[JsonDict] = [{"id": "asc"}]


class QueueOpsMixin(StoreCore):
    """The `Store` methods of replay and queue operations."""

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
        if limit <= 0:
            return []
        filters: list[JsonDict] = [{"term": {"project": project}}, {"term": {"state": TaskState.DEAD.value}}]
        if queue is not None:
            filters.append({"term": {"queue": queue}})
        if kind is not None:
            filters.append({"term": {"kind": kind}})
        bounds: dict[str, str] = {}
        if since is not None:
            bounds["gte"] = es_date(since)
        if until is not None:
            bounds["lt"] = es_date(until)
        if bounds:
            filters.append({"range": {"metadata.modified_at": bounds}})
        if archived:
            index = self.names.archive_alias
        else:
            index = self.names.tasks
            await self.refresher.ensure_fresh()
        # (modified_at, queue, id) is unique within the project, as `_search_all` needs.
        sort: list[JsonDict] = [{"metadata.modified_at": "asc"}, {"queue": "asc"}, {"id": "asc"}]
        hits = await self._search_all(index, {"bool": {"filter": filters}}, sort, limit, seq_no_primary_term=True)
        parsed = (self._parse(self.task_of, "tasks", hit) for hit in hits)
        return [t for t in parsed if t is not None]

    async def restore_archived(self, tasks: Sequence[Task]) -> list[Task | Exception]:
        if not tasks:
            return []
        ids = [task_doc_id(t.project, t.queue, t.id) for t in tasks]
        archived = await self._archived_hits(ids)
        results: list[Task | Exception | None] = [None] * len(tasks)
        creates: list[int] = []
        ops: list[JsonDict] = []
        for i, (task, doc_id) in enumerate(zip(tasks, ids, strict=True)):
            hit = archived.get(doc_id)
            version = task.metadata.version
            if hit is None:
                results[i] = NotFound(f"no archived task {task.id} in queue {task.queue}")
            elif (hit["_seq_no"], hit["_primary_term"]) != (version.seq_num, version.primary_term):
                results[i] = VersionConflict(f"archived task {task.id} in queue {task.queue} changed since it was read")
            else:
                creates.append(i)
                ops.append({"create": {"_index": self.names.tasks, "_id": doc_id}})
                ops.append(self.source_of(task))
        if not creates:
            return [r if r is not None else VersionConflict("not written") for r in results]
        taken: list[int] = []
        for i, item in zip(creates, await self._bulk(ops), strict=True):
            if item["status"] in _OK:
                stored = _versioned(tasks[i], item["_seq_no"], item["_primary_term"])
                self.recent.wrote(ids[i], stored)
                results[i] = stored
            elif item["status"] == 409:
                taken.append(i)
            else:
                results[i] = _item_error("restore", item)
        if taken:
            await self._restored_before(tasks, ids, taken, results)
        moved = [i for i in creates if isinstance(results[i], Task)]
        await self._delete_archived([archived[ids[i]] for i in moved])
        return [r if r is not None else VersionConflict("not written") for r in results]

    async def _restored_before(
        self, tasks: Sequence[Task], ids: list[str], taken: list[int], results: list[Task | Exception | None]
    ) -> None:
        """Of restores whose live key is taken, those whose live task is this very restore (an earlier attempt got
        as far as the create) succeed with it; the others are `AlreadyExists`."""
        resp = await self._client.mget(index=self.names.tasks, ids=[ids[i] for i in taken], realtime=True)
        for i, doc in zip(taken, resp.body["docs"], strict=True):
            task = tasks[i]
            live = self.task_of(doc) if doc.get("found") else None
            if live is not None and same_but_version(live, task):
                results[i] = live
            else:
                results[i] = AlreadyExists(f"task {task.id} already exists in queue {task.queue}")

    async def _delete_archived(self, hits: list[JsonDict]) -> int:
        """Delete archived documents, each only at the version it was read; then make the deletes searchable."""
        if not hits:
            return 0
        ops = [_conditional_delete(hit["_index"], hit) for hit in hits]
        deleted = 0
        for item in await self._bulk(ops, live=False):
            if item["status"] in _OK or item["status"] == 404:
                deleted += item["status"] in _OK
            else:
                log.warning("archived copy of task %s not deleted: %s", item["_id"], item.get("error"),
                            extra=doc_log_fields(item["_id"]))  # fmt: skip
        await self._client.indices.refresh(index=self.names.archive_alias)
        return deleted

    async def delete_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict | NotFound]:
        if not tasks:
            return []
        ids = [task_doc_id(t.project, t.queue, t.id) for t in tasks]
        ops: list[JsonDict] = []
        for task, doc_id in zip(tasks, ids, strict=True):
            version = task.metadata.version
            ops.append(_conditional_delete(self.names.tasks, {"_id": doc_id, "_seq_no": version.seq_num,
                                                               "_primary_term": version.primary_term}))  # fmt: skip
        items = await self._bulk(ops, claimable=False)
        results: list[Task | VersionConflict | NotFound | None] = [None] * len(tasks)
        refused: list[int] = []
        for i, item in enumerate(items):
            self.recent.forget(ids[i])
            if item["status"] in _OK:
                results[i] = tasks[i]
            elif item["status"] in (404, 409):
                refused.append(i)
            else:
                raise _item_error("delete", item)
        if refused:
            resp = await self._client.mget(index=self.names.tasks, ids=[ids[i] for i in refused], source=False)
            for i, doc in zip(refused, resp.body["docs"], strict=True):
                task = tasks[i]
                results[i] = (
                    VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read")
                    if doc.get("found")
                    else NotFound(f"no task {task.id} in queue {task.queue}")
                )
        return [r if r is not None else VersionConflict("not deleted") for r in results]

    async def purge_finished(self, queue: str, *, project: str = DEFAULT_PROJECT) -> int:
        query: JsonDict = {
            "bool": {
                "filter": [{"term": {"project": project}}, {"term": {"queue": queue}}, {"terms": {"state": _FINISHED}}]
            }
        }
        await self.refresher.ensure_fresh()
        deleted = await self._purge_pages(self.names.tasks, query, live=True)
        deleted += await self._purge_pages(self.names.archive_alias, query, live=False)
        await self._client.indices.refresh(index=self.names.archive_alias)
        await self._purge_attempts(project, queue)
        return deleted

    async def _purge_pages(self, index: str, query: JsonDict, *, live: bool) -> int:
        """Delete every hit of `query` in `index`, a page at a time, each at the version searched."""
        deleted = 0
        after: list[Any] | None = None
        size = self._settings.page_size
        while True:
            resp = await self._client.search(
                index=index, query=query, sort=_BY_ID, size=size, search_after=after, source=False,
                seq_no_primary_term=True, track_total_hits=False,
            )  # fmt: skip
            hits: list[JsonDict] = resp.body["hits"]["hits"]
            if hits:
                items = await self._bulk(
                    [_conditional_delete(h["_index"], h) for h in hits], live=live, claimable=False
                )
                for item in items:
                    self.recent.forget(item["_id"])
                deleted += sum(1 for item in items if item["status"] in _OK)
            if len(hits) < size:
                return deleted
            after = hits[-1]["sort"]

    async def _purge_attempts(self, project: str, queue: str) -> None:
        """Delete the attempts of the queue's tasks that are gone (neither live nor archived any more)."""
        await self.timeline_refresher.ensure_fresh()
        query = {"bool": {"filter": [{"term": {"project": project}}, {"term": {"queue": queue}}]}}
        sort: list[JsonDict] = [{"task_id": "asc"}, {"run": "asc"}, {"attempt": "asc"}]
        after: list[Any] | None = None
        size = self._settings.page_size
        while True:
            resp = await self._client.search(
                index=self.names.timeline, query=query, sort=sort, size=size, search_after=after,
                source_includes=["task_id"], track_total_hits=False,
            )  # fmt: skip
            hits: list[JsonDict] = resp.body["hits"]["hits"]
            if hits:
                task_ids = {task_doc_id(project, queue, h["_source"]["task_id"]) for h in hits}
                there = await self._still_there(sorted(task_ids))
                ops: list[JsonDict] = [
                    {"delete": {"_index": self.names.timeline, "_id": h["_id"]}}
                    for h in hits
                    if task_doc_id(project, queue, h["_source"]["task_id"]) not in there
                ]
                if ops:
                    await self._bulk(ops, live=False)
                    self.timeline_refresher.wrote()
            if len(hits) < size:
                return
            after = hits[-1]["sort"]

    async def _still_there(self, doc_ids: list[str]) -> set[str]:
        """Which of these task `_id`s are live (realtime) or archived."""
        resp = await self._client.mget(index=self.names.tasks, ids=doc_ids, source=False)
        there = {doc["_id"] for doc in resp.body["docs"] if doc.get("found")}
        missing = [d for d in doc_ids if d not in there]
        if missing:
            there.update(await self._archived_hits(missing))
        return there

    async def count_finished_since(self, queue: str, since: datetime, *, project: str = DEFAULT_PROJECT) -> int:
        await self.refresher.ensure_fresh()
        filters: list[JsonDict] = [
            {"term": {"project": project}},
            {"term": {"queue": queue}},
            {"terms": {"state": _FINISHED}},
            {"range": {"metadata.modified_at": {"gte": es_date(since)}}},
        ]
        resp = await self._client.count(index=self.names.tasks, query={"bool": {"filter": filters}})
        return int(resp.body["count"])

    async def finished_per_minute(self, since: datetime, *, project: str) -> dict[str, dict[datetime, int]]:
        await self.refresher.ensure_fresh()
        filters: list[JsonDict] = [
            {"term": {"project": project}},
            {"terms": {"state": _FINISHED}},
            {"range": {"metadata.modified_at": {"gte": es_date(since)}}},
        ]
        minutes: JsonDict = {"field": "metadata.modified_at", "fixed_interval": "1m", "min_doc_count": 1}
        resp = await self._client.search(
            index=self.names.tasks, query={"bool": {"filter": filters}}, size=0, track_total_hits=False,
            aggs={"queues": {"terms": {"field": "queue", "size": MAX_THROUGHPUT_QUEUES},
                             "aggs": {"minutes": {"date_histogram": minutes}}}},
        )  # fmt: skip
        out: dict[str, dict[datetime, int]] = {}
        for bucket in resp.body["aggregations"]["queues"]["buckets"]:
            # Bucket keys are epoch milliseconds (date_nanos too), each a minute's start in UTC.
            out[str(bucket["key"])] = {
                datetime.fromtimestamp(int(m["key"]) // 1000, UTC): int(m["doc_count"])
                for m in bucket["minutes"]["buckets"]
            }
        return out


def _conditional_delete(index: str, hit: JsonDict) -> JsonDict:
    """A bulk delete of the document a hit names, only while it still has the hit's version."""
    return {
        "delete": {
            "_index": index,
            "_id": hit["_id"],
            "if_seq_no": hit["_seq_no"],
            "if_primary_term": hit["_primary_term"],
        }
    }
