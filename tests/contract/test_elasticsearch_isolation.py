"""Elasticsearch only: a finished task the archive refuses stays live and never holds up the others."""

from __future__ import annotations

import pytest

from tasques.store.elasticsearch.mappings import task_doc_id
from tasques.store.elasticsearch.store import ElasticsearchStore
from tests.contract import finished, make_task, ts
from tests.contract.conftest import es_settings
from tests.process import delete_es_prefix

pytestmark = pytest.mark.elasticsearch


async def test_a_task_the_archive_refuses_does_not_stop_archiving(elasticsearch_url: str, es_index_prefix: str) -> None:
    store = ElasticsearchStore.from_config(es_settings(elasticsearch_url, es_index_prefix), maintain_archive_every=None)
    try:
        await store.open()
        await store.insert_tasks([finished(make_task("q", f"t{i}"), ts(i)) for i in range(4)])
        # A newer server added a field to the live index only (a rolling upgrade): the strict archive refuses it.
        client = store._client
        await client.indices.put_mapping(index=store.names.tasks, properties={"added_later": {"type": "keyword"}})
        doc_id = task_doc_id("default", "q", "t0")
        source = (await client.get(index=store.names.tasks, id=doc_id)).body["_source"]
        await client.index(index=store.names.tasks, id=doc_id, document={**source, "added_later": "x"}, refresh=True)

        # t0 is the oldest, so it heads every batch: the first pass refuses it, the next ones look past it.
        assert [await store.archive_finished(ts(100), 1) for _ in range(5)] == [0, 1, 1, 1, 0]
        assert await client.exists(index=store.names.tasks, id=doc_id)  # left live, not lost
    finally:
        await store.close()
        await delete_es_prefix(elasticsearch_url, es_index_prefix)
