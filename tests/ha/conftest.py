"""Several real `tasques serve` processes sharing one real Elasticsearch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.process import ServerProcess, delete_es_prefix, es_server_settings

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def es_settings(elasticsearch_url: str, es_index_prefix: str) -> dict[str, str]:
    return es_server_settings(elasticsearch_url, es_index_prefix)


@pytest.fixture
def start_server(
    es_settings: dict[str, str], tmp_path: Path, elasticsearch_url: str, es_index_prefix: str
) -> Iterator[StartServer]:
    """Start a server on the shared cluster; every server still running is stopped after the test, and the
    indices they created are deleted (a long run would otherwise slow the shared node down)."""
    started: list[ServerProcess] = []

    def start(name: str, **extra: str) -> ServerProcess:
        server = ServerProcess({**es_settings, **extra}, tmp_path / f"{name}.log").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    asyncio.run(delete_es_prefix(elasticsearch_url, es_index_prefix))
