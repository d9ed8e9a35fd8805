"""Store primitives of task dependencies, on every store: `get_tasks`, `find_dependents`, `waiting_tasks`."""

from __future__ import annotations

from tasques.domain.task import NewTask, Task, TaskKey, TaskState
from tasques.store.base import Store, TaskChange
from tests.contract import T0, finished, make_task, ts


def waiting(queue: str, task_id: str, deps: list[tuple[str, str]], project: str = "default") -> Task:
    new = NewTask(
        queue=queue,
        kind="k",
        id=task_id,
        run_at=T0,
        retry_times=3,
        processing_timeout=make_task().processing_timeout,
        project=project,
        depends_on=tuple(TaskKey(queue=q, id=i) for q, i in deps),
        waiting=True,
    )
    return Task.create(new, T0)


def key(queue: str, task_id: str) -> TaskKey:
    return TaskKey(queue=queue, id=task_id)


async def test_get_tasks_reads_live_archived_and_missing_in_order(store: Store) -> None:
    await store.insert_task(finished(make_task("q", "old"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1
    live = await store.insert_task(make_task("q", "live"))
    await store.insert_task(make_task("q", "other-project", project="p2"))
    got = await store.get_tasks([key("q", "missing"), key("q", "old"), key("q", "live"), key("q", "other-project")])
    assert got[0] is None
    assert got[1] is not None
    assert got[1].state is TaskState.DONE
    assert got[1].id == "old"
    assert got[2] == live
    assert got[3] is None  # another project's task is not this project's
    assert [t.id if t else None for t in await store.get_tasks([key("q", "other-project")], project="p2")] == [
        "other-project"
    ]
    assert await store.get_tasks([]) == []


async def test_get_tasks_sees_a_write_at_once(store: Store) -> None:
    task = await store.insert_task(make_task("q", "a"))
    [changed] = await store.modify_tasks([TaskChange("q", "a", lambda t: t.cancelled(ts(1), "why"))])
    assert isinstance(changed, Task)
    [read] = await store.get_tasks([key("q", "a")])
    assert read is not None
    assert read.state is TaskState.CANCELLED
    assert read.cancel_reason == "why"
    assert read.metadata.version != task.metadata.version


async def test_find_dependents_matches_the_exact_key_within_the_project(store: Store) -> None:
    await store.insert_tasks(
        [
            waiting("d", "on-a", [("q", "a")]),
            waiting("d", "on-a-and-b", [("q", "b"), ("q", "a")]),
            waiting("d", "on-other-queue-a", [("other", "a")]),
            waiting("d", "on-b", [("q", "b")]),
            waiting("d", "other-project", [("q", "a")], project="p2"),
        ]
    )
    found = await store.find_dependents([key("q", "a")])
    assert sorted(t.id for t in found) == ["on-a", "on-a-and-b"]
    assert all(t.state is TaskState.WAITING for t in found)
    found = await store.find_dependents([key("q", "a"), key("q", "b")])
    assert sorted(t.id for t in found) == ["on-a", "on-a-and-b", "on-b"]
    assert [t.id for t in await store.find_dependents([key("q", "a")], project="p2")] == ["other-project"]
    assert await store.find_dependents([key("q", "nothing")]) == []
    assert len(await store.find_dependents([key("q", "a"), key("q", "b")], limit=2)) == 2


async def test_find_dependents_skips_tasks_no_longer_waiting(store: Store) -> None:
    await store.insert_tasks([waiting("d", "x", [("q", "a")]), waiting("d", "y", [("q", "a")])])
    [released] = await store.modify_tasks([TaskChange("d", "x", lambda t: t.released(ts(1)))])
    assert isinstance(released, Task)
    assert released.state is TaskState.QUEUED
    assert [t.id for t in await store.find_dependents([key("q", "a")])] == ["y"]


async def test_waiting_tasks_pages_across_projects_in_key_order(store: Store) -> None:
    tasks = [waiting(q, i, [("q", "a")], project=p) for p in ("a", "b") for q in ("q1", "q2") for i in ("x", "y")]
    await store.insert_tasks([t for t in tasks if t.project == "a"])
    await store.insert_tasks([t for t in tasks if t.project == "b"])
    await store.insert_task(make_task("q1", "queued", project="a"))
    seen: list[tuple[str, str, str]] = []
    after: tuple[str, str, str] | None = None
    while True:
        page = await store.waiting_tasks(after, 3)
        seen.extend((t.project, t.queue, t.id) for t in page)
        if len(page) < 3:
            break
        last = page[-1]
        after = (last.project, last.queue, last.id)
    assert seen == [(t.project, t.queue, t.id) for t in tasks]
