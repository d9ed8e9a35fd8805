"""Fixtures for the HTTP API tests: the whole server (`build_server`) on a temporary SQLite file.

Time is a `ManualClock` starting at `T0`, so time-dependent behaviour (timeouts, backoff, recurring slots,
archiving) is driven by `clock.advance(...)` instead of sleeping. The leader loop is kept from ever winning
the lock unless a test asks for it (`leader=True`), so housekeeping runs only when a test calls it directly
and can never race the test's own steps.

Helpers (`call`, `assert_error`, `parse_ts`, ...) live here too; test modules import them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.api.http import WORKER_ID_HEADER
from tasques.config import Config
from tasques.leader.election import LOCK_NAME
from tasques.service.clock import Clock, ManualClock
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sealing import Sealer
from tasques.store.sqlite.store import SqliteStore
from tests import es_pool
from tests.contract.conftest import es_settings

Client = TestClient[web.Request, web.Application]

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
WORKER = "worker-1"
OTHER_WORKER = "worker-2"
_LOCK_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class MakeClient(Protocol):
    def __call__(
        self,
        overrides: Mapping[str, Any] | Config | None = None,
        clock: Clock | None = None,
        *,
        leader: bool = False,
        poll_interval: timedelta | None = None,
    ) -> Awaitable[Client]: ...


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


# A whole server on each store: `serve(clock=..., leader=...)` starts one and returns its client and store.
Serve = Callable[..., Awaitable[tuple[Client, Store]]]
# Until when `serve`'s other holder has the leader lock. The leader loop tries the lock once at start, then not
# again during a test.
HELD_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
_SLOW_LEADER = {"leader": {"lease": "2h", "renew_every": "1h"}}


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def serve(
    request: pytest.FixtureRequest, aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Serve]:
    """Servers on the test's store (SQLite, or a pooled Elasticsearch prefix), on the manual clock unless given
    another; unless `leader`, another holder has the leader lock, so housekeeping runs only when a test calls it."""
    leases: list[tuple[str, str]] = []

    async def start(*, leader: bool = False, clock: Clock = clock, holder: str = "api-test") -> tuple[Client, Store]:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(str(tmp_path / "t.db"))
            config = Config.model_validate({"store": {"sqlite": {"path": str(tmp_path / "t.db")}}, **_SLOW_LEADER})
        else:
            url: str = request.getfixturevalue("elasticsearch_url")
            leases.append((url, es_pool.lease(url)))
            store = ElasticsearchStore.from_config(es_settings(*leases[-1]))
            config = Config.model_validate({"store": {"kind": "elasticsearch"}, **_SLOW_LEADER})
        await store.open()
        if not leader:
            assert await store.acquire_lock(LOCK_NAME, "someone-else", clock(), HELD_UNTIL)
        app = tasques.server.build_server(config, store, clock=clock, holder=holder)
        return await aiohttp_client(app), store

    yield start
    for lease in leases:
        await es_pool.give_back(*lease)


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock) -> MakeClient:
    """Build a server app and a test client for it.

    `overrides`: a nested dict merged into the default config (or a whole `Config`). `clock`: defaults to the
    `clock` fixture. `leader`: let the leader loop win the lock and run the housekeeping jobs on their own
    intervals. `poll_interval`: how often a blocked claim re-polls the store (to test wake-ups, make it long).
    """
    counter = 0
    default_clock = clock

    async def make(
        overrides: Mapping[str, Any] | Config | None = None,
        clock: Clock | None = None,
        *,
        leader: bool = False,
        poll_interval: timedelta | None = None,
    ) -> Client:
        nonlocal counter
        counter += 1
        db = str(tmp_path / ("t.db" if counter == 1 else f"t{counter}.db"))
        if isinstance(overrides, Config):
            config = overrides
        else:
            base: dict[str, Any] = {"store": {"sqlite": {"path": db}}}
            if poll_interval is not None:
                base["tasks"] = {"claim_poll_interval": f"{poll_interval.total_seconds()}s"}
            config = Config.model_validate(_merge(base, overrides or {}))
        db = config.store.sqlite.path  # the override's, when it names one (servers sharing a database)
        use_clock: Clock = clock if clock is not None else default_clock
        if not leader:
            # Another holder owns the leader lock for good, so this server's housekeeping never runs by itself.
            blocker = SqliteStore(db)
            await blocker.open()
            try:
                assert await blocker.acquire_lock(LOCK_NAME, "someone-else", use_clock(), _LOCK_FOREVER)
            finally:
                await blocker.close()

        store = SqliteStore(db, sealer=Sealer.from_config(config.encryption))
        app = tasques.server.build_server(config, store, clock=use_clock, holder="test-server")
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


# Helpers


async def call(
    client: Client,
    method: str,
    path: str,
    *,
    status: int,
    body: Any = None,
    raw: bytes | str | None = None,
    worker: str | None = None,
    params: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Make a request, check its status and that it answered JSON, and return the decoded body."""
    sent: dict[str, str] = dict(headers or {})
    if worker is not None:
        sent[WORKER_ID_HEADER] = worker
    kwargs: dict[str, Any] = {"headers": sent}
    if body is not None:
        kwargs["json"] = body
    if raw is not None:
        kwargs["data"] = raw
        sent.setdefault("Content-Type", "application/json")
    if params is not None:
        kwargs["params"] = params
    async with client.request(method, path, **kwargs) as resp:
        text = await resp.text()
        assert resp.status == status, f"{method} {path}: expected {status}, got {resp.status}: {text}"
        assert resp.content_type == "application/json", f"{method} {path}: content type {resp.content_type}"
    return json.loads(text)


def basic_auth(name: str, password: str) -> dict[str, str]:
    """An `Authorization` header for HTTP basic auth."""
    token = base64.b64encode(f"{name}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def assert_error(body: Any, *fields: str) -> None:
    """The body is exactly the error shape; with `fields`, its details name exactly those fields."""
    assert isinstance(body, dict)
    assert set(body) == {"message", "details"}, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], list)
    for detail in body["details"]:
        assert isinstance(detail, dict)
        assert set(detail) == {"field", "problem"}, detail
        assert isinstance(detail["field"], str)
        assert isinstance(detail["problem"], str)
        assert detail["problem"]
    if fields:
        assert {d["field"] for d in body["details"]} == set(fields), body


def parse_ts(value: Any) -> datetime:
    """Parse an RFC 3339 timestamp (with an offset, as the API must always send)."""
    assert isinstance(value, str)
    assert _RFC3339.match(value), f"not RFC 3339: {value!r}"
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


async def create_task(client: Client, queue: str = "q", kind: str = "k", **fields: Any) -> Any:
    return await call(client, "POST", "/tasques", status=201, body={"queue": queue, "kind": kind, **fields})


async def get_task(client: Client, queue: str, task_id: str) -> Any:
    return await call(client, "GET", f"/tasques/{queue}/{task_id}", status=200)


async def claim(
    client: Client, queues: list[str], worker: str = WORKER, amount: int = 1, block_for: str = "0s"
) -> list[Any]:
    result = await call(
        client,
        "POST",
        "/tasques/claims",
        status=200,
        worker=worker,
        body={"queues": queues, "amount": amount, "block_for": block_for},
    )
    assert isinstance(result, list)
    return result


async def claim_one(client: Client, queue: str, worker: str = WORKER) -> Any:
    claimed = await claim(client, [queue], worker)
    assert len(claimed) == 1, claimed
    return claimed[0]


async def list_all(client: Client, params: Mapping[str, str] | list[tuple[str, str]]) -> list[Any]:
    """Every task the listing returns, following cursors."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):
        query = list(params.items()) if isinstance(params, Mapping) else list(params)
        if cursor is not None:
            query.append(("cursor", cursor))
        page = await call(client, "GET", "/tasques", status=200, params=query)
        items.extend(page["tasks"])
        cursor = page.get("next_cursor")
        if cursor is None:
            return items
    raise AssertionError("listing never ended")
