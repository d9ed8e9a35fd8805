"""Contract: batch creation and completion through the service (`BatchService`) on every store, and two servers
finishing a batch's last tasks at once on one Elasticsearch prefix (the callback is created exactly once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from tasques.domain.errors import AlreadyExists
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.recurring import TaskDefinition
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskState
from tasques.service.batches import BatchService
from tasques.service.clock import ManualClock
from tasques.service.events import NoEvents, Source
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.store.base import Store, TaskFilter
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.contract import T0
from tests.contract.conftest import StoreFactory, contract_sealer

P = DEFAULT_PROJECT
JOIN = TaskDefinition(queue="cb", kind="join", args={"album": 1})


class CountCallbacks(NoEvents):
    def __init__(self) -> None:
        self.callbacks: list[str] = []

    def created(self, tasks: Sequence[Task], source: Source) -> None:
        self.callbacks += [t.id for t in tasks if t.queue == "cb"]


class Server:
    """One server's services on a store."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        signals = QueueSignals()
        self.events = CountCallbacks()
        queues = QueueService(store, clock, signals, cache_for=timedelta(0))
        self.tasks = TaskService(store, TaskSettings(retry_times=0), clock, signals, queues, self.events)
        self.batches = BatchService(store, self.tasks, clock)
        self.tasks.on_settled.append(self.batches.settled)
        self.store = store

    async def close(self) -> None:
        await self.batches.close()
        await self.tasks.close()


def _specs(n: int, queue: str = "q") -> list[TaskSpec]:
    return [TaskSpec(project=P, queue=queue, kind="k", id=f"t{i}") for i in range(n)]


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


async def _callbacks(store: Store) -> list[Task]:
    if isinstance(store, ElasticsearchStore):
        await asyncio.sleep(store.search_delay.total_seconds() + 0.2)  # other servers' writes show in listings
    return (await store.list_tasks(TaskFilter(project=P, queue="cb"), 10, None)).tasks


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def server(store: Store, clock: ManualClock) -> AsyncIterator[Server]:
    s = Server(store, clock)
    yield s
    await s.close()


@pytest.fixture
async def twin(store: Store, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Server]:
    """A second server on the same data (Elasticsearch prefix or SQLite file)."""
    other: Store
    if isinstance(store, ElasticsearchStore):
        other = ElasticsearchStore.from_config(store._settings, sealer=contract_sealer())
    else:
        assert isinstance(store, SqliteStore)
        other = SqliteStore(str(tmp_path / "tasques.db"), sealer=contract_sealer())
    await other.open()
    s = Server(other, clock)
    try:
        yield s
    finally:
        await s.close()
        await other.close()


async def _finish_all(server: Server, n: int, dead: Sequence[str] = ()) -> None:
    claimed = await server.tasks.claim("w", P, ["q"], amount=n, block_for=timedelta(seconds=5))
    assert len(claimed) == n
    for t in claimed:
        if t.id in dead:
            await server.tasks.fail("w", t.ref, t.id, None)
        else:
            await server.tasks.done("w", t.ref, t.id, None)


async def test_a_batch_completes_once_its_last_task_finishes(server: Server) -> None:
    view = await server.batches.create(P, "b1", _specs(3), JOIN)
    assert (view.batch.total, view.counts) == (3, {TaskState.QUEUED: 3})
    assert (await server.store.get_task("q", "t0")).batch_id == "b1"
    await _finish_all(server, 3, dead=["t1"])

    async def completed() -> bool:
        return not (await server.store.get_batch("b1")).open

    await _eventually(completed)
    callback = await server.store.get_task("cb", "b1.done")
    assert callback.args == {
        "album": 1,
        "batch": {
            "id": "b1",
            "total": 3,
            "counts": {"waiting": 0, "queued": 0, "claimed": 0, "failed": 0, "done": 2, "dead": 1, "cancelled": 0},
            "deleted": 0,
        },
    }
    got = await server.batches.get(P, "b1")
    assert got.counts == {TaskState.DONE: 2, TaskState.DEAD: 1}
    assert got.finished == 3
    assert got.batch.callback is not None
    assert got.batch.callback.id == "b1.done"
    assert server.events.callbacks == ["b1.done"]


async def test_a_taken_batch_id_is_refused_before_any_task_is_written(server: Server) -> None:
    await server.batches.create(P, "b1", _specs(1), None)
    with pytest.raises(AlreadyExists):
        await server.batches.create(P, "b1", _specs(1, queue="other"), None)
    assert (await server.store.batch_counts("b1")) == {TaskState.QUEUED: 1}


async def test_two_servers_checking_a_finished_batch_at_once_create_one_callback(server: Server, twin: Server) -> None:
    twin.tasks.on_settled.clear()
    server.tasks.on_settled.clear()  # only the direct checks below complete it
    await server.batches.create(P, "b1", _specs(2), JOIN)
    await _finish_all(server, 2)
    if isinstance(server.store, ElasticsearchStore):
        await asyncio.sleep(server.store.search_delay.total_seconds() + 0.2)
    results = await asyncio.gather(server.batches.check(P, "b1"), twin.batches.check(P, "b1"))
    assert list(results) == [True, True]
    assert len(server.events.callbacks) + len(twin.events.callbacks) == 1
    assert [t.id for t in await _callbacks(server.store)] == ["b1.done"]
    assert not (await twin.store.get_batch("b1")).open


async def test_an_archived_callback_is_never_created_again(server: Server) -> None:
    server.tasks.on_settled.clear()
    await server.batches.create(P, "b1", _specs(1), JOIN)
    await _finish_all(server, 1)
    # A callback created (and finished and archived) by a server that crashed before marking the batch.
    batch = await server.store.get_batch("b1")
    counts = await server.store.batch_counts("b1")
    new = batch.callback_task(counts, T0, 0, timedelta(minutes=1))
    stored = await server.store.insert_task(Task.create(new, T0))
    await server.store.update_task(stored.claimed("w", T0, "c").done("w", None, T0))
    assert await server.store.archive_finished(T0 + timedelta(days=1), 100) >= 1
    assert await server.batches.sweep(10) == 1
    assert server.events.callbacks == []
    assert not (await server.store.get_batch("b1")).open


@pytest.mark.elasticsearch
async def test_two_servers_finishing_the_last_two_tasks_at_once_enqueue_the_callback_once(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    a, b = Server(await make_store(), clock), Server(await make_store(), clock)
    try:
        await a.batches.create(P, "b1", _specs(4), JOIN)
        first = await a.tasks.claim("wa", P, ["q"], amount=2, block_for=timedelta(seconds=5))
        await asyncio.sleep(a.store.search_delay.total_seconds() + 0.2)
        second = await b.tasks.claim("wb", P, ["q"], amount=2, block_for=timedelta(seconds=5))
        assert len(first) == len(second) == 2
        await a.tasks.done("wa", first[0].ref, first[0].id, None)
        await b.tasks.done("wb", second[0].ref, second[0].id, None)
        await asyncio.sleep(a.store.search_delay.total_seconds() + 0.2)
        # The last two, one on each server, at the same moment: neither search sees the other's finish yet.
        last_a, last_b = first[1], second[1]
        await asyncio.gather(
            a.tasks.done("wa", QueueRef(P, "q"), last_a.id, None), b.tasks.fail("wb", QueueRef(P, "q"), last_b.id, None)
        )

        async def completed() -> bool:
            return not (await a.store.get_batch("b1")).open

        await _eventually(completed)
        await asyncio.sleep(2 * a.store.search_delay.total_seconds() + 0.5)  # any late re-check has run
        assert len(a.events.callbacks) + len(b.events.callbacks) == 1
        [callback] = await _callbacks(a.store)
        assert callback.id == "b1.done"
        assert callback.args is not None
        assert callback.args["batch"]["counts"]["done"] == 3
        assert callback.args["batch"]["counts"]["dead"] == 1
    finally:
        await a.close()
        await b.close()
