"""Contract: tasks — insert, get, conditional update, claims, timeouts, listing, counts and archiving."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tasques.domain.errors import AlreadyExists, InvalidInput, NotClaimed, NotFound, VersionConflict
from tasques.domain.task import Task, TaskState
from tasques.store.base import Store, TaskFilter
from tests.contract import BACKOFF, claim_as, finished, make_task, ts

# Insert and get


async def test_insert_then_get_returns_the_stored_task(store: Store) -> None:
    task = make_task("q", "a", priority=3, args={"x": [1, 2]}, kind="sayHello")
    inserted = await store.insert_task(task)
    assert inserted.model_dump(exclude={"metadata"}) == task.model_dump(exclude={"metadata"})
    assert inserted.metadata.created_at == task.metadata.created_at
    assert await store.get_task("q", "a") == inserted


async def test_insert_duplicate_is_refused_and_keeps_the_original(store: Store) -> None:
    original = await store.insert_task(make_task("q", "a", priority=1))
    with pytest.raises(AlreadyExists):
        await store.insert_task(make_task("q", "a", priority=9))
    assert await store.get_task("q", "a") == original


async def test_same_id_in_another_queue_is_a_different_task(store: Store) -> None:
    await store.insert_task(make_task("q1", "a"))
    await store.insert_task(make_task("q2", "a"))
    assert (await store.get_task("q2", "a")).queue == "q2"


async def test_insert_duplicate_of_an_archived_task_is_refused(store: Store) -> None:
    await store.insert_task(finished(make_task("q", "a"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1
    with pytest.raises(AlreadyExists):
        await store.insert_task(make_task("q", "a", at=ts(20)))
    results = await store.insert_tasks([make_task("q", "a", at=ts(20))])
    assert isinstance(results[0], AlreadyExists)


async def test_generated_keys_still_refuse_live_duplicates_and_leave_other_ids_checked(store: Store) -> None:
    await store.insert_task(finished(make_task("q", "archived"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1
    await store.insert_task(make_task("q", "live"))
    generated = frozenset({("q", "live"), ("q", "new")})
    results = await store.insert_tasks(
        [make_task("q", "live"), make_task("q", "new"), make_task("q", "archived", at=ts(20))], generated=generated
    )
    assert [type(r) for r in results] == [AlreadyExists, Task, AlreadyExists]
    with pytest.raises(AlreadyExists):
        await store.insert_task(make_task("q", "live"), generated=frozenset({("q", "live")}))
    assert (await store.get_task("q", "archived")).state is TaskState.DONE
    assert await store.get_task("q", "new") == results[1]


async def test_get_missing_raises_not_found(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    with pytest.raises(NotFound):
        await store.get_task("q", "missing")
    with pytest.raises(NotFound):
        await store.get_task("other", "a")


async def test_insert_tasks_reports_each_item(store: Store) -> None:
    await store.insert_task(make_task("q", "taken"))
    results = await store.insert_tasks(
        [make_task("q", "a"), make_task("q", "taken"), make_task("q", "b"), make_task("q", "a")]
    )
    assert [type(r) for r in results] == [Task, AlreadyExists, Task, AlreadyExists]
    for result in results:
        if isinstance(result, Task):
            assert await store.get_task(result.queue, result.id) == result


async def test_insert_tasks_empty(store: Store) -> None:
    assert await store.insert_tasks([]) == []


# Conditional update


async def test_update_replaces_and_changes_the_version(store: Store) -> None:
    inserted = await store.insert_task(make_task("q", "a"))
    updated = await store.update_task(inserted.claimed("w", ts(1), "c1"))
    assert updated.state is TaskState.CLAIMED
    assert updated.metadata.version != inserted.metadata.version
    assert await store.get_task("q", "a") == updated
    again = await store.update_task(updated.reported("w", {"p": 1}, ts(2)))
    assert again.metadata.version not in (inserted.metadata.version, updated.metadata.version)


async def test_update_with_a_stale_version_conflicts(store: Store) -> None:
    inserted = await store.insert_task(make_task("q", "a"))
    winner = await store.update_task(inserted.claimed("w1", ts(1), "c1"))
    with pytest.raises(VersionConflict):
        await store.update_task(inserted.claimed("w2", ts(1), "c2"))
    assert await store.get_task("q", "a") == winner


async def test_update_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_task(make_task("q", "ghost"))


async def test_update_tasks_reports_each_item(store: Store) -> None:
    a = await store.insert_task(make_task("q", "a"))
    b = await store.insert_task(make_task("q", "b"))
    stale_b = b
    b = await store.update_task(b.claimed("w", ts(1), "c1"))
    results = await store.update_tasks([a.claimed("w", ts(2), "c1"), stale_b.claimed("w", ts(2), "c1")])
    assert isinstance(results[0], Task)
    assert results[0].state is TaskState.CLAIMED
    assert isinstance(results[1], VersionConflict)
    assert await store.get_task("q", "a") == results[0]
    assert await store.get_task("q", "b") == b


async def test_update_tasks_same_task_twice_only_first_wins(store: Store) -> None:
    a = await store.insert_task(make_task("q", "a"))
    results = await store.update_tasks([a.claimed("w1", ts(1), "c1"), a.claimed("w2", ts(1), "c2")])
    assert isinstance(results[0], Task)
    assert isinstance(results[1], VersionConflict)
    stored = await store.get_task("q", "a")
    assert stored.last_claimed is not None
    assert stored.last_claimed.worker_id == "w1"


# Claim ids


def _claim_id(task: Task) -> str | None:
    return task.last_claimed.claim_id if task.last_claimed is not None else None


async def test_the_claim_id_round_trips_and_conditional_writes_keep_it(store: Store) -> None:
    await store.insert_task(make_task("q", "a", retry_times=0))
    [claimed] = await store.claim_tasks(["q"], ts(1), 1, lambda t: t.claimed("w", ts(1), "claim-1"))
    assert _claim_id(claimed) == "claim-1"
    assert await store.get_task("q", "a") == claimed
    reported = await store.update_task(claimed.reported("w", {"p": 1}, ts(2), "claim-1"))
    [reported_again] = await store.update_tasks([reported.reported("w", {"p": 2}, ts(3), "claim-1")])
    assert isinstance(reported_again, Task)
    assert _claim_id(await store.get_task("q", "a")) == "claim-1"
    # Listings and the reaper's search read it back too.
    assert [_claim_id(t) for t in (await store.list_tasks(TaskFilter(queue="q"), 10, None)).tasks] == ["claim-1"]
    assert [_claim_id(t) for t in await store.timed_out_tasks(ts(10_000), 10)] == ["claim-1"]
    # Unclaimed, it stays (as `last_claimed` does) until the next claim replaces it.
    unclaimed = await store.update_task(reported_again.unclaimed("w", ts(4), "claim-1"))
    assert (unclaimed.state, _claim_id(await store.get_task("q", "a"))) == (TaskState.QUEUED, "claim-1")
    [again] = await store.claim_tasks(["q"], ts(5), 1, lambda t: t.claimed("w", ts(5), "claim-2"))
    assert _claim_id(again) == "claim-2"
    done = await store.update_task(again.done("w", None, ts(6), "claim-2"))
    assert await store.archive_finished(ts(10), 10) == 1
    archived = await store.get_task("q", "a")
    assert (archived.state, _claim_id(archived)) == (TaskState.DONE, "claim-2")
    assert archived.model_dump(exclude={"metadata"}) == done.model_dump(exclude={"metadata"})


async def test_a_claim_without_a_claim_id_round_trips(store: Store) -> None:
    """Claims stored before claim ids existed read back with `claim_id` None."""
    claimed = make_task("q", "a").claimed("w", ts(1), "c1")
    assert claimed.last_claimed is not None
    legacy = claimed.model_copy(update={"last_claimed": claimed.last_claimed.model_copy(update={"claim_id": None})})
    inserted = await store.insert_task(legacy)
    stored = await store.get_task("q", "a")
    assert stored == inserted
    assert stored.last_claimed is not None
    assert stored.last_claimed.claim_id is None
    assert (await store.update_task(stored.done("w", None, ts(2)))).state is TaskState.DONE


# Claims


async def test_claim_order_is_priority_then_run_at(store: Store) -> None:
    await store.insert_tasks(
        [
            make_task("q", "low-early", priority=0, run_at=ts(1)),
            make_task("q", "high-late", priority=5, run_at=ts(3)),
            make_task("q", "high-early", priority=5, run_at=ts(2)),
            make_task("q", "mid", priority=2, run_at=ts(0)),
            make_task("q", "negative", priority=-1, run_at=ts(0)),
        ]
    )
    claimed = await store.claim_tasks(["q"], ts(10), 10, claim_as("w", ts(10)))
    assert [t.id for t in claimed] == ["high-early", "high-late", "mid", "low-early", "negative"]


async def test_claim_respects_limit_in_claim_order(store: Store) -> None:
    await store.insert_tasks([make_task("q", f"t{i}", priority=i % 3, run_at=ts(i)) for i in range(9)])
    first = await store.claim_tasks(["q"], ts(100), 4, claim_as("w", ts(100)))
    assert [t.id for t in first] == ["t2", "t5", "t8", "t1"]
    rest = await store.claim_tasks(["q"], ts(100), 100, claim_as("w", ts(100)))
    assert [t.id for t in rest] == ["t4", "t7", "t0", "t3", "t6"]


async def test_claim_skips_future_and_unclaimable_tasks(store: Store) -> None:
    await store.insert_tasks(
        [
            make_task("q", "due", run_at=ts(5)),
            make_task("q", "due-exactly-now", run_at=ts(10)),
            make_task("q", "future", run_at=ts(11), priority=9),
            make_task("q", "claimed", run_at=ts(0), priority=9).claimed("w0", ts(1), "c1"),
            finished(make_task("q", "done", run_at=ts(0), priority=9), ts(1)),
            finished(make_task("q", "dead", run_at=ts(0), priority=9, retry_times=0), ts(1), dead=True),
            make_task("other", "other-queue", run_at=ts(0), priority=9),
        ]
    )
    claimed = await store.claim_tasks(["q"], ts(10), 100, claim_as("w", ts(10)))
    assert {t.id for t in claimed} == {"due", "due-exactly-now"}


async def test_failed_tasks_are_claimable_once_due(store: Store) -> None:
    task = make_task("q", "a", retry_times=5)
    failed = task.claimed("w", ts(0), "c1").failed("w", None, ts(0), BACKOFF)
    assert failed.state is TaskState.FAILED
    await store.insert_task(failed)
    assert await store.claim_tasks(["q"], failed.run_at - timedelta(microseconds=1), 10, claim_as("w", ts(0))) == []
    claimed = await store.claim_tasks(["q"], failed.run_at, 10, claim_as("w", failed.run_at))
    assert [t.id for t in claimed] == ["a"]
    assert claimed[0].attempted == 2


async def test_claim_merges_queues_in_claim_order(store: Store) -> None:
    await store.insert_tasks(
        [
            make_task("a", "a1", priority=1, run_at=ts(1)),
            make_task("a", "a2", priority=0, run_at=ts(0)),
            make_task("b", "b1", priority=1, run_at=ts(0)),
            make_task("b", "b2", priority=3, run_at=ts(5)),
            make_task("c", "c1", priority=9, run_at=ts(0)),
        ]
    )
    claimed = await store.claim_tasks(["a", "b"], ts(10), 3, claim_as("w", ts(10)))
    assert [t.id for t in claimed] == ["b2", "b1", "a1"]
    rest = await store.claim_tasks(["b", "a", "b"], ts(10), 10, claim_as("w", ts(10)))
    assert [t.id for t in rest] == ["a2"]


async def test_claim_applies_and_persists_the_change(store: Store) -> None:
    inserted = await store.insert_task(make_task("q", "a", processing_timeout=timedelta(seconds=30)))
    [claimed] = await store.claim_tasks(["q"], ts(10), 1, claim_as("worker-7", ts(10)))
    assert claimed.state is TaskState.CLAIMED
    assert claimed.attempted == 1
    assert claimed.last_claimed is not None
    assert claimed.last_claimed.worker_id == "worker-7"
    assert claimed.last_claimed.times_out_at == ts(40)
    assert claimed.metadata.version != inserted.metadata.version
    assert await store.get_task("q", "a") == claimed
    # The returned version is the stored one: it can be updated conditionally.
    done = await store.update_task(claimed.done("worker-7", None, ts(11)))
    assert done.state is TaskState.DONE


async def test_claim_skips_a_task_the_change_refuses(store: Store) -> None:
    await store.insert_tasks([make_task("q", "a", priority=2), make_task("q", "b", priority=1)])
    before = await store.get_task("q", "a")

    def change(task: Task) -> Task:
        if task.id == "a":
            raise NotClaimed("refused")
        return task.claimed("w", ts(1), "c1")

    claimed = await store.claim_tasks(["q"], ts(1), 10, change)
    assert [t.id for t in claimed] == ["b"]
    assert await store.get_task("q", "a") == before


async def test_claim_with_nothing_to_claim(store: Store) -> None:
    assert await store.claim_tasks(["q"], ts(0), 10, claim_as("w", ts(0))) == []
    await store.insert_task(make_task("q", "a"))
    assert await store.claim_tasks([], ts(0), 10, claim_as("w", ts(0))) == []
    assert await store.claim_tasks(["q"], ts(0), 0, claim_as("w", ts(0))) == []


async def test_concurrent_claims_claim_every_task_exactly_once(store: Store) -> None:
    total, workers, batch = 2_000, 8, 37
    ids = {f"t{i:04d}" for i in range(total)}
    tasks = [make_task("q" if i % 2 else "r", f"t{i:04d}", priority=i % 5, run_at=ts(i % 7)) for i in range(total)]
    for start in range(0, total, 500):
        results = await store.insert_tasks(tasks[start : start + 500])
        assert all(isinstance(r, Task) for r in results)

    async def worker(n: int) -> list[Task]:
        got: list[Task] = []
        while batch_claimed := await store.claim_tasks(["q", "r"], ts(10), batch, claim_as(f"w{n}", ts(10))):
            got.extend(batch_claimed)
        return got

    per_worker = await asyncio.gather(*(worker(n) for n in range(workers)))
    claimed = [(t.queue, t.id) for got in per_worker for t in got]
    assert len(claimed) == total
    assert {task_id for _, task_id in claimed} == ids
    for n, got in enumerate(per_worker):
        for task in got[:: max(1, len(got) // 5)]:
            stored = await store.get_task(task.queue, task.id)
            assert stored.last_claimed is not None
            assert stored.last_claimed.worker_id == f"w{n}"


# Timeouts


async def test_timed_out_tasks_oldest_deadline_first(store: Store) -> None:
    await store.insert_tasks(
        [
            make_task("q", "late", processing_timeout=timedelta(seconds=50)).claimed("w", ts(0), "c1"),
            make_task("q", "early", processing_timeout=timedelta(seconds=10)).claimed("w", ts(0), "c1"),
            make_task("q", "exact", processing_timeout=timedelta(seconds=30)).claimed("w", ts(0), "c1"),
            make_task("q", "not-yet", processing_timeout=timedelta(seconds=31)).claimed("w", ts(0), "c1"),
            make_task("q", "queued"),
            finished(make_task("q", "done"), ts(0)),
        ]
    )
    assert await store.timed_out_tasks(ts(30), 10) == [
        await store.get_task("q", "early"),
        await store.get_task("q", "exact"),
    ]
    assert [t.id for t in await store.timed_out_tasks(ts(100), 2)] == ["early", "exact"]
    assert [t.id for t in await store.timed_out_tasks(ts(100), 10)] == ["early", "exact", "not-yet", "late"]


async def test_a_reported_task_times_out_later(store: Store) -> None:
    inserted = await store.insert_task(make_task("q", "a", processing_timeout=timedelta(seconds=10)))
    claimed = await store.update_task(inserted.claimed("w", ts(0), "c1"))
    assert [t.id for t in await store.timed_out_tasks(ts(10), 10)] == ["a"]
    await store.update_task(claimed.reported("w", None, ts(5)))
    assert await store.timed_out_tasks(ts(10), 10) == []
    assert [t.id for t in await store.timed_out_tasks(ts(15), 10)] == ["a"]


# Archiving


async def test_archive_moves_only_old_finished_tasks(store: Store) -> None:
    await store.insert_tasks(
        [
            finished(make_task("q", "old-done"), ts(10)),
            finished(make_task("q", "old-dead", retry_times=0), ts(20), dead=True),
            finished(make_task("q", "new-done"), ts(100)),
            make_task("q", "old-queued", at=ts(0)),
            make_task("q", "old-claimed", at=ts(0)).claimed("w", ts(1), "c1"),
        ]
    )
    assert await store.archive_finished(ts(100), 10) == 2
    assert await store.archive_finished(ts(100), 10) == 0
    # Archived tasks are still found by id, unchanged.
    old_done = await store.get_task("q", "old-done")
    assert old_done.state is TaskState.DONE
    assert (await store.get_task("q", "old-dead")).state is TaskState.DEAD
    page = await store.list_tasks(TaskFilter(), 100, None)
    assert {t.id for t in page.tasks} == {"new-done", "old-queued", "old-claimed"}
    [counts] = await store.queue_counts()
    assert _nonzero(counts.counts) == {TaskState.DONE: 1, TaskState.QUEUED: 1, TaskState.CLAIMED: 1}


async def test_archive_respects_limit_oldest_first(store: Store) -> None:
    await store.insert_tasks([finished(make_task("q", f"t{i}"), ts(i)) for i in range(5)])
    assert await store.archive_finished(ts(100), 2) == 2
    page = await store.list_tasks(TaskFilter(), 100, None)
    assert {t.id for t in page.tasks} == {"t2", "t3", "t4"}
    assert await store.archive_finished(ts(100), 0) == 0
    assert await store.archive_finished(ts(100), 10) == 3


# Outstanding tasks of a recurring task


async def test_count_outstanding_is_exact_right_after_insert(store: Store) -> None:
    assert await store.count_outstanding("rec") == 0
    await store.insert_task(make_task("q", "r1", recurring_task_id="rec"))
    assert await store.count_outstanding("rec") == 1
    await store.insert_tasks(
        [
            make_task("q", "r2", recurring_task_id="rec").claimed("w", ts(0), "c1"),
            make_task("q", "r3", recurring_task_id="rec", retry_times=5)
            .claimed("w", ts(0), "c1")
            .failed("w", None, ts(0), BACKOFF),
            finished(make_task("q", "r4", recurring_task_id="rec"), ts(0)),
            finished(make_task("q", "r5", recurring_task_id="rec", retry_times=0), ts(0), dead=True),
            make_task("q", "other", recurring_task_id="other-rec"),
            make_task("q", "plain"),
        ]
    )
    assert await store.count_outstanding("rec") == 3
    r1 = await store.get_task("q", "r1")
    await store.update_task(finished(r1, ts(1)))
    assert await store.count_outstanding("rec") == 2
    assert await store.count_outstanding("other-rec") == 1


# Listing and counts


async def _seed_for_listing(store: Store) -> list[Task]:
    tasks: list[Task] = []
    for i in range(40):
        # Several tasks share a creation time, so ties must be broken consistently across pages.
        task = make_task(
            "a" if i % 3 else "b",
            f"t{i:02d}",
            at=ts(i // 4),
            kind="even" if i % 2 == 0 else "odd",
            recurring_task_id="rec" if i % 5 == 0 else None,
        )
        if i % 4 == 1:
            task = task.claimed("w", ts(50), "c1")
        elif i % 4 == 2:
            task = finished(task, ts(50))
        tasks.append(task)
    results = await store.insert_tasks(tasks)
    return [r for r in results if isinstance(r, Task)]


async def _all_pages(store: Store, flt: TaskFilter, limit: int) -> list[Task]:
    seen: list[Task] = []
    cursor: str | None = None
    for _ in range(100):
        page = await store.list_tasks(flt, limit, cursor)
        assert len(page.tasks) <= limit
        seen.extend(page.tasks)
        if page.next_cursor is None:
            return seen
        assert page.tasks, "a page with a next cursor must not be empty"
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize(
    "flt",
    [
        TaskFilter(),
        TaskFilter(queue="a"),
        TaskFilter(queue="b"),
        TaskFilter(states=frozenset({TaskState.QUEUED})),
        TaskFilter(states=frozenset({TaskState.CLAIMED, TaskState.DONE})),
        TaskFilter(kind="even"),
        TaskFilter(recurring_task_id="rec"),
        TaskFilter(queue="a", states=frozenset({TaskState.QUEUED}), kind="odd"),
        TaskFilter(queue="nope"),
    ],
)
@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_list_filters_and_paginates_newest_first(store: Store, flt: TaskFilter, limit: int) -> None:
    tasks = await _seed_for_listing(store)
    expected = {
        (t.queue, t.id)
        for t in tasks
        if (flt.queue is None or t.queue == flt.queue)
        and (not flt.states or t.state in flt.states)
        and (flt.kind is None or t.kind == flt.kind)
        and (flt.recurring_task_id is None or t.recurring_task_id == flt.recurring_task_id)
    }
    seen = await _all_pages(store, flt, limit)
    keys = [(t.queue, t.id) for t in seen]
    assert len(keys) == len(set(keys)), "a task appeared on two pages"
    assert set(keys) == expected
    created = [t.metadata.created_at for t in seen]
    assert created == sorted(created, reverse=True)


async def test_list_returns_stored_tasks(store: Store) -> None:
    inserted = await store.insert_task(make_task("q", "a"))
    page = await store.list_tasks(TaskFilter(), 10, None)
    assert page.tasks == [inserted]
    assert page.next_cursor is None


async def test_list_rejects_a_bad_cursor(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    for bad in ["not a cursor!", "AAAA", "eyJ4IjoxfQ", ""]:
        with pytest.raises(InvalidInput) as info:
            await store.list_tasks(TaskFilter(), 10, bad)
        assert [p.field for p in info.value.problems] == ["cursor"]


async def test_queue_counts(store: Store) -> None:
    assert await store.queue_counts() == []
    await store.insert_tasks(
        [
            make_task("a", "1"),
            make_task("a", "2"),
            make_task("a", "3").claimed("w", ts(0), "c1"),
            finished(make_task("a", "4"), ts(0)),
            finished(make_task("b", "1", retry_times=0), ts(0), dead=True),
            make_task("b", "2", retry_times=3).claimed("w", ts(0), "c1").failed("w", None, ts(0), BACKOFF),
        ]
    )
    counts = {c.queue: _nonzero(c.counts) for c in await store.queue_counts()}
    assert counts == {
        "a": {TaskState.QUEUED: 2, TaskState.CLAIMED: 1, TaskState.DONE: 1},
        "b": {TaskState.DEAD: 1, TaskState.FAILED: 1},
    }


def _nonzero(counts: dict[TaskState, int]) -> dict[TaskState, int]:
    # Backends may or may not report states with no tasks.
    return {state: n for state, n in counts.items() if n}


async def test_queue_counts_give_the_earliest_run_at_of_queued_and_failed_tasks(store: Store) -> None:
    await store.insert_tasks(
        [
            make_task("a", "later", run_at=ts(50)),
            make_task("a", "early", run_at=ts(10), at=ts(0)),
            # Claimed, done and dead tasks are not waiting, whatever their run_at.
            make_task("a", "claimed", run_at=ts(1)).claimed("w", ts(2), "c1"),
            finished(make_task("a", "done", run_at=ts(1)), ts(2)),
            make_task("b", "retry", retry_times=3, run_at=ts(1))
            .claimed("w", ts(2), "c1")
            .failed("w", None, ts(3), BACKOFF),
            make_task("b", "queued", run_at=ts(3600)),
            finished(make_task("c", "dead", retry_times=0, run_at=ts(1)), ts(2), dead=True),
            make_task("d", "claimed", run_at=ts(1)).claimed("w", ts(2), "c1"),
        ]
    )
    retry = await store.get_task("b", "retry")
    earliest = {c.queue: c.earliest_run_at for c in await store.queue_counts()}
    assert earliest == {"a": ts(10), "b": retry.run_at, "c": None, "d": None}
    assert retry.run_at < ts(3600)


async def test_queue_counts_earliest_run_at_follows_claims(store: Store) -> None:
    await store.insert_tasks([make_task("q", "1", run_at=ts(1)), make_task("q", "2", run_at=ts(2))])
    [claimed] = await store.claim_tasks(["q"], ts(5), 1, claim_as("w", ts(5)))
    assert claimed.id == "1"
    [counts] = await store.queue_counts()
    assert counts.earliest_run_at == ts(2)
    await store.claim_tasks(["q"], ts(5), 1, claim_as("w", ts(5)))
    [counts] = await store.queue_counts()
    assert counts.earliest_run_at is None
