"""Contract: projects are isolated. Two projects using the same queue names, task ids, recurring ids and worker
ids never see, claim, count or change each other's records; the sweeps that span projects see both."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasques.domain.errors import AlreadyExists, NotFound, QuotaExceeded
from tasques.domain.http_target import TaskTarget
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.store.base import QueueProbe, Store, TaskChange, TaskFilter
from tests.contract import T0, claim_as, finished, make_recurring, make_task, ts

A, B = "alpha", "beta"


async def _same_names(store: Store) -> None:
    """The same (queue, id) in both projects; B's task has a higher priority so a leak would pick it first."""
    out = await store.insert_tasks([make_task("q", "t", project=A, args={"p": A})])
    assert isinstance(out[0], Task)
    out = await store.insert_tasks([make_task("q", "t", project=B, priority=9, args={"p": B})])
    assert isinstance(out[0], Task), "the same queue and id in another project is not a duplicate"


async def test_the_same_key_in_two_projects_is_two_tasks(store: Store) -> None:
    await _same_names(store)
    a = await store.get_task("q", "t", project=A)
    b = await store.get_task("q", "t", project=B)
    assert (a.project, a.args, b.project, b.args) == (A, {"p": A}, B, {"p": B})
    with pytest.raises(NotFound):
        await store.get_task("q", "t", project="gamma")
    with pytest.raises(NotFound):
        await store.get_task("q", "t")  # the default project has no such task
    # A duplicate is still a duplicate within its project.
    again = await store.insert_tasks([make_task("q", "t", project=A)])
    assert isinstance(again[0], AlreadyExists)


async def test_claims_take_only_their_projects_tasks(store: Store) -> None:
    await _same_names(store)
    claimed = await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)), project=A)
    assert [(t.project, t.id) for t in claimed] == [(A, "t")]
    assert await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)), project=A) == []
    assert (await store.get_task("q", "t", project=B)).state is TaskState.QUEUED
    # The same worker id in B finds only B's claim.
    assert await store.find_claimed_by("w", ts(1), project=B) == []
    assert [t.project for t in await store.find_claimed_by("w", ts(1), project=A)] == [A]
    claimed = await store.claim_tasks(["q"], ts(2), 10, claim_as("w", ts(2)), project=B)
    assert [(t.project, t.id) for t in claimed] == [(B, "t")]


async def test_the_dispatcher_claims_across_projects(store: Store) -> None:
    await _same_names(store)
    # Neither is an HTTP task: a dispatcher claim across every project finds nothing, and the pull probe of one
    # project names only that project.
    assert await store.claim_tasks(["q"], ts(1), 10, claim_as("d", ts(1)), TaskTarget.HTTP, project=None) == []
    found = await store.claimable_queues(ts(1), [QueueProbe(TaskTarget.PULL, frozenset({"q"}), project=A)])
    assert found == {(A, "q", TaskTarget.PULL)}
    everywhere = await store.claimable_queues(ts(1), [QueueProbe(TaskTarget.PULL, None, project=None)])
    assert everywhere == {(A, "q", TaskTarget.PULL), (B, "q", TaskTarget.PULL)}
    less_a = await store.claimable_queues(
        ts(1), [QueueProbe(TaskTarget.PULL, None, excluding=frozenset({(A, "q")}), project=None)]
    )
    assert less_a == {(B, "q", TaskTarget.PULL)}
    pull_anywhere = await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)), project=None)
    assert sorted(t.project for t in pull_anywhere) == [A, B]


async def test_changes_reach_only_the_named_project(store: Store) -> None:
    await _same_names(store)
    out = await store.modify_tasks([TaskChange("q", "t", lambda t: t.cancelled(ts(1)), project=A)])
    assert isinstance(out[0], Task)
    assert out[0].project == A
    assert (await store.get_task("q", "t", project=A)).state is TaskState.CANCELLED
    assert (await store.get_task("q", "t", project=B)).state is TaskState.QUEUED
    missing = await store.modify_tasks([TaskChange("q", "t", lambda t: t.cancelled(ts(1)), project="gamma")])
    assert isinstance(missing[0], NotFound)
    # The same key in two projects is two distinct keys in one call.
    both = await store.modify_tasks(
        [
            TaskChange("q", "t", lambda t: t.model_copy(update={"priority": 3}), project=A),
            TaskChange("q", "t", lambda t: t.run_now(ts(5)), project=B),
        ]
    )
    assert all(isinstance(x, Task) for x in both)
    b = await store.get_task("q", "t", project=B)
    b2 = await store.update_task(b.model_copy(update={"priority": 1}))
    assert b2.priority == 1
    assert (await store.get_task("q", "t", project=A)).priority == 3


async def test_listings_and_counts_are_per_project(store: Store) -> None:
    await _same_names(store)
    await store.insert_tasks([make_task("other", "u", project=A, recurring_task_id="r")])
    page = await store.list_tasks(TaskFilter(project=A), 10, None)
    assert sorted((t.project, t.queue, t.id) for t in page.tasks) == [(A, "other", "u"), (A, "q", "t")]
    page = await store.list_tasks(TaskFilter(project=B, queue="q"), 10, None)
    assert [(t.project, t.id) for t in page.tasks] == [(B, "t")]
    assert (await store.list_tasks(TaskFilter(), 10, None)).tasks == []

    counts_a = await store.queue_counts(project=A)
    assert sorted((c.project, c.queue, c.counts.get(TaskState.QUEUED, 0)) for c in counts_a) == [
        (A, "other", 1),
        (A, "q", 1),
    ]
    every = await store.queue_counts()
    assert sorted((c.project, c.queue) for c in every) == [(A, "other"), (A, "q"), (B, "q")]
    assert await store.count_outstanding("r", project=A) == 1
    assert await store.count_outstanding("r", project=B) == 0
    assert await store.count_project_outstanding(A) == 2
    assert await store.count_project_outstanding(B) == 1


async def test_sweeps_span_every_project(store: Store) -> None:
    timeout = timedelta(seconds=10)
    await store.insert_tasks(
        [make_task("q", "t", project=p, processing_timeout=timeout).claimed("w", ts(0), "c1") for p in (A, B)]
    )
    assert sorted(t.project for t in await store.timed_out_tasks(ts(100), 10)) == [A, B]
    done = [finished(make_task("q", "f", project=p), ts(1)) for p in (A, B)]
    await store.insert_tasks(done)
    assert await store.archive_finished(ts(50), 10) == 2
    # Archived tasks are still found, each in its own project, and their keys stay taken per project.
    for p in (A, B):
        archived = await store.get_task("q", "f", project=p)
        assert (archived.project, archived.state) == (p, TaskState.DONE)
    again = await store.insert_tasks([make_task("q", "f", project=A)])
    assert isinstance(again[0], AlreadyExists)
    assert isinstance((await store.insert_tasks([make_task("q", "f", project="gamma")]))[0], Task)


async def test_recurring_tasks_are_per_project(store: Store) -> None:
    await store.insert_recurring(make_recurring("r", project=A, queue="qa"))
    await store.insert_recurring(make_recurring("r", project=B, queue="qb"))
    with pytest.raises(AlreadyExists):
        await store.insert_recurring(make_recurring("r", project=A))
    assert (await store.get_recurring("r", project=A)).task_definition.queue == "qa"
    assert (await store.get_recurring("r", project=B)).task_definition.queue == "qb"
    with pytest.raises(NotFound):
        await store.get_recurring("r")
    assert [r.project for r in await store.list_recurring(project=A)] == [A]
    assert sorted(r.project for r in await store.list_recurring()) == [A, B]
    a = await store.get_recurring("r", project=A)
    await store.update_recurring(a.model_copy(update={"schedule_expression": "@every 2m"}))
    assert (await store.get_recurring("r", project=B)).schedule_expression == "@every 1m"
    deleted = await store.delete_recurring("r", project=B)
    assert deleted.project == B
    assert (await store.get_recurring("r", project=A)).schedule_expression == "@every 2m"
    with pytest.raises(NotFound):
        await store.delete_recurring("r", project=B)


async def test_queue_settings_are_per_project(store: Store) -> None:
    await store.insert_queue_settings(QueueSettings.default("q", T0, A).changed(T0, paused=True))
    await store.insert_queue_settings(QueueSettings.default("q", T0, B))
    assert (await store.get_queue_settings("q", project=A)).paused
    assert not (await store.get_queue_settings("q", project=B)).paused
    with pytest.raises(NotFound):
        await store.get_queue_settings("q")
    assert [(s.project, s.queue) for s in await store.list_queue_settings(project=B)] == [(B, "q")]
    assert sorted(s.project for s in await store.list_queue_settings()) == [A, B]
    b = await store.get_queue_settings("q", project=B)
    await store.update_queue_settings(b.changed(ts(1), paused=True))
    a = await store.get_queue_settings("q", project=A)
    assert a.paused
    assert a.metadata.modified_at == T0


def _attempt(project: str, n: int, ended: float) -> Attempt:
    return Attempt(
        project=project,
        queue="q",
        task_id="t",
        attempt=n,
        worker_id="d",
        started_at=ts(ended - 1),
        ended_at=ts(ended),
        duration_ms=1.0,
        success=True,
        status_code=200,
    )


async def test_attempts_are_per_project(store: Store) -> None:
    await store.insert_attempt(_attempt(A, 1, 10))
    await store.insert_attempt(_attempt(B, 1, 20))
    await store.insert_attempt(_attempt(B, 2, 30))
    assert [a.ended_at for a in await store.list_attempts("q", "t", project=A)] == [ts(10)]
    assert [a.attempt for a in await store.list_attempts("q", "t", project=B)] == [1, 2]
    assert await store.list_attempts("q", "t") == []
    assert await store.delete_attempts(ts(25), 10) == 2
    assert [a.attempt for a in await store.list_attempts("q", "t", project=B)] == [2]


async def test_a_quota_refuses_past_its_limit_and_counts_only_its_project(store: Store) -> None:
    await store.insert_tasks([make_task("q", f"b{i}", project=B) for i in range(5)])
    first = await store.insert_tasks([make_task("q", f"a{i}", project=A) for i in range(3)], quota=4)
    assert all(isinstance(t, Task) for t in first)
    with pytest.raises(QuotaExceeded):
        await store.insert_tasks([make_task("q", f"a{i}", project=A) for i in range(3, 5)], quota=4)
    assert await store.count_project_outstanding(A) == 3
    # Finishing a task frees its place.
    await store.modify_tasks([TaskChange("q", "a0", lambda t: t.cancelled(ts(1)), project=A)])
    out = await store.insert_tasks([make_task("q", f"a{i}", project=A) for i in range(3, 5)], quota=4)
    assert all(isinstance(t, Task) for t in out)
    assert await store.count_project_outstanding(A) == 4
