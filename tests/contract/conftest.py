"""The `store` fixture: each contract test runs once per backend in `FACTORIES`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tasques.config import ElasticsearchConfig
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sealing import Sealer
from tasques.store.sqlite import SqliteStore
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
    prefix: str = request.getfixturevalue("es_index_prefix")
    store = ElasticsearchStore.from_config(es_settings(url, prefix), sealer=contract_sealer())
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        await delete_es_prefix(url, prefix)


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
