"""Index prefixes reused between the tests of one process, so most Elasticsearch tests skip index creation.

Creating a store's eleven indices costs one cluster-state update and a shard start each (about 2 s on an idle
node, three times that under the suite's load); emptying them costs three requests. A prefix goes back to the
pool only when it is exactly what a store opened with default index settings leaves: the known indices, open,
one primary shard each, the archive alias on its first index, the known templates, and under 10,000 documents.
Anything else (a test that deleted an index, rolled the archive over or asked for two shards) deletes the
prefix, so a test never inherits more than empty indices. A store opened on a reused prefix still runs all of
`open()`: it re-puts the templates and brings mappings and dynamic settings up to date.
"""

from __future__ import annotations

import uuid

from elasticsearch import AsyncElasticsearch

from tasques.store.elasticsearch.names import IndexNames
from tests.process import delete_es_prefix

# The `IndexNames` properties of a store's live indices, and the templates it puts (the live ones and the archive's).
_LIVE = ("tasks", "recurring", "locks", "queues", "timeline", "projects", "tokens", "admissions", "workers", "batches")
_TEMPLATES = (*_LIVE, "archive")
_MAX_DOCS = 10_000  # one search's worth; more than this and the prefix is deleted instead of emptied

_pool: dict[str, list[str]] = {}  # Elasticsearch URL -> emptied prefixes of this process


def lease(url: str) -> str:
    """A prefix for one test: an emptied one from the pool, else a new one."""
    free = _pool.setdefault(url, [])
    return free.pop() if free else f"t-pool-{uuid.uuid4().hex[:12]}"


async def give_back(url: str, prefix: str) -> None:
    """Empty `prefix` and pool it if it is as a default store left it; otherwise delete it."""
    async with AsyncElasticsearch(url, request_timeout=30) as client:
        reusable = await _as_opened(client, prefix) and await _empty(client, prefix)
    if reusable:
        _pool.setdefault(url, []).append(prefix)
    else:
        await delete_es_prefix(url, prefix)


async def drain(url: str) -> None:
    """Delete every pooled prefix (at the end of the session)."""
    for prefix in _pool.pop(url, []):
        await delete_es_prefix(url, prefix)


async def _as_opened(client: AsyncElasticsearch, prefix: str) -> bool:
    names = IndexNames(prefix)
    wanted = {getattr(names, what) for what in _LIVE} | {names.first_archive_index}
    rows = await client.cat.indices(index=f"{prefix}-*", h="index,status,pri", format="json", expand_wildcards="all")
    listed: list[dict[str, str]] = rows.body  # type: ignore[assignment]  # format=json gives rows
    if {row["index"] for row in listed} != wanted or any(
        row["status"] != "open" or row["pri"] != "1" for row in listed
    ):
        return False
    aliases = await client.options(ignore_status=404).indices.get_alias(name=names.archive_alias)
    if list(aliases.body) != [names.first_archive_index]:
        return False
    templates = await client.options(ignore_status=404).indices.get_index_template(name=f"{prefix}-*")
    got = {template["name"] for template in templates.body.get("index_templates", [])}
    if got != {names.template(what) for what in _TEMPLATES}:
        return False
    # What open() does not put back: a refresh interval on the indices that have none of their own, any block.
    found = await client.indices.get_settings(
        index=f"{prefix}-*", name="index.refresh_interval,index.blocks.*", flat_settings=True, expand_wildcards="all"
    )
    return all(not body["settings"] or index == names.tasks for index, body in found.body.items())


async def _empty(client: AsyncElasticsearch, prefix: str) -> bool:
    """Delete every document under `prefix` and refresh; False if there were too many to do in one go."""
    pattern = f"{prefix}-*"
    await client.indices.refresh(index=pattern, expand_wildcards="all")
    found = await client.search(index=pattern, size=_MAX_DOCS, source=False, track_total_hits=True)
    hits = found.body["hits"]
    if hits["total"]["value"] > _MAX_DOCS:
        return False
    if hits["hits"]:
        deleted = await client.bulk(
            operations=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits["hits"]]
        )
        if deleted.body["errors"]:
            return False
        await client.indices.refresh(index=pattern, expand_wildcards="all")
    return True
