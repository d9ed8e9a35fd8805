"""Shared claims (tasques/service/claims.py) on every store: concurrent claims of one (queues, target) are one
store claim, split round robin among the callers, never more than each asked for; a cancelled caller's share
goes back; an outage reaches every caller's unknown-claim hook."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest

from tasques.domain.errors import StoreUnavailable
from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskState
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.contract import make_task, ts
from tests.contract.conftest import es_settings
from tests.faults.proxy import StallingProxy
from tests.process import delete_es_prefix

NOW = ts(60)


class CountingStore:
    """The real store, with the `limit` of every `claim_tasks` call recorded; while `gate` is set, a claim
    waits for it (so a test can act while a shared claim is in flight)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.claims: list[int] = []
        self.entered = asyncio.Event()
        self.gate: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
        *,
        project: str | None = DEFAULT_PROJECT,
    ) -> list[Task]:
        self.claims.append(limit)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return await self._inner.claim_tasks(queues, now, limit, change, target, project=project)


class Service:
    def __init__(self, store: Store, tick: timedelta = timedelta(milliseconds=250)) -> None:
        self.store = CountingStore(store)
        signals = QueueSignals()
        clock = ManualClock(NOW)
        real = cast(Store, self.store)
        settings = TaskSettings(poll_interval=tick)
        self.tasks = TaskService(real, settings, clock, signals, QueueService(real, clock, signals))
        self.unknown: list[tuple[str, datetime]] = []
        self.tasks.on_unknown_claim = lambda project, worker_id, at: self.unknown.append((worker_id, at))

    async def ready(self) -> None:
        # Queue settings cached: claims started together reach the shared claim in the same loop iteration.
        await self.tasks.queues.all()


async def _queue_of(store: Store, n: int, queue: str = "q") -> list[str]:
    ids = [f"t{i:02d}" for i in range(n)]
    await store.insert_tasks([make_task(queue, i, priority=100 - k) for k, i in enumerate(ids)])
    return ids  # in claim order


def _check_claimed(task: Task, worker_id: str) -> str:
    assert task.state is TaskState.CLAIMED
    assert task.last_claimed is not None
    assert task.last_claimed.worker_id == worker_id
    assert task.claim_id is not None
    return task.claim_id


async def test_concurrent_claims_are_one_store_claim_split_round_robin(store: Store) -> None:
    svc = Service(store)
    ids = await _queue_of(store, 20)
    await svc.ready()
    asks = [("w1", 1), ("w2", 2), ("shared", 3), ("shared", 4), ("w5", 10)]
    results = await asyncio.gather(*(svc.tasks.claim(w, DEFAULT_PROJECT, ["q"], n, timedelta(0)) for w, n in asks))
    assert svc.store.claims == [20]  # one store call for the summed amount
    # One task at a time to each caller that still needs one, in claim order.
    expected = [
        ["t00"],
        ["t01", "t05"],
        ["t02", "t06", "t09"],
        ["t03", "t07", "t10", "t12"],
        ["t04", "t08", "t11", "t13", "t14", "t15", "t16", "t17", "t18", "t19"],
    ]
    assert [[t.id for t in got] for got in results] == expected
    claim_ids = [_check_claimed(t, w) for (w, _), got in zip(asks, results, strict=True) for t in got]
    assert len(set(claim_ids)) == len(ids)  # every task claimed, each with its own claim id
    for got in results:
        for task in got:
            assert await store.get_task("q", task.id) == task  # as stored, with its version
    # Two callers with one worker id: distinct claim times, so each claim call stays identifiable.
    shared_at = {t.last_claimed.claimed_at for got in results[2:4] for t in got if t.last_claimed is not None}
    assert shared_at == {NOW, NOW + timedelta(microseconds=1)}


async def test_fewer_tasks_than_asked_go_one_each_in_turn_and_the_rest_keep_long_polling(store: Store) -> None:
    svc = Service(store)
    await _queue_of(store, 3)
    await svc.ready()
    workers = ["a", "b", "c", "d"]
    claims = [
        asyncio.create_task(svc.tasks.claim(w, DEFAULT_PROJECT, ["q"], 2, timedelta(seconds=30))) for w in workers
    ]
    for claim in claims[:3]:
        await claim
    assert [[t.id for t in c.result()] for c in claims[:3]] == [["t00"], ["t01"], ["t02"]]
    assert svc.store.claims == [8]
    assert not claims[3].done()  # got nothing: still blocked
    await svc.tasks.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="late"))
    [late] = await claims[3]
    assert (late.id, _check_claimed(late, "d")) == ("late", late.claim_id)


async def test_a_caller_cancelled_during_the_shared_claim_gets_its_share_handed_back(store: Store) -> None:
    svc = Service(store)
    await _queue_of(store, 4)
    await svc.ready()
    svc.store.gate = asyncio.Event()
    gone = asyncio.create_task(svc.tasks.claim("gone", DEFAULT_PROJECT, ["q"], 2, timedelta(0)))
    stays = asyncio.create_task(svc.tasks.claim("stays", DEFAULT_PROJECT, ["q"], 2, timedelta(0)))
    await svc.store.entered.wait()  # both are in the one store call now
    gone.cancel()
    svc.store.gate.set()
    assert [t.id for t in await stays] == ["t01", "t03"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert svc.store.claims == [4]
    for task_id in ("t00", "t02"):  # the cancelled caller's share, claimable again
        assert (await store.get_task("q", task_id)).state is TaskState.QUEUED
    assert svc.unknown == []


async def test_a_caller_cancelled_before_its_batch_is_never_claimed_for(store: Store) -> None:
    svc = Service(store)
    await _queue_of(store, 3)
    await svc.ready()
    svc.store.gate = asyncio.Event()
    first = asyncio.create_task(svc.tasks.claim("first", DEFAULT_PROJECT, ["q"], 1, timedelta(0)))
    await svc.store.entered.wait()
    queued = asyncio.create_task(svc.tasks.claim("queued", DEFAULT_PROJECT, ["q"], 2, timedelta(0)))
    await asyncio.sleep(0.01)  # waiting for the next batch, behind the claim in flight
    queued.cancel()
    svc.store.gate.set()
    assert [t.id for t in await first] == ["t00"]
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert svc.store.claims == [1]
    assert [(await store.get_task("q", i)).state for i in ("t01", "t02")] == [TaskState.QUEUED] * 2


async def test_claims_of_other_queues_or_targets_are_separate_store_calls(store: Store) -> None:
    svc = Service(store)
    await _queue_of(store, 2, "a")
    await _queue_of(store, 2, "b")
    await svc.ready()
    got = await asyncio.gather(
        svc.tasks.claim("x", DEFAULT_PROJECT, ["a"], 5, timedelta(0)),
        svc.tasks.claim("y", DEFAULT_PROJECT, ["b"], 5, timedelta(0)),
        svc.tasks.claim_http("z", QueueRef(DEFAULT_PROJECT, "a"), 5),
    )
    assert [len(g) for g in got] == [2, 2, 0]
    assert sorted(svc.store.claims) == [5, 5, 5]


# The claim ticker: blocked claims are polled with one probe per tick, and their wake-ups coalesce.


async def _parked(svc: Service, claims: list[asyncio.Task[list[Task]]]) -> None:
    """Until every one of `claims` waits on the ticker (their first claims made, none in flight)."""
    while svc.tasks.ticker.waiting < len(claims) or not svc.tasks.shared_claims.idle:
        assert not any(c.done() for c in claims), claims
        await asyncio.sleep(0.01)


async def test_blocked_claims_are_polled_by_one_probe_and_woken_together(store: Store) -> None:
    svc = Service(store, tick=timedelta(milliseconds=50))
    await svc.ready()
    waiters = [
        asyncio.create_task(svc.tasks.claim(f"w{i}", DEFAULT_PROJECT, ["q"], 2, timedelta(seconds=60)))
        for i in range(4)
    ]
    others = [
        asyncio.create_task(svc.tasks.claim(f"o{i}", DEFAULT_PROJECT, [f"other{i}"], 1, timedelta(seconds=60)))
        for i in range(3)
    ]
    await _parked(svc, waiters + others)
    first_claims = len(svc.store.claims)  # one per key (the 4 on "q" share), made before parking
    assert first_claims <= 4
    probes = svc.tasks.ticker.probes
    while svc.tasks.ticker.probes < probes + 3:
        assert not any(c.done() for c in waiters + others)
        await asyncio.sleep(0.01)
    assert len(svc.store.claims) == first_claims  # idle: probes only, no claims
    # Written behind the service's back (as by another server): no signal; the next probe finds them.
    await store.insert_tasks([make_task("q", f"t{i}", priority=9 - i) for i in range(8)])
    got = await asyncio.gather(*waiters)
    assert svc.store.claims[first_claims:] == [8]  # the four woken claims are one store claim
    assert sorted(len(g) for g in got) == [2, 2, 2, 2]
    assert len({t.id for g in got for t in g}) == 8
    for claim in others:
        claim.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    assert len(svc.store.claims) == first_claims + 1


async def test_a_long_poll_restarted_on_a_queue_found_empty_waits_without_claiming(store: Store) -> None:
    # A tick longer than the test: only claims mark queues empty here.
    svc = Service(store, tick=timedelta(minutes=5))
    await svc.ready()
    assert await svc.tasks.claim("w", DEFAULT_PROJECT, ["q"], 1, timedelta(milliseconds=50)) == []
    assert svc.store.claims == [1]
    assert (
        await svc.tasks.claim("w", DEFAULT_PROJECT, ["q"], 1, timedelta(milliseconds=50)) == []
    )  # known empty: no claim
    assert (
        await svc.tasks.claim("w", DEFAULT_PROJECT, ["q"], 1, timedelta(0)) == []
    )  # a non-blocking claim asks the store
    assert svc.store.claims == [1, 1]
    await svc.tasks.create(
        TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="new")
    )  # the signal clears the mark
    [new] = await svc.tasks.claim("w", DEFAULT_PROJECT, ["q"], 1, timedelta(seconds=5))
    assert new.id == "new"
    assert svc.store.claims == [1, 1, 1]


# Outages: a real one on each store, the claim's write refused or left in limbo.


@dataclass
class Failing:
    store: Store
    fail: Callable[[], object]
    recover: Callable[[], object]
    applied_late: int  # how many tasks the failed claim holds once the outage is over


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def failing(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Failing]:
    """After `fail()`, the store's next claim write raises StoreUnavailable; `recover()` ends the outage.
    SQLite: another connection holds the write lock (the claim is never applied). Elasticsearch: the claim's
    `_bulk` stalls in a proxy past the request timeout and is applied late, on `recover()`, as by a node that
    was stopped and continued."""
    if request.param == "sqlite":
        path = tmp_path / "t.db"
        lite = SqliteStore(str(path), busy_timeout=timedelta(milliseconds=200))
        await lite.open()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            yield Failing(lite, lambda: other.execute("BEGIN IMMEDIATE"), lambda: other.execute("ROLLBACK"), 0)
        finally:
            other.close()
            await lite.close()
        return
    url: str = request.getfixturevalue("elasticsearch_url")
    prefix: str = request.getfixturevalue("es_index_prefix")
    parts = urlsplit(url)
    proxy = await StallingProxy(parts.hostname or "127.0.0.1", parts.port or 9200).start()
    setup = ElasticsearchStore.from_config(es_settings(url, prefix))  # the indices, at the usual deadline
    es = ElasticsearchStore.from_config(es_settings(proxy.url, prefix, request_timeout=timedelta(seconds=2)))
    try:
        await setup.open()
        yield Failing(es, lambda: proxy.pause_on(b"/_bulk"), proxy.resume, 6)
    finally:
        proxy.resume()
        await es.close()
        await setup.close()
        await proxy.close()
        await delete_es_prefix(url, prefix)


async def test_an_outage_during_a_shared_claim_reaches_every_callers_unknown_claim_hook(failing: Failing) -> None:
    store = failing.store
    svc = Service(store)
    await _queue_of(store, 6)
    await svc.ready()
    failing.fail()
    workers = ["a", "b", "b"]
    results = await asyncio.gather(
        *(svc.tasks.claim(w, DEFAULT_PROJECT, ["q"], 2, timedelta(0)) for w in workers), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert svc.store.claims == [6]
    # One pair per caller, as each one's tasks carry it: the resolver can hand back each caller's share.
    assert sorted(svc.unknown) == [("a", NOW), ("b", NOW), ("b", NOW + timedelta(microseconds=1))]
    failing.recover()
    # What the resolver will find under each pair: exactly that caller's share, once the late write lands.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        shares = {pair: await store.find_claimed_by(*pair) for pair in svc.unknown}
        if sum(map(len, shares.values())) >= failing.applied_late or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    found = [t.id for share in shares.values() for t in share]
    assert len(found) == len(set(found)) == failing.applied_late
    assert all(len(share) <= 2 for share in shares.values())
