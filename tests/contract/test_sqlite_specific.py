"""SQLite-only checks: the hot queries use their indexes, and the file is set up as intended."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasques.domain.errors import QuotaExceeded
from tasques.domain.http_target import TaskTarget
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.store.base import QueueProbe, TaskChange, TaskFilter
from tasques.store.sqlite import SqliteStore, queries
from tasques.store.sqlite.schema import SCHEMA_VERSION
from tests.contract import claim_as, make_task, ts
from tests.contract.raw import corrupt, unparseable_duration


@pytest.fixture
async def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "tasques.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    return path


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path)
    yield conn
    conn.close()


def _plan(conn: sqlite3.Connection, sql: str, params: Any) -> str:
    return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def _assert_indexed(plan: str, index: str) -> None:
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert "SCAN tasks\n" not in f"{plan}\n", plan
    assert "TEMP B-TREE" not in plan, plan


# (query, params, the index it must use). Every access to `tasks` in the plan must be a seek in that index.
_HOT = [
    (queries.CLAIM_SQL, ("p", "q", "pull", 0, 10), "tasks_claimable_by_target"),
    (queries.PROBE_SQL, ("p", "q", "pull", 0, 10), "tasks_claimable_by_target"),
    (queries.PROJECTS_SQL, (), "tasks_claimable_by_target"),
    (queries.PROBE_ALL_SQL, ("p", "p", "pull", 0), "tasks_claimable_by_target"),
    (queries.probe_queues_sql(2), ("p", "a", "p", "b", "pull", 0), "tasks_claimable_by_target"),
    (queries.TIMED_OUT_SQL, (0, 10), "tasks_timeouts"),
    (queries.CLAIMED_SQL, ("p",), "tasks_claimed"),
    (queries.FINISHED_SQL, (0, 10), "tasks_finished_v2"),
    (queries.OUTSTANDING_SQL, ("p", "rec"), "tasks_outstanding_v2"),
    (queries.UNFINISHED_SQL, ("p",), "tasks_unfinished"),
    (queries.COUNTS_SQL, ("p",), "tasks_counts"),
    (queries.EARLIEST_SQL, ("p", "q"), "tasks_earliest"),
]


@pytest.mark.parametrize(("sql", "params", "index"), _HOT)
def test_hot_queries_seek_their_index(conn: sqlite3.Connection, sql: str, params: Any, index: str) -> None:
    plan = _plan(conn, sql, params)
    _assert_indexed(plan, index)
    on_tasks = [line for line in plan.splitlines() if line.startswith(("SEARCH tasks", "SCAN tasks"))]
    assert on_tasks, plan
    for line in on_tasks:
        assert line.startswith(
            (f"SEARCH tasks USING INDEX {index} (", f"SEARCH tasks USING COVERING INDEX {index} (")
        ), plan
        assert "(project" in line or index in {"tasks_timeouts", "tasks_finished_v2"}, plan  # per project: a seek on it


def test_counts_of_every_project_walk_the_index_not_the_table(conn: sqlite3.Connection) -> None:
    plan = _plan(conn, queries.COUNTS_ALL_SQL, ())
    assert plan == "SCAN tasks USING COVERING INDEX tasks_counts", plan


@pytest.mark.parametrize(
    ("flt", "after", "index"),
    [
        (TaskFilter(), None, "tasks_listing"),
        (TaskFilter(), (0, "q", "id"), "tasks_listing"),
        (TaskFilter(states=frozenset({TaskState.DEAD})), (0, "q", "id"), "tasks_listing"),
        (TaskFilter(project="alpha", kind="k"), None, "tasks_listing"),
        (TaskFilter(queue="q"), None, "tasks_queue_listing"),
        (TaskFilter(queue="q"), (0, "q", "id"), "tasks_queue_listing"),
        (TaskFilter(queue="q", kind="k"), (0, "r", "id"), "tasks_queue_listing"),
    ],
)
def test_list_query_seeks_a_listing_index_of_its_project(
    conn: sqlite3.Connection, flt: TaskFilter, after: tuple[int, str, str] | None, index: str
) -> None:
    sql, params = queries.list_query(flt, 10, after)
    plan = _plan(conn, sql, params)
    _assert_indexed(plan, index)
    assert plan.startswith(f"SEARCH tasks USING INDEX {index} (project=?"), plan


def test_file_is_wal_with_schema_version(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_data_survives_reopen(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await store.open()
    await store.open()  # idempotent
    inserted = await store.insert_task(make_task("q", "a"))
    await store.close()
    reopened = SqliteStore(str(db_path))
    await reopened.open()
    try:
        assert await reopened.get_task("q", "a") == inserted
    finally:
        await reopened.close()


async def test_refuses_a_newer_schema(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(str(db_path))
    with pytest.raises(RuntimeError, match="newer"):
        await store.open()
    await store.close()


async def test_version_is_a_counter_from_one(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        inserted = await store.insert_task(make_task("q", "a"))
        assert (inserted.metadata.version.seq_num, inserted.metadata.version.primary_term) == (1, 1)
        updated = await store.update_task(inserted.claimed("w", ts(1), "c1"))
        assert updated.metadata.version.seq_num == 2
    finally:
        await store.close()


async def test_a_cursor_from_another_queue_continues_at_its_position(db_path: Path) -> None:
    # The cursor keys on (created_at, queue, id); with a queue filter the queue part still orders correctly.
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        await store.insert_tasks([make_task(q, f"{q}{i}", at=ts(i)) for q in ("a", "b", "c") for i in range(3)])
        page = await store.list_tasks(TaskFilter(), 4, None)  # c2 b2 a2 c1
        assert [t.id for t in page.tasks] == ["c2", "b2", "a2", "c1"]
        assert page.next_cursor is not None
        rest_b = await store.list_tasks(TaskFilter(queue="b"), 10, page.next_cursor)
        assert [t.id for t in rest_b.tasks] == ["b1", "b0"]
        rest_c = await store.list_tasks(TaskFilter(queue="c"), 10, page.next_cursor)
        assert [t.id for t in rest_c.tasks] == ["c0"]
    finally:
        await store.close()


async def test_naive_datetimes_are_refused(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        with pytest.raises(ValueError, match="naive"):
            await store.timed_out_tasks(ts(0).replace(tzinfo=None), 10)
    finally:
        await store.close()


async def test_a_quota_holds_with_two_stores_racing_on_one_file(db_path: Path) -> None:
    # Two servers' stores on one file: each count is taken in the write transaction that inserts.
    stores = [SqliteStore(str(db_path)) for _ in range(2)]
    for s in stores:
        await s.open()
    try:

        async def fill(s: SqliteStore, n: int) -> int:
            accepted = 0
            for i in range(10):
                try:
                    await s.insert_tasks([make_task("q", f"{n}-{i}-{j}", project="alpha") for j in range(3)], quota=20)
                    accepted += 3
                except QuotaExceeded:
                    pass
            return accepted

        accepted = await asyncio.gather(*(fill(s, n) for n, s in enumerate(stores)))
        assert sum(accepted) == 18  # six batches of three fit in 20, a seventh would not
        assert await stores[0].count_project_outstanding("alpha") == 18
    finally:
        for s in stores:
            await s.close()


async def test_a_quota_needs_one_project(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        with pytest.raises(ValueError, match="one project"):
            await store.insert_tasks([make_task("q", "a", project="alpha"), make_task("q", "b")], quota=10)
        assert await store.count_project_outstanding("alpha") == 0
        # Without a quota, one call may span projects.
        assert len(await store.insert_tasks([make_task("q", "a", project="alpha"), make_task("q", "b")])) == 2
    finally:
        await store.close()


async def test_an_unreadable_task_hides_nothing_in_another_project(db_path: Path) -> None:
    # Unreadable tasks are remembered by (project, queue, id): the same key in another project is still claimable.
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        await store.insert_tasks([make_task("q", "t", project=p) for p in ("alpha", "beta")])
        await corrupt(store, "tasks", ("q", "t"), unparseable_duration, project="alpha")
        assert await store.claim_tasks(["q"], ts(1), 5, claim_as("w", ts(1)), project="alpha") == []
        probe = QueueProbe(TaskTarget.PULL, frozenset({"q"}), project=None)
        assert await store.claimable_queues(ts(1), [probe]) == {("beta", "q", TaskTarget.PULL)}
        [claimed] = await store.claim_tasks(["q"], ts(1), 5, claim_as("w", ts(1)), project=None)
        assert (claimed.project, claimed.id) == ("beta", "t")
    finally:
        await store.close()


def _edge_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM task_deps").fetchone()[0])
    finally:
        conn.close()


async def test_a_released_dependents_edges_go_at_the_archive_pass_or_at_close(tmp_path: Path) -> None:
    path = tmp_path / "edges.db"
    store = SqliteStore(str(path))
    await store.open()
    deps = [TaskKey(queue="f", id=f"f{i}") for i in range(3)]

    def waiting(task_id: str) -> Task:
        task = make_task("j", task_id)
        return task.model_copy(update={"state": TaskState.WAITING, "depends_on": deps})

    await store.insert_tasks([waiting("a"), waiting("b")])
    assert _edge_count(path) == 6
    [released] = await store.modify_tasks([TaskChange("j", "a", lambda t: t.released(ts(1)))])
    assert not isinstance(released, Exception)
    # Not in the release's transaction: stale until the next archive pass, and never matched meanwhile.
    assert _edge_count(path) == 6
    assert [t.id for t in await store.find_dependents(deps[:1])] == ["b"]
    await store.archive_finished(ts(0), 10)
    assert _edge_count(path) == 3
    await store.modify_tasks([TaskChange("j", "b", lambda t: t.cancelled(ts(2), "dependency f/f0 is dead"))])
    await store.close()  # the stale edges of a close go with it
    assert _edge_count(path) == 0
