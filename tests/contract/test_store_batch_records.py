"""Contract: batch records (`insert_batch`, `get_batch`, `update_batch`, `open_batches`) and `batch_counts`."""

from __future__ import annotations

import pytest

from tasques.domain.batch import Batch
from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.recurring import TaskDefinition
from tasques.domain.task import Metadata, Task, TaskKey, TaskState
from tasques.store.base import Store
from tests.contract import finished, make_task, ts


def make_batch(batch_id: str = "b1", *, total: int = 3, at: float = 0, project: str = DEFAULT_PROJECT) -> Batch:
    return Batch(
        id=batch_id,
        project=project,
        total=total,
        on_complete=TaskDefinition(queue="cb", kind="joined", args={"x": 1}),
        metadata=Metadata(created_at=ts(at), modified_at=ts(at)),
    )


def in_batch(task: Task, batch_id: str) -> Task:
    return task.model_copy(update={"batch_id": batch_id})


async def test_insert_then_get_returns_the_stored_batch(store: Store) -> None:
    stored = await store.insert_batch(make_batch())
    got = await store.get_batch("b1")
    assert got == stored
    assert got.on_complete == TaskDefinition(queue="cb", kind="joined", args={"x": 1})
    assert got.open


async def test_a_taken_batch_id_is_refused_and_the_original_kept(store: Store) -> None:
    await store.insert_batch(make_batch(total=3))
    with pytest.raises(AlreadyExists):
        await store.insert_batch(make_batch(total=9))
    assert (await store.get_batch("b1")).total == 3


async def test_get_missing_batch_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_batch("nope")


async def test_update_batch_is_conditional_on_its_version(store: Store) -> None:
    stored = await store.insert_batch(make_batch())
    done = await store.update_batch(stored.completed(ts(5), TaskKey(queue="cb", id="b1.done")))
    assert done.metadata.version != stored.metadata.version
    assert await store.get_batch("b1") == done
    with pytest.raises(VersionConflict):
        await store.update_batch(stored.failed(ts(6), "late"))
    with pytest.raises(NotFound):
        await store.update_batch(make_batch("missing"))


async def test_batches_are_confined_to_their_project(store: Store) -> None:
    await store.insert_batch(make_batch("b1", total=1))
    other = await store.insert_batch(make_batch("b1", total=2, project="other"))
    assert (await store.get_batch("b1")).total == 1
    assert await store.get_batch("b1", project="other") == other
    with pytest.raises(NotFound):
        await store.get_batch("b1", project="third")


async def test_open_batches_are_oldest_first_and_leave_out_completed_and_failed_ones(store: Store) -> None:
    newest = await store.insert_batch(make_batch("c", at=30))
    oldest = await store.insert_batch(make_batch("a", at=10, project="other"))
    middle = await store.insert_batch(make_batch("b", at=20))
    completed = await store.insert_batch(make_batch("d", at=5))
    failed = await store.insert_batch(make_batch("e", at=6))
    await store.update_batch(completed.completed(ts(40), None))
    await store.update_batch(failed.failed(ts(40), "insert failed"))
    assert [b.id for b in await store.open_batches(10)] == ["a", "b", "c"]
    assert await store.open_batches(10) == [oldest, middle, newest]
    assert [b.id for b in await store.open_batches(2)] == ["a", "b"]
    assert [b.id for b in await store.open_batches(2, after=middle)] == ["c"]
    assert await store.open_batches(2, after=newest) == []
    assert await store.open_batches(0) == []


async def test_batch_counts_count_live_and_archived_tasks_by_state(store: Store) -> None:
    tasks = [in_batch(make_task("q", f"t{i}"), "b1") for i in range(5)]
    tasks[0] = finished(tasks[0], ts(1))
    tasks[1] = finished(tasks[1], ts(1), dead=True)
    tasks[2] = tasks[2].claimed("w", ts(1), "c1")
    tasks.append(in_batch(finished(make_task("other-queue", "t9"), ts(1)), "b1"))
    await store.insert_tasks(tasks)
    # Not in the batch: another batch, no batch, the same batch id in another project.
    await store.insert_tasks([in_batch(make_task("q", "x1"), "b2"), make_task("q", "x2")])
    await store.insert_tasks([in_batch(make_task("q", "x3", project="other"), "b1")], quota=None)
    assert await store.batch_counts("b1") == {
        TaskState.DONE: 2,
        TaskState.DEAD: 1,
        TaskState.CLAIMED: 1,
        TaskState.QUEUED: 2,
    }
    assert await store.archive_finished(ts(10), 10) == 3
    assert await store.get_task("q", "t0") is not None
    counts = await store.batch_counts("b1")
    assert counts == {TaskState.DONE: 2, TaskState.DEAD: 1, TaskState.CLAIMED: 1, TaskState.QUEUED: 2}
    assert await store.batch_counts("b1", project="other") == {TaskState.QUEUED: 1}
    assert await store.batch_counts("b2") == {TaskState.QUEUED: 1}
    assert await store.batch_counts("none") == {}


async def test_batch_counts_follow_a_task_through_its_states(store: Store) -> None:
    task = await store.insert_task(in_batch(make_task("q", "t"), "b1"))
    assert await store.batch_counts("b1") == {TaskState.QUEUED: 1}
    claimed = await store.update_task(task.claimed("w", ts(1), "c1"))
    assert await store.batch_counts("b1") == {TaskState.CLAIMED: 1}
    await store.update_task(claimed.done("w", None, ts(2)))
    assert await store.batch_counts("b1") == {TaskState.DONE: 1}


async def test_a_sensitive_on_complete_round_trips_sealed(store: Store) -> None:
    definition = TaskDefinition(queue="cb", kind="joined", args={"secret": "s3"}, sensitive=True)
    batch = make_batch().model_copy(update={"on_complete": definition})
    stored = await store.insert_batch(batch)
    assert (await store.get_batch("b1")).on_complete == definition
    assert (await store.update_batch(stored.completed(ts(1), None))).on_complete == definition
    assert [b.id for b in await store.open_batches(10)] == []
