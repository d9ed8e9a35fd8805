"""The `store` fixture: each contract test runs once per backend in `FACTORIES`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from tasques.config import ElasticsearchConfig
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sealing import Sealer
from tasques.store.sqlite import SqliteStore
from tests import es_pool
from tests.process import delete_es_prefix

# Every contract store seals, so every contract test runs through the sealed serialization (HTTP tasks are sealed).
CONTRACT_KEY = ("contract-k1", bytes(range(32)))


def contract_sealer() -> Sealer:
    return Sealer([CONTRACT_KEY])


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = SqliteStore(str(tmp_path / "tasques.db"), sealer=contract_sealer())
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def es_settings(url: str, prefix: str, **overrides: Any) -> ElasticsearchConfig:
    """Settings for a test store: its own index prefix, no replicas (single node)."""
    return ElasticsearchConfig(addresses=[url], index_prefix=prefix, replicas=0, **overrides)


@asynccontextmanager
async def _elasticsearch(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url: str = request.getfixturevalue("elasticsearch_url")
    prefix = es_pool.lease(url)  # the store's indices are often a previous test's, emptied (see es_pool)
    store = ElasticsearchStore.from_config(es_settings(url, prefix), sealer=contract_sealer())
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        await es_pool.give_back(url, prefix)


# Backend name -> an opened, empty store for one test. A new backend is one more entry.
FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": _sqlite,
    "elasticsearch": _elasticsearch,
}


# Marks per backend, so `-m "not elasticsearch"` runs the contract on SQLite alone.
_MARKS = {"elasticsearch": [pytest.mark.elasticsearch]}


@pytest.fixture(params=[pytest.param(name, marks=_MARKS.get(name, ())) for name in FACTORIES])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened


# Elasticsearch stores a test opens itself (several, as separate servers would be), and a raw client.
StoreFactory = Callable[..., Awaitable[ElasticsearchStore]]


# Store settings an existing index cannot take: a test that sets one gets new indices, not pooled ones.
_STATIC_OVERRIDES = frozenset({"shards"})


@pytest.fixture
async def make_store(request: pytest.FixtureRequest, elasticsearch_url: str) -> AsyncIterator[StoreFactory]:
    """Opened stores on one prefix for the test, each with its own client (as separate servers would have). The
    prefix is a pooled one (see es_pool) unless the test asks for `es_index_prefix` (to write there first) or
    its first store sets a static index setting."""
    prefix: str | None = (
        request.getfixturevalue("es_index_prefix") if "es_index_prefix" in request.fixturenames else None
    )
    pooled = False
    opened: list[ElasticsearchStore] = []

    async def make(maintain_archive_every: float | None = 60.0, **overrides: Any) -> ElasticsearchStore:
        nonlocal prefix, pooled
        if prefix is None:
            pooled = not _STATIC_OVERRIDES & overrides.keys()
            prefix = es_pool.lease(elasticsearch_url) if pooled else f"t-{uuid.uuid4().hex[:12]}"
        settings = es_settings(elasticsearch_url, prefix, **overrides)
        store = ElasticsearchStore.from_config(settings, maintain_archive_every=maintain_archive_every)
        opened.append(store)
        await store.open()
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()
        if prefix is not None:
            await (es_pool.give_back if pooled else delete_es_prefix)(elasticsearch_url, prefix)


@pytest.fixture
async def raw(elasticsearch_url: str) -> AsyncIterator[AsyncElasticsearch]:
    async with AsyncElasticsearch(elasticsearch_url, request_timeout=30) as client:
        yield client
