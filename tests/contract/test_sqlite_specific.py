"""SQLite-only checks: the hot queries use their indexes, and the file is set up as intended."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasques.domain.task import TaskState
from tasques.store.base import TaskFilter
from tasques.store.sqlite import SqliteStore
from tasques.store.sqlite import store as sqlite_store
from tasques.store.sqlite.schema import SCHEMA_VERSION
from tests.contract import make_task, ts


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


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (sqlite_store.CLAIM_SQL, ("q", "pull", 0, 10), "tasks_claimable_by_target"),
        (sqlite_store.TIMED_OUT_SQL, (0, 10), "tasks_timeouts"),
        (sqlite_store.FINISHED_SQL, (0, 10), "tasks_finished_v2"),
        (sqlite_store.OUTSTANDING_SQL, ("rec",), "tasks_outstanding_v2"),
        (sqlite_store.COUNTS_SQL, (), "tasks_counts"),
        (sqlite_store.EARLIEST_SQL, ("q",), "tasks_earliest"),
    ],
)
def test_hot_queries_use_their_index(conn: sqlite3.Connection, sql: str, params: Any, index: str) -> None:
    plan = _plan(conn, sql, params)
    _assert_indexed(plan, index)
    assert "TEMP B-TREE" not in plan, plan  # read in the index's order, never sorted
    if index != "tasks_counts":
        assert plan.startswith("SEARCH"), plan


@pytest.mark.parametrize(
    ("flt", "after", "index"),
    [
        (TaskFilter(), None, "tasks_listing"),
        (TaskFilter(), (0, "q", "id"), "tasks_listing"),
        (TaskFilter(states=frozenset({TaskState.DEAD})), (0, "q", "id"), "tasks_listing"),
        (TaskFilter(queue="q"), None, "tasks_queue_listing"),
        (TaskFilter(queue="q"), (0, "q", "id"), "tasks_queue_listing"),
        (TaskFilter(queue="q", kind="k"), (0, "r", "id"), "tasks_queue_listing"),
    ],
)
def test_list_query_uses_a_listing_index(
    conn: sqlite3.Connection, flt: TaskFilter, after: tuple[int, str, str] | None, index: str
) -> None:
    sql, params = sqlite_store._list_query(flt, 10, after)
    _assert_indexed(_plan(conn, sql, params), index)


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


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    """Schema 1 (before HTTP tasks): the new column and indexes appear, and existing tasks are pull tasks."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for statement in _V1_DDL:
        conn.execute(statement)
    task = make_task(id="old")
    conn.execute(
        "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, 1, ?)",
        ("q", "old", "queued", 0, 0, "k", 0, 0, task.model_dump_json()),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    async def run() -> None:
        store = SqliteStore(str(path))
        await store.open()
        try:
            claimed = await store.claim_tasks(["q"], ts(1), 10, lambda t: t.claimed("w", ts(1), "c1"))
            assert [t.id for t in claimed] == ["old"]
            assert await store.list_queue_settings() == []
        finally:
            await store.close()

    asyncio.run(run())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchall()[0][0] == SCHEMA_VERSION
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"tasks_claimable_by_target", "tasks_finished_v2", "tasks_outstanding_v2"} <= indexes
        assert not {"tasks_claimable", "tasks_finished", "tasks_outstanding"} & indexes
        assert conn.execute("SELECT target FROM tasks").fetchall() == [("pull",)]
    finally:
        conn.close()


_V1_COLUMNS = """queue TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
    run_at INTEGER NOT NULL, times_out_at INTEGER, kind TEXT NOT NULL, recurring_task_id TEXT,
    created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL"""
_V1_DDL = (
    f"CREATE TABLE tasks ({_V1_COLUMNS}, PRIMARY KEY (queue, id))",
    "CREATE INDEX tasks_claimable ON tasks (queue, priority DESC, run_at) WHERE state IN ('queued', 'failed')",
    "CREATE INDEX tasks_finished ON tasks (modified_at) WHERE state IN ('done', 'dead')",
    "CREATE INDEX tasks_outstanding ON tasks (recurring_task_id) "
    "WHERE recurring_task_id IS NOT NULL AND state NOT IN ('done', 'dead')",
    f"CREATE TABLE archived_tasks ({_V1_COLUMNS}, archived_at INTEGER NOT NULL, PRIMARY KEY (queue, id))",
    "CREATE TABLE recurring_tasks (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, seq INTEGER NOT NULL)",
)
