"""Batch records and the counts of a batch's tasks.

Batches are small records in their own index (`{prefix}-batches`, `_id` = `{project}/{id}`), written with the
small-record helpers (conditional, refreshed at once: one write when a batch is created and one when it completes
or fails), read by realtime GET. A batch's tasks are counted by a terms aggregation over the live index and the
archive, filtered by project and `batch_id`: a search, so another server's finish shows within the refresh interval.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasques.domain.batch import Batch
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import TaskState
from tasques.store.elasticsearch.documents import _batch_from
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import batch_doc_id
from tasques.store.elasticsearch.records import RecordsMixin

_OPEN: JsonDict = {"bool": {"must_not": [{"exists": {"field": "completed_at"}}, {"exists": {"field": "failed_at"}}]}}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SWEEP_ORDER: list[JsonDict] = [{"metadata.created_at": "asc"}, {"project": "asc"}, {"id": "asc"}]


class BatchesMixin(RecordsMixin):
    async def insert_batch(self, batch: Batch) -> Batch:
        doc_id = batch_doc_id(batch.project, batch.id)
        return await self._create_small(self.names.batches, doc_id, batch, f"batch {batch.id} already exists")

    async def get_batch(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> Batch:
        doc_id = batch_doc_id(project, batch_id)
        return await self._get_small(self.names.batches, doc_id, self._batch_of, f"no batch {batch_id}")

    async def update_batch(self, batch: Batch) -> Batch:
        doc_id = batch_doc_id(batch.project, batch.id)
        return await self._replace_small(self.names.batches, doc_id, batch, f"batch {batch.id}")

    async def open_batches(self, limit: int, *, after: Batch | None = None) -> list[Batch]:
        if limit <= 0:
            return []
        kwargs: dict[str, Any] = {}
        if after is not None:
            # date_nanos sorts on nanoseconds since the epoch
            nanos = (after.metadata.created_at - _EPOCH) // timedelta(microseconds=1) * 1_000
            kwargs["search_after"] = [nanos, after.project, after.id]
        # One page (limit is the caller's batch size); the sort is unique per batch, so the caller pages with `after`.
        resp = await self._client.search(
            index=self.names.batches,
            query=_OPEN,
            sort=_SWEEP_ORDER,
            size=limit,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        hits: list[JsonDict] = resp.body["hits"]["hits"]
        parsed = (self._parse(self._batch_of, "batches", hit) for hit in hits)
        return [b for b in parsed if b is not None]

    async def batch_counts(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> dict[TaskState, int]:
        await self.refresher.ensure_fresh()  # this instance's own finishes are counted
        resp = await self._client.search(
            index=[self.names.tasks, self.names.archive_alias],
            query={"bool": {"filter": [{"term": {"project": project}}, {"term": {"batch_id": batch_id}}]}},
            size=0,
            aggs={"states": {"terms": {"field": "state", "size": len(TaskState)}}},
            ignore_unavailable=True,
            track_total_hits=False,
        )
        buckets: list[JsonDict] = resp.body["aggregations"]["states"]["buckets"]
        return {TaskState(b["key"]): int(b["doc_count"]) for b in buckets}

    def _batch_of(self, doc: JsonDict) -> Batch:
        return _batch_from(doc, self.sealer)
