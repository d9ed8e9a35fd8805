"""The worker registry of the Elasticsearch store: `{prefix}-workers`, `_id` = `worker_doc_id(project, id)`.

Sightings: a merge takes the later `last_seen_at`, the union of the queues and the newer version and host,
and keeps the drain flag, which a partial `update` cannot do without a script (and this store runs none).
So `record_workers` reads the current documents with one realtime `_mget`, merges in Python, and writes every
record in one `_bulk`: a conditional `index` (`if_seq_no`/`if_primary_term`) of each one read, a `create` of
each one missing. A write that loses a race (a drain, or another server's sightings, got in between) is read and
merged again, up to `RECORD_ROUNDS` bulks in all; one still losing after that is dropped with a warning (its
worker's next sighting, a second later, carries the news again). No write refreshes: listings refresh the index
first when this instance wrote to it (`workers_refresher`), like the timeline.

A drain (`set_worker_draining`) is a realtime GET and a conditional replace with `refresh=true`, retried on
conflicts: every server's next listing sees it.

`claims_by_worker` is a composite terms aggregation on `last_claimed.worker_id` over the project's claimed tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from elasticsearch import ConflictError, NotFoundError

from tasques.domain.errors import NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import TaskState
from tasques.domain.worker import MAX_WORKER_QUEUES, WorkerRecord, WorkerSighting
from tasques.store.elasticsearch.core import RMW_RETRIES, StoreCore
from tasques.store.elasticsearch.documents import _item_error, es_date
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import worker_doc_id

log = logging.getLogger("tasques.store.elasticsearch")

# Bulks one `record_workers` call sends at most (the first, and one per round of lost races).
RECORD_ROUNDS = 3


def _by_doc(sightings: Sequence[WorkerSighting]) -> dict[str, list[WorkerSighting]]:
    out: dict[str, list[WorkerSighting]] = {}
    for s in sightings:
        out.setdefault(worker_doc_id(s.project, s.worker_id), []).append(s)
    return out


def _folded(record: WorkerRecord | None, sightings: list[WorkerSighting]) -> WorkerRecord:
    for s in sightings:
        record = _merged(record, s)
    assert record is not None
    return record


def _merged(record: WorkerRecord | None, s: WorkerSighting) -> WorkerRecord:
    """`record` (None: not stored yet) after the sighting `s`; the drain fields are left as they are."""
    queues = sorted(s.queues)[:MAX_WORKER_QUEUES]
    if record is None:
        return WorkerRecord(
            id=s.worker_id,
            project=s.project,
            queues=queues,
            first_seen_at=s.seen_at,
            last_seen_at=s.seen_at,
            version=s.version,
            host=s.host,
        )
    newer = s.seen_at >= record.last_seen_at
    return record.model_copy(
        update={
            "queues": sorted(set(record.queues) | s.queues)[:MAX_WORKER_QUEUES],
            "first_seen_at": min(record.first_seen_at, s.seen_at),
            "last_seen_at": max(record.last_seen_at, s.seen_at),
            "version": s.version if s.version is not None and (newer or record.version is None) else record.version,
            "host": s.host if s.host is not None and (newer or record.host is None) else record.host,
        }
    )


def _worker_from(doc: JsonDict) -> WorkerRecord:
    return WorkerRecord.model_validate(doc["_source"])


def _source(record: WorkerRecord) -> JsonDict:
    return record.model_dump(mode="json")


class WorkersMixin(StoreCore):
    """Worker records."""

    async def record_workers(self, sightings: Sequence[WorkerSighting]) -> None:
        pending = _by_doc(sightings)
        index = self.names.workers
        for _ in range(RECORD_ROUNDS):
            if not pending:
                return
            resp = await self._client.mget(index=index, ids=list(pending))
            ops: list[JsonDict] = []
            for doc in resp.body["docs"]:
                sighting = pending[doc["_id"]]
                if doc.get("found"):
                    current = self._parse(_worker_from, "workers", doc)
                    if current is None:
                        continue  # unreadable (logged once): left alone rather than overwritten
                    action: JsonDict = {"_id": doc["_id"], "if_seq_no": doc["_seq_no"]}
                    action["if_primary_term"] = doc["_primary_term"]
                    ops += [{"index": {"_index": index, **action}}, _source(_folded(current, sighting))]
                else:
                    ops += [{"create": {"_index": index, "_id": doc["_id"]}}, _source(_folded(None, sighting))]
            if not ops:
                return
            try:
                items = await self._bulk_raw(ops)
            finally:
                self.workers_refresher.wrote()
            lost: dict[str, list[WorkerSighting]] = {}
            for item in items:
                if item["status"] == 409:
                    lost[item["_id"]] = pending[item["_id"]]
                elif item["status"] not in (200, 201):
                    raise _item_error("sighting", item)
            pending = lost
        if pending:
            log.warning("worker sightings of %d workers kept losing races and were dropped", len(pending))

    async def get_worker(self, worker_id: str, *, project: str = DEFAULT_PROJECT) -> WorkerRecord:
        try:
            resp = await self._client.get(index=self.names.workers, id=worker_doc_id(project, worker_id))
        except NotFoundError:
            raise NotFound(f"no worker {worker_id}") from None
        return _worker_from(resp.body)

    async def list_workers(self, *, project: str | None = None, draining_only: bool = False) -> list[WorkerRecord]:
        filters: list[JsonDict] = [] if project is None else [{"term": {"project": project}}]
        if draining_only:
            # Drains are written with refresh=true and sightings never change the flag: no refresh needed.
            filters.append({"term": {"draining": True}})
        else:
            await self.workers_refresher.ensure_fresh()
        query: JsonDict = {"bool": {"filter": filters}}
        hits = await self._search_all(self.names.workers, query, [{"project": "asc"}, {"id": "asc"}])
        parsed = (self._parse(_worker_from, "workers", hit) for hit in hits)
        return [w for w in parsed if w is not None]

    async def set_worker_draining(
        self, worker_id: str, draining: bool, at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> WorkerRecord:
        index, doc_id = self.names.workers, worker_doc_id(project, worker_id)
        for _ in range(RMW_RETRIES):
            try:
                resp = await self._client.get(index=index, id=doc_id)
            except NotFoundError:
                raise NotFound(f"no worker {worker_id}") from None
            current = _worker_from(resp.body)
            changed = current.model_copy(
                update={"draining": draining, "drained_at": at if draining else current.drained_at}
            )
            try:
                await self._client.index(
                    index=index,
                    id=doc_id,
                    document=_source(changed),
                    if_seq_no=resp.body["_seq_no"],
                    if_primary_term=resp.body["_primary_term"],
                    refresh=True,  # rare, and every server's next listing must see it
                )
            except ConflictError:
                continue  # a sighting got in between: read it again
            return changed
        raise VersionConflict(f"worker {worker_id} kept changing; its drain flag was not set")

    async def claims_by_worker(self, *, project: str = DEFAULT_PROJECT) -> dict[str, int]:
        await self.refresher.ensure_fresh()
        query = {"bool": {"filter": [{"term": {"project": project}}, {"term": {"state": TaskState.CLAIMED.value}}]}}
        out: dict[str, int] = {}
        after: JsonDict | None = None
        while True:
            composite: JsonDict = {
                "size": self._settings.page_size,
                "sources": [{"worker": {"terms": {"field": "last_claimed.worker_id"}}}],
            }
            if after is not None:
                composite["after"] = after
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                size=0,
                track_total_hits=False,
                aggs={"workers": {"composite": composite}},
            )
            agg = resp.body["aggregations"]["workers"]
            for bucket in agg["buckets"]:
                out[str(bucket["key"]["worker"])] = int(bucket["doc_count"])
            after = agg.get("after_key")
            if after is None or len(agg["buckets"]) < self._settings.page_size:
                return out

    async def forget_workers(self, seen_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        await self.workers_refresher.ensure_fresh()
        hits = await self._search_all(
            self.names.workers,
            {"range": {"last_seen_at": {"lt": es_date(seen_before)}}},
            [{"last_seen_at": "asc"}, {"project": "asc"}, {"id": "asc"}],
            limit,
            seq_no_primary_term=True,
            source=False,
        )
        if not hits:
            return 0
        # Conditional on the version found: a worker seen again since the search is kept.
        ops: list[dict[str, Any]] = [
            {
                "delete": {
                    "_index": self.names.workers,
                    "_id": h["_id"],
                    "if_seq_no": h["_seq_no"],
                    "if_primary_term": h["_primary_term"],
                }
            }
            for h in hits
        ]
        try:
            items = await self._bulk_raw(ops)
        finally:
            self.workers_refresher.wrote()
        for item in items:
            if item["status"] not in (200, 404, 409):
                raise _item_error("delete", item)
        return sum(1 for item in items if item["status"] == 200)
