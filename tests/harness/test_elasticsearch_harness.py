"""The provisioned Elasticsearch is real and behaves as the stores rely on."""

from __future__ import annotations

import pytest
from elasticsearch import AsyncElasticsearch, ConflictError

from tasques.store.elasticsearch.cluster import has_ilm, node_version


async def _create(client: AsyncElasticsearch, index: str) -> None:
    await client.indices.create(index=index, settings={"number_of_replicas": 0})


async def test_index_and_read_back(es_client: AsyncElasticsearch, es_index_prefix: str) -> None:
    index = f"{es_index_prefix}-docs"
    await _create(es_client, index)
    await es_client.index(index=index, id="a", document={"kind": "hello", "n": 1})
    got = await es_client.get(index=index, id="a")
    assert got["_source"] == {"kind": "hello", "n": 1}
    assert got["_seq_no"] == 0


async def test_stale_seq_no_conflicts(es_client: AsyncElasticsearch, es_index_prefix: str) -> None:
    index = f"{es_index_prefix}-occ"
    await _create(es_client, index)
    first = await es_client.index(index=index, id="a", document={"v": 1})
    await es_client.index(
        index=index,
        id="a",
        document={"v": 2},
        if_seq_no=first["_seq_no"],
        if_primary_term=first["_primary_term"],
    )
    with pytest.raises(ConflictError):
        await es_client.index(
            index=index,
            id="a",
            document={"v": 3},
            if_seq_no=first["_seq_no"],
            if_primary_term=first["_primary_term"],
        )
    got = await es_client.get(index=index, id="a")
    assert got["_source"] == {"v": 2}


async def test_ilm_detection_matches_installed_modules(es_client: AsyncElasticsearch) -> None:
    modules = await es_client.nodes.info(node_id="_local", metric="plugins")
    names = {m["name"] for node in modules["nodes"].values() for m in node["modules"]}
    detected = await has_ilm(es_client)
    print(
        f"Elasticsearch {await node_version(es_client)}: ILM {'present' if detected else 'absent'}; modules {sorted(names)}"
    )
    assert detected == ("x-pack-ilm" in names)
