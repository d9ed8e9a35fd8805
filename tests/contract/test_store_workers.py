"""Contract: the worker registry's records (`record_workers`, `get_worker`, `list_workers`, `set_worker_draining`,
`claims_by_worker`, `forget_workers`) on every store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tasques.domain.errors import NotFound
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.worker import WorkerSighting
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore, workers
from tests.contract import claim_as, make_task, ts


def seen(
    worker: str,
    at: float,
    *queues: str,
    project: str = DEFAULT_PROJECT,
    version: str | None = None,
    host: str | None = None,
) -> WorkerSighting:
    return WorkerSighting(
        project=project, worker_id=worker, seen_at=ts(at), queues=frozenset(queues), version=version, host=host
    )


@pytest.fixture
async def twin(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    """A second store instance on the same data: another server of the same cluster (or file)."""
    other: Store
    if isinstance(store, ElasticsearchStore):
        other = ElasticsearchStore.from_config(store._settings)
    else:
        assert isinstance(store, SqliteStore)
        other = SqliteStore(str(tmp_path / "tasques.db"))
    await other.open()
    try:
        yield other
    finally:
        await other.close()


async def test_a_first_sighting_creates_the_record(store: Store) -> None:
    await store.record_workers([seen("w1", 10, "b", "a", version="1.2", host="box")])
    got = await store.get_worker("w1")
    assert (got.id, got.project, got.queues) == ("w1", DEFAULT_PROJECT, ["a", "b"])
    assert (got.first_seen_at, got.last_seen_at) == (ts(10), ts(10))
    assert (got.version, got.host, got.draining, got.drained_at) == ("1.2", "box", False, None)
    assert await store.list_workers() == [got]


async def test_sightings_merge_later_last_seen_wins_and_queues_union(store: Store) -> None:
    await store.record_workers([seen("w1", 10, "a", version="1", host="h1")])
    await store.record_workers([seen("w1", 20, "b", version="2")])
    got = await store.get_worker("w1")
    assert (got.first_seen_at, got.last_seen_at, got.queues) == (ts(10), ts(20), ["a", "b"])
    assert (got.version, got.host) == ("2", "h1")  # a sighting without a host keeps the stored one
    # An older sighting (a server whose flush came late) moves neither last_seen nor version back, but adds queues.
    await store.record_workers([seen("w1", 5, "c", version="0", host="old")])
    got = await store.get_worker("w1")
    assert (got.first_seen_at, got.last_seen_at, got.queues) == (ts(5), ts(20), ["a", "b", "c"])
    assert (got.version, got.host) == ("2", "h1")


async def test_several_sightings_of_one_worker_in_one_call(store: Store) -> None:
    await store.record_workers([seen("w1", 20, "a", version="2"), seen("w1", 10, "b", version="1", host="h")])
    got = await store.get_worker("w1")
    assert (got.first_seen_at, got.last_seen_at, got.queues) == (ts(10), ts(20), ["a", "b"])
    assert (got.version, got.host) == ("2", "h")


async def test_sightings_never_touch_the_drain_flag(store: Store) -> None:
    await store.record_workers([seen("w1", 10, "a")])
    drained = await store.set_worker_draining("w1", True, ts(11))
    assert (drained.draining, drained.drained_at, drained.last_seen_at) == (True, ts(11), ts(10))
    await store.record_workers([seen("w1", 20, "b")])
    got = await store.get_worker("w1")
    assert (got.draining, got.drained_at, got.last_seen_at, got.queues) == (True, ts(11), ts(20), ["a", "b"])
    resumed = await store.set_worker_draining("w1", False, ts(30))
    assert (resumed.draining, resumed.drained_at) == (False, ts(11))  # when it was last put to drain
    await store.record_workers([seen("w1", 40)])
    assert (await store.get_worker("w1")).draining is False


async def test_two_store_instances_recording_the_same_worker(store: Store, twin: Store) -> None:
    await store.record_workers([seen("w1", 10, "a", host="h1")])
    await twin.set_worker_draining("w1", True, ts(12))
    # Both instances flush at once, each with its own sightings: nothing is lost, the drain is kept.
    await asyncio.gather(
        store.record_workers([seen("w1", 20, "b", version="1"), seen("w2", 20, "x")]),
        twin.record_workers([seen("w1", 15, "c", version="0"), seen("w2", 25, "y")]),
    )
    for s in (store, twin):
        w1, w2 = await s.get_worker("w1"), await s.get_worker("w2")
        assert (w1.queues, w1.last_seen_at, w1.version, w1.host, w1.draining) == (
            ["a", "b", "c"],
            ts(20),
            "1",
            "h1",
            True,
        )
        assert (w2.queues, w2.first_seen_at, w2.last_seen_at) == (["x", "y"], ts(20), ts(25))
    assert [w.id for w in await twin.list_workers()] == ["w1", "w2"]
    assert [w.id for w in await store.list_workers()] == ["w1", "w2"]


async def test_unknown_workers_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_worker("nobody")
    with pytest.raises(NotFound):
        await store.set_worker_draining("nobody", True, ts(1))
    with pytest.raises(NotFound):
        await store.get_worker("nobody")  # a drain does not create the record
    assert await store.list_workers() == []
    await store.record_workers([])


async def test_listing_is_by_project_and_id(store: Store) -> None:
    await store.record_workers([seen("w2", 1), seen("w1", 2), seen("w0", 3, project="other")])
    assert [w.id for w in await store.list_workers(project=DEFAULT_PROJECT)] == ["w1", "w2"]
    assert [w.id for w in await store.list_workers(project="other")] == ["w0"]
    assert [(w.project, w.id) for w in await store.list_workers(project=None)] == [
        ("default", "w1"),
        ("default", "w2"),
        ("other", "w0"),
    ]


async def test_projects_are_isolated(store: Store) -> None:
    await store.record_workers([seen("w1", 1, "a", project="p1"), seen("w1", 2, "b", project="p2")])
    await store.set_worker_draining("w1", True, ts(3), project="p1")
    p1, p2 = await store.get_worker("w1", project="p1"), await store.get_worker("w1", project="p2")
    assert (p1.queues, p1.draining) == (["a"], True)
    assert (p2.queues, p2.draining) == (["b"], False)
    with pytest.raises(NotFound):
        await store.get_worker("w1")
    with pytest.raises(NotFound):
        await store.set_worker_draining("w1", True, ts(3), project="p3")


async def test_odd_worker_ids_round_trip(store: Store) -> None:
    odd = ["with/slash", "spaces and ünïcödé", "é" * 256]  # the last is over 512 bytes with its project
    await store.record_workers([seen(w, 1) for w in odd])
    for w in odd:
        assert (await store.get_worker(w)).id == w
        assert (await store.set_worker_draining(w, True, ts(2))).draining
    assert sorted(w.id for w in await store.list_workers()) == sorted(odd)


async def test_claims_by_worker_counts_claimed_tasks(store: Store) -> None:
    for i in range(5):
        await store.insert_task(make_task("q", f"t{i}"))
    await store.insert_task(make_task("q", "other-project", project="p2"))
    assert await store.claims_by_worker() == {}
    await store.claim_tasks(["q"], ts(1), 3, claim_as("w1", ts(1)))
    claimed = await store.claim_tasks(["q"], ts(1), 1, claim_as("w2", ts(1)))
    await store.claim_tasks(["q"], ts(1), 1, claim_as("w1", ts(1)), project="p2")
    assert await store.claims_by_worker() == {"w1": 3, "w2": 1}
    assert await store.claims_by_worker(project="p2") == {"w1": 1}
    # A finished task is no longer held.
    (task,) = claimed
    await store.update_task(task.done("w2", None, ts(2)))
    assert await store.claims_by_worker() == {"w1": 3}


async def test_forget_workers_deletes_the_long_silent(store: Store) -> None:
    await store.record_workers([seen("old1", 1), seen("old2", 2, project="p2"), seen("old3", 3), seen("new", 50)])
    assert await store.forget_workers(ts(10), 0) == 0
    assert await store.forget_workers(ts(10), 2) == 2
    assert await store.forget_workers(ts(10), 10) == 1
    assert await store.forget_workers(ts(10), 10) == 0
    assert [w.id for w in await store.list_workers(project=None)] == ["new"]
    with pytest.raises(NotFound):
        await store.get_worker("old1")


async def test_sqlite_claims_by_worker_reads_only_the_projects_claimed_tasks(tmp_path: Path) -> None:
    path = str(tmp_path / "plan.db")
    opened = SqliteStore(path)
    await opened.open()
    await opened.close()
    conn = sqlite3.connect(path)
    try:
        plan = "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {workers._CLAIMS_SQL}", ("p",)))
    finally:
        conn.close()
    # A seek in the partial index of claimed tasks (the grouping sorts only what it found).
    assert "SEARCH tasks USING INDEX tasks_claimed (project=?)" in plan, plan


async def test_listing_only_the_draining(store: Store, twin: Store) -> None:
    await store.record_workers([seen("w1", 1), seen("w2", 1), seen("w3", 1, project="p2")])
    assert await twin.list_workers(project=None, draining_only=True) == []
    await store.set_worker_draining("w2", True, ts(2))
    await store.set_worker_draining("w3", True, ts(2), project="p2")
    # Another instance sees a drain at once.
    got = await twin.list_workers(project=None, draining_only=True)
    assert [(w.project, w.id, w.draining) for w in got] == [("default", "w2", True), ("p2", "w3", True)]
    assert [w.id for w in await twin.list_workers(project="p2", draining_only=True)] == ["w3"]
    await twin.set_worker_draining("w2", False, ts(3))
    assert [w.id for w in await store.list_workers(project=None, draining_only=True)] == ["w3"]
