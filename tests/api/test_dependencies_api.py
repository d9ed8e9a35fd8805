"""Task dependencies over HTTP, on both stores: `depends_on` on create and bulk, the `waiting` state, release
and cancel when dependencies settle (cascading), the leader's repair sweep, and GET with dependency states."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

import tasques.server
from tasques.domain.task import NewTask, Task, TaskKey
from tasques.service.clock import utc_now
from tasques.store.base import Store
from tests.api.conftest import Client, Serve, assert_error, call, claim, claim_one, create_task, get_task


@pytest.fixture
async def served(serve: Serve) -> tuple[Client, Store]:
    """A whole server on each store, on the real clock (releases run as they would), the leader held elsewhere."""
    return await serve(clock=utc_now)


def dep(queue: str, task_id: str) -> dict[str, str]:
    return {"queue": queue, "id": task_id}


async def finish(client: Client, queue: str, *, fail: bool = False) -> Any:
    task = await claim_one(client, queue)
    verb = "failed" if fail else "done"
    return await call(client, "PUT", f"/tasques/{verb}/{queue}/{task['id']}", status=200, worker="worker-1")


async def eventually_state(client: Client, queue: str, task_id: str, state: str, within: float = 3.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        task = await get_task(client, queue, task_id)
        if task["state"] == state or time.monotonic() > deadline:
            assert task["state"] == state, task
            return task
        await asyncio.sleep(0.05)


async def test_a_dependency_done_before_the_dependent_is_created_queues_it_at_once(
    served: tuple[Client, Store],
) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a")
    await finish(client, "a")
    b = await create_task(client, queue="b", id="b", depends_on=[dep("a", "a"), dep("a", "a")])
    assert b["state"] == "queued"
    assert b["depends_on"] == [dep("a", "a")]  # repeats count once
    assert b["on_dependency_failure"] == "cancel"
    assert (await claim_one(client, "b"))["id"] == "b"


async def test_a_waiting_task_is_never_claimed_and_is_released_when_its_dependency_is_done(
    served: tuple[Client, Store],
) -> None:
    client, store = served
    await create_task(client, queue="a", id="a")
    b = await create_task(client, queue="b", id="b", depends_on=[dep("a", "a")])
    assert b["state"] == "waiting"
    assert await claim(client, ["b"], block_for="0.3s") == []
    listed = await call(client, "GET", "/tasques", status=200, params={"state": "waiting"})
    assert [t["id"] for t in listed["tasks"]] == ["b"]
    await finish(client, "a")
    # A worker blocked on the dependent's queue gets it: at once on SQLite, within about a second on ES.
    started = time.monotonic()
    claimed = await claim(client, ["b"], block_for="3s")
    elapsed = time.monotonic() - started
    assert [t["id"] for t in claimed] == ["b"]
    assert elapsed < (0.5 if store.search_delay == timedelta(0) else 2.0), elapsed


async def test_a_diamond_releases_the_join_after_both_branches(served: tuple[Client, Store]) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a")
    await create_task(client, queue="b", id="b", depends_on=[dep("a", "a")])
    await create_task(client, queue="c", id="c", depends_on=[dep("a", "a")])
    await create_task(client, queue="d", id="d", depends_on=[dep("b", "b"), dep("c", "c")])
    await finish(client, "a")
    await eventually_state(client, "b", "b", "queued")
    await eventually_state(client, "c", "c", "queued")
    await finish(client, "b")
    await asyncio.sleep(0.2)
    assert (await get_task(client, "d", "d"))["state"] == "waiting"
    await finish(client, "c")
    await eventually_state(client, "d", "d", "queued")
    shown = await get_task(client, "d", "d")
    assert shown["dependencies"] == [{**dep("b", "b"), "state": "done"}, {**dep("c", "c"), "state": "done"}]


async def test_bulk_items_may_depend_on_each_other(served: tuple[Client, Store]) -> None:
    client, _ = served
    body = {
        "tasks": [
            {"queue": "a", "kind": "k", "id": "a"},
            {"queue": "b", "kind": "k", "id": "b", "depends_on": [dep("a", "a")]},
            {"queue": "c", "kind": "k", "id": "c", "depends_on": [dep("b", "b"), dep("a", "a")]},
        ]
    }
    results = (await call(client, "POST", "/tasques/bulk", status=200, body=body))["results"]
    assert [r["task"]["state"] for r in results] == ["queued", "waiting", "waiting"]
    await finish(client, "a")
    await eventually_state(client, "b", "b", "queued")
    assert (await get_task(client, "c", "c"))["state"] == "waiting"
    await finish(client, "b")
    await eventually_state(client, "c", "c", "queued")


async def test_a_cycle_through_bulk_items_is_a_400_naming_the_item(served: tuple[Client, Store]) -> None:
    client, _ = served
    body = {
        "tasks": [
            {"queue": "q", "kind": "k", "id": "x"},
            {"queue": "q", "kind": "k", "id": "a", "depends_on": [dep("q", "b"), dep("q", "x")]},
            {"queue": "q", "kind": "k", "id": "b", "depends_on": [dep("q", "a")]},
        ]
    }
    error = await call(client, "POST", "/tasques/bulk", status=400, body=body)
    assert_error(error)
    assert error["details"][0]["field"] in {"tasks.1.depends_on", "tasks.2.depends_on"}
    itself = {"tasks": [{"queue": "q", "kind": "k", "id": "s", "depends_on": [dep("q", "s")]}]}
    assert_error(await call(client, "POST", "/tasques/bulk", status=400, body=itself), "tasks.0.depends_on.0")
    listed = await call(client, "GET", "/tasques", status=200)
    assert listed["tasks"] == []  # nothing created


async def test_unknown_dependencies_are_a_400_naming_them(served: tuple[Client, Store]) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a")
    error = await call(
        client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "depends_on": [dep("a", "nope")]}
    )
    assert_error(error, "depends_on.0")
    body = {
        "tasks": [
            {"queue": "q", "kind": "k", "id": "one"},
            {"queue": "q", "kind": "k", "depends_on": [dep("q", "one"), dep("a", "a"), dep("z", "z")]},
        ]
    }
    assert_error(await call(client, "POST", "/tasques/bulk", status=400, body=body), "tasks.1.depends_on.2")
    extra = {"queue": "q", "kind": "k", "depends_on": [{"queue": "a", "id": "a", "project": "x"}]}
    assert_error(await call(client, "POST", "/tasques", status=400, body=extra))
    bad = {"queue": "q", "kind": "k", "depends_on": [{"queue": "a/b", "id": "a"}]}
    assert_error(await call(client, "POST", "/tasques", status=400, body=bad))


async def test_a_dead_dependency_cancels_with_the_reason_or_runs_with_run(served: tuple[Client, Store]) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a", retry_times=0)
    await create_task(client, queue="b", id="cancelled", depends_on=[dep("a", "a")])
    await create_task(client, queue="c", id="runs", depends_on=[dep("a", "a")], on_dependency_failure="run")
    await finish(client, "a", fail=True)
    assert (await get_task(client, "a", "a"))["state"] == "dead"
    cancelled = await eventually_state(client, "b", "cancelled", "cancelled")
    assert cancelled["cancel_reason"] == "dependency a/a is dead"
    await eventually_state(client, "c", "runs", "queued")
    # Created after the failure: decided at once.
    late = await create_task(client, queue="b", id="late", depends_on=[dep("a", "a")])
    assert late["state"] == "cancelled"
    assert late["cancel_reason"] == "dependency a/a is dead"
    late_run = await create_task(client, queue="c", id="late", depends_on=[dep("a", "a")], on_dependency_failure="run")
    assert late_run["state"] == "queued"


async def test_a_failure_cascades_down_a_chain(served: tuple[Client, Store]) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a", retry_times=0)
    await create_task(client, queue="b", id="b", depends_on=[dep("a", "a")])
    await create_task(client, queue="c", id="c", depends_on=[dep("b", "b")])
    await finish(client, "a", fail=True)
    assert (await eventually_state(client, "b", "b", "cancelled"))["cancel_reason"] == "dependency a/a is dead"
    assert (await eventually_state(client, "c", "c", "cancelled"))["cancel_reason"] == "dependency b/b is cancelled"


async def test_cancelling_a_dependency_cancels_its_dependents(served: tuple[Client, Store]) -> None:
    client, _ = served
    await create_task(client, queue="a", id="a")
    await create_task(client, queue="b", id="b", depends_on=[dep("a", "a")])
    await call(client, "PUT", "/tasques/cancel/a/a", status=200)
    assert (await eventually_state(client, "b", "b", "cancelled"))["cancel_reason"] == "dependency a/a is cancelled"


def _waiting(queue: str, task_id: str, deps: list[tuple[str, str]]) -> Task:
    new = NewTask(
        queue=queue,
        kind="k",
        id=task_id,
        run_at=utc_now(),
        retry_times=3,
        processing_timeout=timedelta(minutes=1),
        depends_on=tuple(TaskKey(queue=q, id=i) for q, i in deps),
        waiting=True,
    )
    return Task.create(new, utc_now())


async def test_the_leader_sweep_repairs_a_lost_release(served: tuple[Client, Store]) -> None:
    client, store = served
    resolver = client.app[tasques.server.DEPENDENCIES]
    await create_task(client, queue="a", id="a")
    await finish(client, "a")
    # Let the resolver's passes for that finish (on ES, also the second one) end before the writes below.
    await resolver.idle()
    await asyncio.sleep(store.search_delay.total_seconds() + 0.3)
    # Written past the service, as if a crash had lost the release: its dependency is done already.
    await store.insert_task(_waiting("b", "lost", [("a", "a")]))
    await store.insert_task(_waiting("b", "orphan", [("a", "gone")]))
    await store.insert_task(_waiting("b", "still", [("a", "a"), ("b", "lost")]))
    shown = await get_task(client, "b", "orphan")
    assert shown["state"] == "waiting"
    assert shown["dependencies"] == [{**dep("a", "gone"), "state": "missing"}]
    assert await resolver.sweep(2) == 2  # one page of 2, then the rest
    assert (await get_task(client, "b", "lost"))["state"] == "queued"
    orphan = await get_task(client, "b", "orphan")
    assert orphan["state"] == "cancelled"
    assert orphan["cancel_reason"] == "dependency a/gone is missing (deleted)"
    assert (await get_task(client, "b", "still"))["state"] == "waiting"
    assert await resolver.sweep(100) == 0


async def test_get_shows_no_dependencies_on_a_task_without_them(served: tuple[Client, Store]) -> None:
    client, _ = served
    task = await create_task(client, queue="a", id="a")
    assert "dependencies" not in await get_task(client, "a", "a")
    assert "depends_on" not in task
    assert "on_dependency_failure" not in task
