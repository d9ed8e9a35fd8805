"""The attempt timeline of the Elasticsearch store: one document per attempt of an HTTP-target task.

`_id` = `{project}/{queue}/{task id}/{run}/{attempt}`. One write per dispatch, so no write refreshes: like
tasks, reads rely on a coalesced refresher of their own, so this server's timeline reads see its attempts and
other servers' within the refresh interval. Pruned by search + bulk delete (of every project).
"""

from __future__ import annotations

from datetime import datetime

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.timeline import Attempt
from tasques.store.elasticsearch.core import StoreCore
from tasques.store.elasticsearch.documents import _OK, es_date
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import attempt_doc_id


class TimelineMixin(StoreCore):
    """Attempts: record, list per task, prune."""

    async def insert_attempt(self, attempt: Attempt) -> None:
        try:
            await self._client.index(
                index=self.names.timeline, id=attempt_doc_id(attempt), document=attempt.model_dump(mode="json")
            )
        finally:
            self.timeline_refresher.wrote()

    async def list_attempts(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> list[Attempt]:
        await self.timeline_refresher.ensure_fresh()
        filters = [{"term": {"project": project}}, {"term": {"queue": queue}}, {"term": {"task_id": task_id}}]
        hits = await self._search_all(
            self.names.timeline,
            {"bool": {"filter": filters}},
            [
                {"run": "asc"},
                {"attempt": "asc"},
            ],  # unique within one task: the document id is project/queue/id/run/attempt
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
