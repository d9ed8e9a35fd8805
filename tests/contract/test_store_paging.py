"""No silent caps: every listing the server relies on returns every record, on every store.

Elasticsearch pages through them (`store.elasticsearch.page_size`); here the page is 3 records, so 10 of
anything spans four pages. SQLite has no pages: the same contract holds there too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tasques.domain.http_target import HttpRequest, TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.recurring import RecurringService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.store.base import QueueProbe, Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.contract import T0, claim_as, make_recurring, make_task, ts
from tests.contract.conftest import es_settings
from tests.process import delete_es_prefix

PAGE = 3
N = 10  # more than three pages of PAGE


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def paged_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store: Store
    if request.param == "sqlite":
        store = SqliteStore(str(tmp_path / "tasques.db"))
    else:
        url: str = request.getfixturevalue("elasticsearch_url")
        prefix: str = request.getfixturevalue("es_index_prefix")
        store = ElasticsearchStore.from_config(es_settings(url, prefix, page_size=PAGE))
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        if request.param == "elasticsearch":
            await delete_es_prefix(url, prefix)


def _names(n: int = N) -> list[str]:
    return [f"q{i:02d}" for i in range(n)]


async def test_every_queue_settings_record_is_listed(paged_store: Store) -> None:
    for name in _names():
        await paged_store.insert_queue_settings(QueueSettings.default(name, T0))
    assert [s.queue for s in await paged_store.list_queue_settings()] == _names()


async def test_every_recurring_task_is_listed(paged_store: Store) -> None:
    for name in reversed(_names()):
        await paged_store.insert_recurring(make_recurring(name))
    assert [r.id for r in await paged_store.list_recurring()] == _names()


async def test_every_attempt_is_listed(paged_store: Store) -> None:
    for n in range(N, 0, -1):
        await paged_store.insert_attempt(
            Attempt(
                queue="q",
                task_id="t",
                run=n % 2,
                attempt=n,
                worker_id="d",
                started_at=ts(n),
                ended_at=ts(n + 1),
                duration_ms=1.0,
                success=True,
            )
        )
    listed = [(a.run, a.attempt) for a in await paged_store.list_attempts("q", "t")]
    assert listed == sorted((n % 2, n) for n in range(1, N + 1))


async def test_every_queue_is_counted(paged_store: Store) -> None:
    tasks = [make_task(name, f"t{i}") for name in _names() for i in range(2)]
    await paged_store.insert_tasks(tasks)
    [claimed] = await paged_store.claim_tasks(["q07"], ts(1), 1, claim_as("w", ts(1)))
    counts = {c.queue: c.counts for c in await paged_store.queue_counts()}
    assert sorted(counts) == _names()
    assert all(counts[q].get(TaskState.QUEUED) == 2 for q in _names() if q != claimed.queue)
    assert counts["q07"].get(TaskState.QUEUED) == 1
    assert counts["q07"].get(TaskState.CLAIMED) == 1


async def test_housekeeping_reads_go_past_one_page(paged_store: Store) -> None:
    tasks = [make_task("q", f"t{i:02d}", processing_timeout=timedelta(seconds=1)) for i in range(N)]
    await paged_store.insert_tasks(tasks)
    claimed = await paged_store.claim_tasks(["q"], T0, N, claim_as("w", T0))
    assert len(claimed) == N
    assert len(await paged_store.timed_out_tasks(ts(5), N)) == N
    assert len(await paged_store.timed_out_tasks(ts(5), N - 1)) == N - 1
    done = [t.done("w", {"ok": True}, ts(2)) for t in claimed]
    assert all(isinstance(r, Task) for r in await paged_store.update_tasks(done))
    assert await paged_store.archive_finished(ts(100), N - 1) == N - 1
    assert await paged_store.archive_finished(ts(100), N) == 1
    for n in range(N):
        await paged_store.insert_attempt(
            Attempt(
                queue="q",
                task_id=f"a{n}",
                attempt=1,
                worker_id="d",
                started_at=ts(n),
                ended_at=ts(n),
                duration_ms=1.0,
                success=True,
            )
        )
    assert await paged_store.delete_attempts(ts(100), N) == N


def _services(store: Store, clock: ManualClock) -> tuple[TaskService, RecurringService]:
    signals = QueueSignals()
    queues = QueueService(store, clock, signals, cache_for=timedelta(0))
    tasks = TaskService(store, TaskSettings(), clock, signals, queues)
    return tasks, RecurringService(store, tasks, clock)


def _http_spec(queue: str) -> TaskSpec:
    return TaskSpec(queue=queue, kind="http", http_request=HttpRequest(url="http://127.0.0.1:1/x"))


async def test_a_paused_queue_beyond_the_first_page_is_honoured(paged_store: Store) -> None:
    clock = ManualClock(T0)
    tasks, _ = _services(paged_store, clock)
    for name in _names():
        await tasks.create(_http_spec(name))
        await tasks.create(TaskSpec(queue=name, kind="pull"))
    last = _names()[-1]
    await tasks.queues.pause(last)
    # What the dispatcher iterates: every queue, the last one paused.
    listed = await tasks.queues.all()
    assert sorted(listed) == _names()
    assert [q for q, s in listed.items() if s.paused] == [last]
    assert await tasks.claim_http("dispatcher", last, 5) == []
    assert await tasks.claim("worker", [last], block_for=timedelta(0)) == []
    assert len(await tasks.claim_http("dispatcher", _names()[-2], 5)) == 1
    await tasks.queues.resume(last)
    assert len(await tasks.claim_http("dispatcher", last, 5)) == 1


async def test_every_recurring_task_fires_beyond_the_first_page(paged_store: Store) -> None:
    clock = ManualClock(T0)
    _, recurring = _services(paged_store, clock)
    for name in _names():
        await paged_store.insert_recurring(make_recurring(name, queue=name))
    clock.advance(timedelta(minutes=1))
    assert await recurring.enqueue_due() == N
    counts = {c.queue: c.counts.get(TaskState.QUEUED) for c in await paged_store.queue_counts()}
    assert counts == dict.fromkeys(_names(), 1)


async def test_the_probe_names_every_queue_with_work_beyond_the_first_page(paged_store: Store) -> None:
    await paged_store.insert_tasks([make_task(name, "t") for name in _names()])
    found = await paged_store.claimable_queues(ts(1), [QueueProbe(TaskTarget.PULL, frozenset(_names()))])
    assert found == {(DEFAULT_PROJECT, name, TaskTarget.PULL) for name in _names()}
