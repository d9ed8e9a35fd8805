"""Migration of documents written before projects (TEMPLATE_VERSION < 5) into the project `default`.

Such a document has no `project` field and an `_id` without the project (`{queue}/{id}`, `{id}`, `{queue}`,
`{queue}/{id}/{run}/{attempt}`); its new `_id` is `default/` + the old one. `open()` runs this after the
templates are put and every index has the `project` field in its mapping. Per index (live tasks, the archive,
recurring tasks, queue settings, the timeline), a page at a time:

1. refresh, then search the documents without a `project` field (with their `_seq_no`/`_primary_term`);
2. one `_bulk` of `create`s of the new documents (`project: default`), each in the concrete index its old one
   is in (an archived task keeps its place in the archive's rollover and retention);
3. one `_bulk` of deletes of the old documents, each conditional on the version searched.

No scripts and no `_update_by_query`, and it is idempotent: a create that meets an existing new document (a
run that stopped between 2 and 3, or another server migrating at the same moment) deletes the old one only if
the new one is the same record (same `metadata.created_at`, or the same source); a delete that meets a
changed old document leaves both, with a warning. The trigger is the data itself, not a marker: a run that
was interrupted resumes at the next `open()`, and with nothing left it costs one refresh and one empty search
per index. Servers of an older Tasques must be stopped first: a write they make to an old document during the
migration is not carried over.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from elasticsearch import AsyncElasticsearch

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.store.elasticsearch.documents import _OK, _item_error
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import IndexNames

log = logging.getLogger("tasques.store.elasticsearch")

Bulk = Callable[[list[JsonDict]], Awaitable[list[JsonDict]]]


async def migrate_to_projects(client: AsyncElasticsearch, names: IndexNames, bulk: Bulk, page_size: int) -> int:
    """Move every document without a project into `default`; returns how many moved."""
    moved = 0
    for index in (names.tasks, names.archive_alias, names.recurring, names.queues, names.timeline):
        count = await _migrate(client, index, bulk, page_size)
        if count:
            log.info("moved %d documents of %s into the project %r", count, index, DEFAULT_PROJECT)
        moved += count
    return moved


def new_doc_id(old_id: str) -> str:
    return f"{DEFAULT_PROJECT}/{old_id}"


async def _migrate(client: AsyncElasticsearch, index: str, bulk: Bulk, page_size: int) -> int:
    left: set[str] = set()  # old _ids this run leaves in place (logged): later pages look past them
    moved = 0
    while True:
        await client.indices.refresh(index=index)
        query: JsonDict = {"bool": {"must_not": [{"exists": {"field": "project"}}]}}
        if left:
            query["bool"]["must_not"].append({"ids": {"values": sorted(left)}})
        resp = await client.search(
            index=index, query=query, sort=["_doc"], size=page_size, seq_no_primary_term=True, track_total_hits=False
        )
        hits: list[JsonDict] = resp.body["hits"]["hits"]
        if not hits:
            return moved
        moved += await _move(client, hits, bulk, left)


async def _move(client: AsyncElasticsearch, hits: list[JsonDict], bulk: Bulk, left: set[str]) -> int:
    """Steps 2 and 3 for one page; returns how many old documents were deleted (here or by another server)."""
    sources = {hit["_id"]: {**hit["_source"], "project": DEFAULT_PROJECT} for hit in hits}
    ops: list[JsonDict] = []
    for hit in hits:
        ops.append({"create": {"_index": hit["_index"], "_id": new_doc_id(hit["_id"])}})
        ops.append(sources[hit["_id"]])
    movable: list[JsonDict] = []
    taken: list[JsonDict] = []
    for hit, item in zip(hits, await bulk(ops), strict=True):
        if item["status"] in _OK:
            movable.append(hit)
        elif item["status"] == 409:
            taken.append(hit)
        else:
            raise _item_error("migration", item)
    if taken:
        existing = await _get(client, [(hit["_index"], new_doc_id(hit["_id"])) for hit in taken])
        for hit in taken:
            found = existing.get((hit["_index"], new_doc_id(hit["_id"])))
            if found is not None and _same_record(found, sources[hit["_id"]]):
                movable.append(hit)
            else:
                left.add(hit["_id"])
                log.warning("%s/%s: a different document already has its new _id %s; left in place",
                            hit["_index"], hit["_id"], new_doc_id(hit["_id"]))  # fmt: skip
    if not movable:
        return 0
    deletes: list[JsonDict] = [
        {
            "delete": {
                "_index": hit["_index"],
                "_id": hit["_id"],
                "if_seq_no": hit["_seq_no"],
                "if_primary_term": hit["_primary_term"],
            }
        }
        for hit in movable
    ]
    deleted = 0
    conflicted: list[JsonDict] = []
    for hit, item in zip(movable, await bulk(deletes), strict=True):
        if item["status"] in _OK or item["status"] == 404:
            deleted += 1
        elif item["status"] == 409:
            conflicted.append(hit)
        else:
            raise _item_error("migration delete", item)
    if conflicted:
        # Gone: another server migrating at once deleted it. Still there: changed since the search.
        still = await _get(client, [(hit["_index"], hit["_id"]) for hit in conflicted])
        for hit in conflicted:
            if (hit["_index"], hit["_id"]) in still:
                left.add(hit["_id"])
                log.warning("%s/%s changed while being migrated (is an older Tasques still running?); left in place",
                            hit["_index"], hit["_id"])  # fmt: skip
            else:
                deleted += 1
    return deleted


async def _get(client: AsyncElasticsearch, keys: list[tuple[str, str]]) -> dict[tuple[str, str], JsonDict]:
    """Realtime `_source`s of the (index, _id) that exist."""
    resp = await client.mget(docs=[{"_index": index, "_id": doc_id} for index, doc_id in keys])
    return {(d["_index"], d["_id"]): d["_source"] for d in resp.body["docs"] if d.get("found")}


def _same_record(found: JsonDict, migrated: JsonDict) -> bool:
    """Whether the document at the new `_id` is this migration's copy, perhaps changed since (a task claimed
    after another server moved it): the same creation time, or for records without one the same source."""
    created: Any = migrated.get("metadata", {}).get("created_at")
    if created is not None:
        return bool(found.get("metadata", {}).get("created_at") == created)
    return found == migrated
