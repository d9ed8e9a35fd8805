"""The `store` fixture: each contract test runs once per backend in `FACTORIES`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from tasques.store.base import Store
from tasques.store.sqlite import SqliteStore


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = SqliteStore(str(tmp_path / "tasques.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# Backend name -> an opened, empty store for one test. A new backend is one more entry.
FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": _sqlite,
}


@pytest.fixture(params=list(FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened
