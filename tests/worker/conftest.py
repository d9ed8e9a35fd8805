"""Fixtures of the worker SDK tests: one real server per test module (SQLite, fast reaping and backoff)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.process import ServerProcess
from tests.worker.helpers import FAST_SERVER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("worker-server")
    with ServerProcess({**FAST_SERVER, "TASQUES_STORE_SQLITE_PATH": str(tmp / "t.db")}, tmp / "server.log") as s:
        yield s


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
