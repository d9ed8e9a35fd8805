"""Fixtures for dispatcher tests: a real Tasques server (SQLite or Elasticsearch) with a ManualClock, and a real
target HTTP server on 127.0.0.1 that records what it receives and answers as each test scripts it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.config import Config
from tasques.dispatch import Dispatcher
from tasques.leader.election import LOCK_NAME
from tasques.service.clock import ManualClock
from tasques.store.base import Store
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests import es_pool
from tests.api.conftest import Client
from tests.contract.conftest import es_settings

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Received:
    at: float  # loop time
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    """A real HTTP server. `answer` decides each response (default 200 `ok`)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answer: Callable[[int, web.Request], Awaitable[web.StreamResponse]] | None = None
    in_flight: int = 0
    max_in_flight: int = 0


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    state = Target()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        state.received.append(
            Received(asyncio.get_running_loop().time(), request.method, request.path, dict(request.headers), body)
        )
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.answer is not None:
                return await state.answer(len(state.received), request)
            return web.Response(text="ok")
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def tasques_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A store for the server under test; the server's lifecycle opens and closes it.

    Another holder owns the leader lock for good, so housekeeping (the recurring enqueuer above all) runs only
    when a test calls it, and never races the test's own steps."""
    if request.param == "sqlite":
        path = str(tmp_path / "t.db")
        await _block_leader(SqliteStore(path))
        yield SqliteStore(path)
        return
    url: str = request.getfixturevalue("elasticsearch_url")
    prefix = es_pool.lease(url)
    settings = es_settings(url, prefix, refresh_interval="100ms")
    await _block_leader(ElasticsearchStore.from_config(settings))
    yield ElasticsearchStore.from_config(settings)
    await es_pool.give_back(url, prefix)


async def _block_leader(store: Store) -> None:
    try:
        await store.open()  # inside: a failed open still closes its client
        assert await store.acquire_lock(LOCK_NAME, "someone-else", T0, datetime(2200, 1, 1, tzinfo=UTC))
    finally:
        await store.close()


# The targets of these tests are local servers: the outbound policy must allow loopback for them.
ALLOW_LOOPBACK = {"allowed_networks": ["127.0.0.0/8"]}


@pytest.fixture
def dispatch_config() -> dict[str, Any]:
    """The `dispatch` section of the server under test; modules override it (e.g. the default policy)."""
    return {"poll_interval": "20ms", **ALLOW_LOOPBACK}


@pytest.fixture
async def server(
    aiohttp_client: AiohttpClient, tasques_store: Store, clock: ManualClock, dispatch_config: dict[str, Any]
) -> AsyncIterator[Client]:
    # No recurring catch-up: tests advance the clock past retries, and expect one execution per enqueue pass.
    housekeeping = {"reap_every": "1h", "recurring_every": "1h", "recurring_catch_up": "0s"}
    config = Config.model_validate({"dispatch": dispatch_config, "housekeeping": housekeeping})
    app = tasques.server.build_server(config, tasques_store, clock=clock, holder="dispatch-test")
    client = await aiohttp_client(app)
    yield client
    # Stop the server (and its dispatcher) before the store's indices are deleted.
    await client.close()


def dispatcher(client: Client) -> Dispatcher:
    return client.app[tasques.server.DISPATCHER]


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll until `check` returns something truthy (real progress of real servers, not domain time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {within}s: last {result!r}")
        await asyncio.sleep(0.02)


async def passes(client: Client, n: int) -> None:
    """Wait until the dispatcher has made `n` more passes over the queues."""
    d = dispatcher(client)
    start = d.passes

    async def done() -> bool:
        return d.passes >= start + n

    await eventually(done)
