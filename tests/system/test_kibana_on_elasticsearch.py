"""The shipped Kibana objects against the indices a real store creates (on the test Elasticsearch, under a
test prefix, so the prefix rewrite of `tasques kibana import` is exercised too): every data view pattern
resolves, every field exists and aggregates where Kibana aggregates (field_caps, which Kibana itself reads),
the saved searches find exactly the tasks they promise, and every Lens column's aggregation runs.

The claim-latency runtime field (a Painless script) is checked statically only (tests/unit/test_kibana_objects.py:
the fields it reads are mapped and aggregatable): the test node is Elasticsearch's integ-test distribution, which
has no Painless module, so columns on it are left out here and searches send no runtime mappings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from tasques.kibana.objects import SavedObject, for_prefix, load
from tasques.store.elasticsearch.store import ElasticsearchStore
from tests.contract import BACKOFF, make_task
from tests.contract.conftest import es_settings
from tests.kibana import by_id, field_uses, lens_layers, lucene_queries, ref, runtime_fields, search_source
from tests.process import delete_es_prefix

pytestmark = pytest.mark.elasticsearch

NOW = datetime.now(UTC).replace(microsecond=250_000)


def _tasks() -> list[Any]:
    def at(hours: float, seconds: float = 0) -> datetime:
        return NOW - timedelta(hours=hours) + timedelta(seconds=seconds)

    queued = make_task(id="queued", at=at(1))
    ok = make_task(id="claimed-ok", at=at(2), processing_timeout=timedelta(days=1)).claimed("w1", at(2, 30), "c")
    expired = make_task(id="claimed-expired", at=at(3)).claimed("w1", at(3, 5), "c")  # timed out at +65 s
    failed = make_task(id="failed", at=at(4)).claimed("w1", at(4, 10), "c").failed("w1", {}, at(4, 20), BACKOFF)
    dead = (
        make_task(id="dead", at=at(5), retry_times=0).claimed("w2", at(5, 7), "c").failed("w2", {}, at(5, 9), BACKOFF)
    )
    done = make_task(id="done", at=at(6), kind="other").claimed("w2", at(6, 2.5), "c").done("w2", None, at(6, 3))
    given_up = make_task(id="given-up", at=at(7)).given_up("unreadable", at(0, -60))
    return [queued, ok, expired, failed, dead, done, given_up]


@pytest.fixture
async def es(elasticsearch_url: str, es_index_prefix: str) -> AsyncIterator[AsyncElasticsearch]:
    store = ElasticsearchStore.from_config(es_settings(elasticsearch_url, es_index_prefix))
    client = AsyncElasticsearch(elasticsearch_url, request_timeout=30)
    try:
        await store.open()
        await store.insert_tasks(_tasks())
        assert await store.archive_finished(NOW - timedelta(minutes=30), 100) == 2  # dead and done
        await client.indices.refresh(index=f"{es_index_prefix}-tasks,{es_index_prefix}-archive")
        yield client
    finally:
        await client.close()
        await store.close()
        await delete_es_prefix(elasticsearch_url, es_index_prefix)


@pytest.fixture
def objects(es_index_prefix: str) -> list[SavedObject]:
    return for_prefix(load(), es_index_prefix)


def _pattern(objects: list[SavedObject], data_view: str) -> str:
    return str(by_id(objects)[data_view]["attributes"]["title"])


def _lucene(query: str) -> dict[str, Any]:
    """What Kibana sends for a Lucene query (its default `query:queryString:options`)."""
    return {"query_string": {"query": query, "analyze_wildcard": True}}


async def test_data_views_resolve_and_every_field_exists_and_aggregates(
    es: AsyncElasticsearch, objects: list[SavedObject]
) -> None:
    views = [o for o in objects if o["type"] == "index-pattern"]
    for view in views:
        for pattern in view["attributes"]["title"].split(","):
            assert (await es.indices.get(index=pattern)).body, pattern  # an index, or an alias over some
    caps = {v["id"]: (await es.field_caps(index=v["attributes"]["title"], fields="*")).body["fields"] for v in views}
    uses = field_uses(objects)
    assert uses
    for use in uses:
        if use.field in runtime_fields(by_id(objects)[use.data_view]):
            continue
        found = caps[use.data_view].get(use.field)
        assert found, f"{use.obj}: no field {use.field} in {_pattern(objects, use.data_view)}"
        if use.aggregated:
            assert all(t["aggregatable"] for t in found.values()), f"{use.obj}: {use.field} {found}"


async def test_saved_searches_find_the_tasks_they_promise(es: AsyncElasticsearch, objects: list[SavedObject]) -> None:
    expected = {
        "failed": {"failed"},
        "dead": {"dead", "given-up"},  # one archived, one live
        "claim-expired": {"claimed-expired"},
    }
    found = {}
    for search in (o for o in objects if o["type"] == "search"):
        (query,) = lucene_queries(search)
        resp = await es.search(
            index=_pattern(objects, ref(search, search_source(search)["indexRefName"])),
            query=_lucene(query),
            sort=[{f: d} for f, d in search["attributes"]["sort"]],
            size=100,
        )
        found[search["id"].split("-search-", 1)[1]] = {h["_source"]["id"] for h in resp.body["hits"]["hits"]}
    assert found == expected


def _aggregation(column: dict[str, Any]) -> dict[str, Any] | None:
    op, field = column["operationType"], column["sourceField"]
    agg: dict[str, Any] | None
    if op == "date_histogram":
        agg = {"date_histogram": {"field": field, "fixed_interval": "1h"}}
    elif op == "terms":
        agg = {"terms": {"field": field, "size": column["params"]["size"]}}
    elif op in ("median", "percentile"):
        agg = {"percentiles": {"field": field, "percents": [column.get("params", {}).get("percentile", 50)]}}
    elif op in ("max", "min", "avg", "sum"):
        agg = {op: {"field": field}}
    elif op == "count":
        agg = None
    else:
        raise AssertionError(f"no translation for Lens operation {op}")
    if "filter" in column:
        wrapped: dict[str, Any] = {"filter": _lucene(column["filter"]["query"])}
        if agg is not None:
            wrapped["aggs"] = {"value": agg}
        return wrapped
    return agg


async def test_every_lens_column_aggregates(es: AsyncElasticsearch, objects: list[SavedObject]) -> None:
    results = {}
    for lens in (o for o in objects if o["type"] == "lens"):
        for layer_id, layer in lens_layers(lens).items():
            view = by_id(objects)[ref(lens, f"indexpattern-datasource-layer-{layer_id}")]
            scripted = runtime_fields(view)
            columns = {c: col for c, col in layer["columns"].items() if col["sourceField"] not in scripted}
            aggs = {cid: a for cid, column in columns.items() if (a := _aggregation(column)) is not None}
            resp = await es.search(
                index=view["attributes"]["title"],
                query=_lucene(lens["attributes"]["state"]["query"]["query"] or "*"),
                aggs=aggs,
                size=0,
            )
            results[lens["id"].split("-lens-", 1)[1]] = resp.body["aggregations"]
    assert results["failures"]["failed"]["doc_count"] == 1
    assert results["failures"]["dead"]["doc_count"] == 2
    claimed = sum(b["doc_count"] for b in results["claim-latency"]["claimed"]["buckets"])
    assert claimed == 6  # every task with a claim record: not the queued one
    assert {b["key"] for b in results["by-queue"]["queue"]["buckets"]} == {"q"}
    assert {b["key"] for b in results["top-kinds"]["kind"]["buckets"]} == {"k", "other"}
    states = {b["key"]: b["doc_count"] for b in results["state-over-time"]["state"]["buckets"]}
    assert states == {"queued": 1, "claimed": 2, "failed": 1, "dead": 2, "done": 1}
