"""GET /metrics on a whole server (both stores): exact sample values after a known sequence of API calls.

Time is a ManualClock, so claim latencies and run durations are exact; the store gauges are read with the
injected clock too, so their cache is driven by `clock.advance`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.api.keys import RECURRING, STORE_KIND, TASKS
from tasques.config import Config
from tasques.leader.election import LOCK_NAME
from tasques.service.clock import ManualClock
from tasques.store.base import Store
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests import es_pool
from tests.api.conftest import WORKER, Client, basic_auth, call, claim, claim_one, create_task
from tests.contract.conftest import es_settings

Labels = frozenset[tuple[str, str]]
_LOCK_FOREVER = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass
class Samples:
    by_key: dict[tuple[str, Labels], float]

    def get(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when absent (a counter never incremented)."""
        return self.by_key.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.by_key

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for n, labels in self.by_key if n == name]


async def scrape(client: Client, headers: Mapping[str, str] | None = None) -> Samples:
    async with client.get("/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return Samples(out)


class Serve(Protocol):
    def __call__(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        leader: bool = False,
        hooks: list[Callable[[str, str], AbstractContextManager[object]]] | None = None,
    ) -> Awaitable[Client]: ...


@dataclass
class Backend:
    name: str
    new_store: Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = str(tmp_path / "t.db")
        yield Backend("sqlite", lambda: SqliteStore(path))
        return
    url: str = request.getfixturevalue("elasticsearch_url")
    prefix = es_pool.lease(url)
    settings = es_settings(url, prefix, refresh_interval="100ms")
    yield Backend("elasticsearch", lambda: ElasticsearchStore.from_config(settings))
    await es_pool.give_back(url, prefix)


@pytest.fixture
def serve(backend: Backend, aiohttp_client: AiohttpClient, clock: ManualClock) -> Serve:
    """A whole server on the backend; the leader lock is held elsewhere unless `leader`. `backend` comes first,
    so it is torn down (its indices deleted) after the servers have stopped."""

    async def make(
        overrides: Mapping[str, Any] | None = None,
        *,
        leader: bool = False,
        hooks: list[Callable[[str, str], AbstractContextManager[object]]] | None = None,
    ) -> Client:
        config = Config.model_validate(
            {"store": {"kind": backend.name}, "housekeeping": {"recurring_catch_up": "0s"}, **(overrides or {})}
        )
        if not leader:
            blocker = backend.new_store()
            await blocker.open()
            try:
                assert await blocker.acquire_lock(LOCK_NAME, "someone-else", clock(), _LOCK_FOREVER)
            finally:
                await blocker.close()
        store = backend.new_store()
        observers = tasques.server.observers_for(config, store.kind, clock, "metrics-test")
        observers.store_hooks.extend(hooks or [])
        app = tasques.server.build_server(config, store, clock=clock, holder="metrics-test", observers=observers)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(serve: Serve) -> Client:
    return await serve()


async def done(client: Client, task: Any) -> Any:
    return await call(client, "PUT", f"/tasques/done/{task['queue']}/{task['id']}", status=200, worker=WORKER, body={})


async def fail(client: Client, task: Any) -> Any:
    path = f"/tasques/failed/{task['queue']}/{task['id']}"
    return await call(client, "PUT", path, status=200, worker=WORKER, body={"data": {"e": 1}})


# Task events


async def test_create_claim_done_unclaim_cancel(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q1")
    bulk = {"tasks": [{"queue": "q1", "kind": "k"}, {"queue": "q1", "kind": "k"}, {"queue": "q2", "kind": "k"}]}
    await call(client, "POST", "/tasques/bulk", status=200, body=bulk)
    clock.advance(timedelta(seconds=5))
    first = await claim_one(client, "q1")
    clock.advance(timedelta(seconds=2))
    await done(client, first)
    second = await claim_one(client, "q1")
    clock.advance(timedelta(seconds=3))
    await call(client, "DELETE", f"/tasques/claims/q1/{second['id']}", status=200, worker=WORKER)
    [queued] = await claim(client, ["q2"], amount=5)
    await call(client, "PUT", f"/tasques/cancel/q2/{queued['id']}", status=200)

    m = await scrape(client)
    assert m.get("tasques_tasks_created_total", queue="q1", source="api") == 1
    assert m.get("tasques_tasks_created_total", queue="q1", source="bulk") == 2
    assert m.get("tasques_tasks_created_total", queue="q2", source="bulk") == 1
    assert m.get("tasques_tasks_claimed_total", queue="q1") == 2
    assert m.get("tasques_tasks_claimed_total", queue="q2") == 1
    # Claimed 5 s after their run_at (T0), then 7 s after for the second q1 task and q2's.
    assert m.get("tasques_task_claim_latency_seconds_count", queue="q1") == 2
    assert m.get("tasques_task_claim_latency_seconds_sum", queue="q1") == 5 + 7
    assert m.get("tasques_task_claim_latency_seconds_bucket", queue="q1", le="5.0") == 1
    assert m.get("tasques_task_claim_latency_seconds_bucket", queue="q1", le="10.0") == 2
    assert m.get("tasques_tasks_finished_total", queue="q1", outcome="done") == 1
    assert m.get("tasques_tasks_finished_total", queue="q1", outcome="unclaimed") == 1
    assert m.get("tasques_tasks_finished_total", queue="q2", outcome="cancelled") == 1
    assert m.get("tasques_task_run_duration_seconds_sum", queue="q1", outcome="done") == 2
    assert m.get("tasques_task_run_duration_seconds_sum", queue="q1", outcome="unclaimed") == 3
    # A cancel may end a claim or not: it has no run duration.
    assert not m.has("tasques_task_run_duration_seconds_count", queue="q2", outcome="cancelled")
    # Cluster-wide gauges from the store: q1 holds the unclaimed task (queued since T0, now +10 s) and the third.
    assert m.get("tasques_tasks", queue="q1", state="queued") == 2
    assert m.get("tasques_tasks", queue="q1", state="done") == 1
    assert m.get("tasques_tasks", queue="q2", state="cancelled") == 1
    assert m.get("tasques_tasks", queue="q2", state="queued") == 0
    assert m.get("tasques_queue_oldest_task_age_seconds", queue="q1") == 10
    assert m.get("tasques_queue_oldest_task_age_seconds", queue="q2") == 0


async def test_fail_until_dead_and_a_reaped_timeout(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q3", retry_times=1)
    task = await claim_one(client, "q3")
    clock.advance(timedelta(seconds=4))
    assert (await fail(client, task))["state"] == "failed"
    clock.advance(timedelta(hours=1))  # past the retry's backoff
    task = await claim_one(client, "q3")
    clock.advance(timedelta(seconds=6))
    assert (await fail(client, task))["state"] == "dead"

    await create_task(client, "q4", processing_timeout="1s")
    await claim_one(client, "q4")
    clock.advance(timedelta(seconds=2))
    assert await client.app[TASKS].reap_timed_out(100) == 1

    m = await scrape(client)
    assert m.get("tasques_tasks_claimed_total", queue="q3") == 2
    assert m.get("tasques_tasks_finished_total", queue="q3", outcome="failed") == 1
    assert m.get("tasques_tasks_finished_total", queue="q3", outcome="dead") == 1
    assert m.get("tasques_task_run_duration_seconds_sum", queue="q3", outcome="failed") == 4
    assert m.get("tasques_task_run_duration_seconds_sum", queue="q3", outcome="dead") == 6
    assert m.get("tasques_tasks_finished_total", queue="q4", outcome="timed_out") == 1
    assert m.get("tasques_claims_expired_total", queue="q4") == 1
    assert m.get("tasques_task_run_duration_seconds_sum", queue="q4", outcome="timed_out") == 2
    assert m.get("tasques_tasks", queue="q3", state="dead") == 1
    assert m.get("tasques_tasks", queue="q4", state="failed") == 1


async def test_a_recurring_run_and_a_repeat(client: Client, clock: ManualClock) -> None:
    body = {"id": "r", "schedule_expression": "@every 1m", "task_definition": {"queue": "rq", "kind": "tick"}}
    await call(client, "POST", "/recurring_tasques", status=201, body=body)
    clock.advance(timedelta(seconds=61))
    assert await client.app[RECURRING].enqueue_due() == 1
    skip = {**body, "id": "s", "skip_if_outstanding_tasks_exist": True}
    await call(client, "POST", "/recurring_tasques", status=201, body=skip)
    clock.advance(timedelta(seconds=61))
    assert await client.app[RECURRING].enqueue_due() == 2  # r again, s's first
    clock.advance(timedelta(seconds=61))
    assert await client.app[RECURRING].enqueue_due() == 1  # r; s still has one outstanding: skipped

    await create_task(client, "rep", repeat={"interval": "1m", "times": 1})
    await done(client, await claim_one(client, "rep"))

    m = await scrape(client)
    assert m.get("tasques_recurring_runs_total", outcome="enqueued") == 4
    assert m.get("tasques_recurring_runs_total", outcome="skipped") == 1
    assert m.get("tasques_recurring_runs_total", outcome="error") == 0
    assert m.get("tasques_tasks_created_total", queue="rq", source="recurring") == 4
    assert m.get("tasques_tasks_created_total", queue="rep", source="api") == 1
    assert m.get("tasques_tasks_created_total", queue="rep", source="repeat") == 1
    assert m.get("tasques_tasks_finished_total", queue="rep", outcome="done") == 1


# Labels


async def test_routes_are_labelled_by_template_never_by_id(client: Client) -> None:
    task = await create_task(client, "q", id="secret-id-1")
    await call(client, "GET", "/tasques/q/secret-id-1", status=200)
    await call(client, "GET", "/tasques/q/secret-id-2", status=404)
    async with client.get("/no/such/secret-id-3") as resp:
        assert resp.status == 404
    async with client.post("/health") as resp:
        assert resp.status == 405
    await done_batch(client, task)
    m = await scrape(client)
    assert m.get("tasques_tasks_finished_total", queue="q", outcome="done") == 1
    assert m.get("tasques_http_requests_total", method="POST", route="/tasques/done", status_class="2xx") == 1
    route = "/tasques/{queue}/{id}"
    assert m.get("tasques_http_requests_total", method="POST", route="/tasques", status_class="2xx") == 1
    assert m.get("tasques_http_requests_total", method="GET", route=route, status_class="2xx") == 1
    assert m.get("tasques_http_requests_total", method="GET", route=route, status_class="4xx") == 1
    assert m.get("tasques_http_requests_total", method="GET", route="other", status_class="4xx") == 1
    assert m.get("tasques_http_requests_total", method="POST", route="other", status_class="4xx") == 1
    assert m.get("tasques_http_request_duration_seconds_count", method="GET", route=route, status_class="4xx") == 1
    every_label = {v for name, labels in m.by_key for _, v in labels}
    assert not any("secret-id" in v for v in every_label), every_label
    assert m.get("tasques_build_info", version=tasques.__version__, backend=client.app[STORE_KIND]) == 1
    assert m.get("process_cpu_seconds_total") > 0
    assert any(n == "python_info" for n, _ in m.by_key)
    # The scrape itself is counted from the next one on.
    again = await scrape(client)
    assert again.get("tasques_http_requests_total", method="GET", route="/metrics", status_class="2xx") == 1


async def done_batch(client: Client, task: Any) -> None:
    claimed = await claim_one(client, task["queue"])
    body = {"tasks": [{"queue": claimed["queue"], "id": claimed["id"], "data": {}}]}
    await call(client, "POST", "/tasques/done", status=200, worker=WORKER, body=body)


async def test_queue_labels_are_capped(serve: Serve) -> None:
    client = await serve({"metrics": {"max_queues": 2}})
    for queue in ("a", "b", "c", "d"):
        await create_task(client, queue)
    m = await scrape(client)
    assert m.get("tasques_tasks_created_total", queue="a", source="api") == 1
    assert m.get("tasques_tasks_created_total", queue="b", source="api") == 1
    assert m.get("tasques_tasks_created_total", queue="_other", source="api") == 2
    assert m.get("tasques_tasks", queue="_other", state="queued") == 2
    queues = {labels["queue"] for labels in m.labels_of("tasques_tasks")}
    assert queues == {"a", "b", "_other"}


# Store gauges and store metrics


class CountCalls:
    """A StoreHook counting the store calls by operation."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    @contextmanager
    def __call__(self, backend: str, operation: str) -> Iterator[None]:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        yield


async def test_store_gauges_are_cached_and_stale_queues_disappear(serve: Serve, clock: ManualClock) -> None:
    counter = CountCalls()
    client = await serve({"metrics": {"gauge_cache": "30s"}}, hooks=[counter])
    task = await create_task(client, "gone")
    first = await scrape(client)
    assert counter.calls["queue_counts"] == 1
    assert first.get("tasques_tasks", queue="gone", state="queued") == 1

    await call(client, "PUT", f"/tasques/cancel/gone/{task['id']}", status=200)
    clock.advance(timedelta(seconds=29))
    cached = await scrape(client)
    assert counter.calls["queue_counts"] == 1  # within gauge_cache: no store call
    assert cached.get("tasques_tasks", queue="gone", state="queued") == 1
    assert cached.get("tasques_queue_oldest_task_age_seconds", queue="gone") == 29  # aged from the cached run_at

    clock.advance(timedelta(seconds=1))
    assert await client.app[TASKS].archive_finished(timedelta(0), 100) == 1
    fresh = await scrape(client)
    assert counter.calls["queue_counts"] == 2
    assert fresh.labels_of("tasques_tasks") == []
    assert fresh.labels_of("tasques_queue_oldest_task_age_seconds") == []
    assert (
        fresh.get("tasques_store_operation_duration_seconds_count", backend=_kind(client), operation="queue_counts")
        == 2
    )
    assert fresh.get("tasques_store_errors_total", backend=_kind(client), operation="get_task") == 0


def _kind(client: Client) -> str:
    return client.app[STORE_KIND]


async def test_domain_answers_are_not_store_errors(client: Client) -> None:
    await create_task(client, "q", id="a")
    await call(client, "GET", "/tasques/q/missing", status=404)
    await call(client, "POST", "/tasques", status=409, body={"queue": "q", "kind": "k", "id": "a"})
    m = await scrape(client)
    kind = _kind(client)
    assert m.get("tasques_store_operation_duration_seconds_count", backend=kind, operation="get_task") == 1
    assert m.labels_of("tasques_store_errors_total") != []
    assert all(
        m.get("tasques_store_errors_total", **labels) == 0 for labels in m.labels_of("tasques_store_errors_total")
    )


async def test_basic_auth_covers_metrics(serve: Serve) -> None:
    client = await serve({"server": {"basic_auth": [{"name": "ops", "password": "pw"}]}})
    async with client.get("/metrics") as resp:
        assert resp.status == 401
    m = await scrape(client, basic_auth("ops", "pw"))
    assert m.get("tasques_http_requests_total", method="GET", route="/metrics", status_class="4xx") == 1


async def test_metrics_can_be_turned_off(serve: Serve) -> None:
    client = await serve({"metrics": {"enabled": False}})
    await create_task(client, "q")
    async with client.get("/metrics") as resp:
        assert resp.status == 404


# Leadership


async def test_leader_gauge_and_changes(serve: Serve) -> None:
    client = await serve(leader=True)
    elector = client.app[tasques.server.ELECTOR]
    await elector.elected.wait()
    m = await scrape(client)
    assert m.get("tasques_leader") == 1
    assert m.get("tasques_leader_changes_total") == 1
    await elector.stop(5.0)
    m = await scrape(client)
    assert m.get("tasques_leader") == 0
    assert m.get("tasques_leader_changes_total") == 2


async def test_a_server_that_never_leads_says_so(client: Client) -> None:
    m = await scrape(client)
    assert m.has("tasques_leader")
    assert m.get("tasques_leader") == 0
    assert m.get("tasques_leader_changes_total") == 0
