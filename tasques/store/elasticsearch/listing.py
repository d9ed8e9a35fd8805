"""Listings and counts of live tasks: `list_tasks` (keyset paging), `queue_counts` (a composite aggregation
by project and queue) and the counts of outstanding tasks. Each is confined to the project it names, waits
for the refresh that covers this instance's writes, and sees other servers' within the refresh interval.
See README.md, "Listing and counts".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import TaskState
from tasques.store.base import QueueCounts, TaskFilter, TaskPage
from tasques.store.cursor import decode_cursor, encode_cursor
from tasques.store.elasticsearch.core import MAX_PAGE, StoreCore
from tasques.store.elasticsearch.documents import _CLAIMABLE, _FINISHED
from tasques.store.elasticsearch.mappings import JsonDict


class ListingMixin(StoreCore):
    """Listing and counting live tasks."""

    async def list_tasks(self, flt: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        if limit <= 0:
            raise InvalidInput("limit must be positive", [FieldProblem(field="limit", problem="must be at least 1")])
        limit = min(limit, MAX_PAGE - 1)
        after = decode_cursor(cursor) if cursor is not None else None
        filters: list[JsonDict] = [{"term": {"project": flt.project}}]
        if flt.queue is not None:
            filters.append({"term": {"queue": flt.queue}})
        if flt.states:
            filters.append({"terms": {"state": sorted(s.value for s in flt.states)}})
        if flt.kind is not None:
            filters.append({"term": {"kind": flt.kind}})
        if flt.recurring_task_id is not None:
            filters.append({"term": {"recurring_task_id": flt.recurring_task_id}})
        kwargs: dict[str, Any] = {}
        if after is not None:
            created_us, queue, task_id = after
            kwargs["search_after"] = [created_us * 1_000, queue, task_id]  # date_nanos sorts on nanoseconds
        await self.refresher.ensure_fresh()
        resp = await self._client.search(
            index=self.names.tasks,
            query={"bool": {"filter": filters}},
            sort=[{"metadata.created_at": "desc"}, {"queue": "desc"}, {"id": "desc"}],
            size=limit + 1,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        hits: list[JsonDict] = resp.body["hits"]["hits"]
        tasks = [self.task_of(hit) for hit in hits[:limit]]
        next_cursor = None
        if len(hits) > limit:
            created_ns, queue, task_id = hits[limit - 1]["sort"]
            next_cursor = encode_cursor((int(created_ns) // 1_000, str(queue), str(task_id)))
        return TaskPage(tasks=tasks, next_cursor=next_cursor)

    async def queue_counts(self, *, project: str | None = None) -> list[QueueCounts]:
        """Every (project, queue)'s counts: a composite aggregation paged by `after_key`, `page_size` at a time."""
        await self.refresher.ensure_fresh()
        query: JsonDict = {"match_all": {}} if project is None else {"term": {"project": project}}
        out: list[QueueCounts] = []
        after: JsonDict | None = None
        while True:
            composite: JsonDict = {
                "size": self._settings.page_size,
                "sources": [{"project": {"terms": {"field": "project"}}}, {"queue": {"terms": {"field": "queue"}}}],
            }
            if after is not None:
                composite["after"] = after
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                size=0,
                track_total_hits=False,
                aggs={
                    "queues": {
                        "composite": composite,
                        "aggs": {
                            "states": {"terms": {"field": "state", "size": len(TaskState)}},
                            "waiting": {
                                "filter": {"terms": {"state": _CLAIMABLE}},
                                "aggs": {"earliest": {"min": {"field": "run_at"}}},
                            },
                        },
                    }
                },
            )
            agg = resp.body["aggregations"]["queues"]
            for bucket in agg["buckets"]:
                counts = {TaskState(b["key"]): int(b["doc_count"]) for b in bucket["states"]["buckets"]}
                earliest = bucket["waiting"]["earliest"].get("value")
                out.append(
                    QueueCounts(
                        queue=str(bucket["key"]["queue"]),
                        project=str(bucket["key"]["project"]),
                        counts=counts,
                        # A min over date_nanos answers epoch milliseconds: close enough for an age.
                        earliest_run_at=datetime.fromtimestamp(earliest / 1000, UTC) if earliest is not None else None,
                    )
                )
            after = agg.get("after_key")
            if len(agg["buckets"]) < self._settings.page_size or after is None:
                return out

    async def count_outstanding(self, recurring_task_id: str, *, project: str = DEFAULT_PROJECT) -> int:
        return await self._count_unfinished([{"term": {"recurring_task_id": recurring_task_id}}], project)

    async def count_project_outstanding(self, project: str) -> int:
        """Exact for this instance's writes; other servers' within the refresh interval (a quota-checked insert
        does not rely on it alone: see quota.py)."""
        return await self._count_unfinished([], project)

    async def _count_unfinished(self, filters: list[JsonDict], project: str) -> int:
        await self.refresher.ensure_fresh()
        resp = await self._client.count(
            index=self.names.tasks,
            query={
                "bool": {
                    "filter": [{"term": {"project": project}}, *filters],
                    "must_not": [{"terms": {"state": _FINISHED}}],
                }
            },
        )
        return int(resp.body["count"])
