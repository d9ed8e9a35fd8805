"""SQLite schema migrations: a file written by an older server opens in this one with every record intact.

The older schemas are frozen here, as those servers wrote them, not taken from the package.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tasques.domain.errors import AlreadyExists
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task, TaskState, Version
from tasques.domain.timeline import Attempt
from tasques.store.base import TaskFilter
from tasques.store.sqlite import SqliteStore
from tasques.store.sqlite.schema import INDEXES, SCHEMA_VERSION, TABLES
from tests.contract import T0, claim_as, finished, make_recurring, make_task, ts


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _at_seq(record: Any, seq: int) -> Any:
    return record.model_copy(
        update={"metadata": record.metadata.model_copy(update={"version": Version(seq_num=seq, primary_term=1)})}
    )


def _v2_body(record: Any) -> str:
    """The JSON a version-2 server stored: the same record, without a project."""
    body: str = record.model_dump_json(exclude={"project"})
    return body


def _v2_task_row(task: Task) -> tuple[Any, ...]:
    claim = task.last_claimed
    times_out = _micros(claim.times_out_at) if claim is not None and task.state is TaskState.CLAIMED else None
    created, modified = _micros(task.metadata.created_at), _micros(task.metadata.modified_at)
    return (
        *(task.queue, task.id, task.state.value, task.priority, _micros(task.run_at), times_out, task.kind),
        *(task.recurring_task_id, created, modified, task.metadata.version.seq_num, _v2_body(task), task.target.value),
    )


def _open_and(path: Path, check: Any) -> None:
    async def run() -> None:
        store = SqliteStore(str(path))
        await store.open()
        try:
            await check(store)
        finally:
            await store.close()

    asyncio.run(run())


def _schema(path: Path) -> tuple[int, set[str], set[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchall()[0][0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
        return version, tables, indexes
    finally:
        conn.close()


def _index_names() -> set[str]:
    return {statement.split()[5] for statement in INDEXES}


def test_a_version_2_database_moves_into_the_default_project(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    queued = _at_seq(make_task("q", "old", priority=3), 7)
    claimed = _at_seq(make_task("q", "busy", processing_timeout=timedelta(seconds=5)).claimed("w", ts(1), "c1"), 2)
    archived = _at_seq(finished(make_task("q", "gone"), ts(1)), 3)
    recurring = _at_seq(make_recurring("r"), 4)
    settings = _at_seq(QueueSettings.default("q", T0).changed(T0, paused=True), 5)
    attempt = Attempt(
        queue="q", task_id="old", attempt=1, worker_id="d", started_at=ts(1), ended_at=ts(2), duration_ms=1.0,
        success=True,
    )  # fmt: skip
    conn = sqlite3.connect(path)
    for statement in _V2_DDL:
        conn.execute(statement)
    conn.executemany(f"INSERT INTO tasks VALUES ({', '.join('?' * 13)})", [_v2_task_row(queued), _v2_task_row(claimed)])
    conn.execute(f"INSERT INTO archived_tasks VALUES ({', '.join('?' * 14)})", (*_v2_task_row(archived), 99))
    conn.execute("INSERT INTO recurring_tasks VALUES ('r', 4, ?)", (_v2_body(recurring),))
    conn.execute("INSERT INTO queue_settings VALUES ('q', 5, ?)", (_v2_body(settings),))
    conn.execute("INSERT INTO attempts VALUES ('q', 'old', 0, 1, ?, ?)", (_micros(attempt.ended_at), _v2_body(attempt)))
    conn.execute("INSERT INTO locks VALUES ('leader', 'server-1', ?, 1)", (_micros(ts(3600)),))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    async def check(store: SqliteStore) -> None:
        # Every record is in the default project, at the version it had.
        got = await store.get_task("q", "old", project=DEFAULT_PROJECT)
        assert (got.project, got.metadata.version.seq_num, got.priority) == (DEFAULT_PROJECT, 7, 3)
        gone = await store.get_task("q", "gone")
        assert (gone.project, gone.state, gone.metadata.version.seq_num) == (DEFAULT_PROJECT, TaskState.DONE, 3)
        assert isinstance((await store.insert_tasks([make_task("q", "gone")]))[0], AlreadyExists)
        listed = await store.list_tasks(TaskFilter(queue="q"), 10, None)
        assert sorted(t.id for t in listed.tasks) == ["busy", "old"]
        assert [(c.project, c.queue) for c in await store.queue_counts()] == [(DEFAULT_PROJECT, "q")]
        assert await store.count_project_outstanding(DEFAULT_PROJECT) == 2
        # Claimable, and writable at the version it was read at.
        [won] = await store.claim_tasks(["q"], ts(10), 10, claim_as("w2", ts(10)))
        assert (won.id, won.metadata.version.seq_num) == ("old", 8)
        assert [t.id for t in await store.timed_out_tasks(ts(10), 10)] == ["busy"]
        assert [t.id for t in await store.find_claimed_by("w", ts(1))] == ["busy"]
        rec = await store.get_recurring("r")
        assert (rec.project, rec.metadata.version.seq_num) == (DEFAULT_PROJECT, 4)
        assert (await store.update_recurring(rec)).metadata.version.seq_num == 5
        assert [r.id for r in await store.list_recurring(project=DEFAULT_PROJECT)] == ["r"]
        qs = await store.get_queue_settings("q")
        assert (qs.project, qs.paused, qs.metadata.version.seq_num) == (DEFAULT_PROJECT, True, 5)
        assert (await store.update_queue_settings(qs.changed(ts(1), paused=False))).metadata.version.seq_num == 6
        assert await store.list_attempts("q", "old") == [attempt]
        # The lock row is kept: another holder cannot take a live lease.
        assert not await store.acquire_lock("leader", "server-2", ts(0), ts(60))

    _open_and(path, check)
    version, tables, indexes = _schema(path)
    assert version == SCHEMA_VERSION
    assert tables == set(TABLES)  # no table left behind by the rebuild
    assert indexes == _index_names()  # the rebuilt tables' indexes are the new ones
    _open_and(path, _reopens_unchanged)


async def _reopens_unchanged(store: SqliteStore) -> None:
    assert (await store.get_task("q", "old")).metadata.version.seq_num == 8


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    """Schema 1 (before HTTP tasks): through version 2 into version 3; existing tasks are pull tasks of default."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for statement in _V1_DDL:
        conn.execute(statement)
    task = make_task(id="old")
    conn.execute(
        "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, 1, ?)",
        ("q", "old", "queued", 0, 0, "k", 0, 0, _v2_body(task)),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    async def check(store: SqliteStore) -> None:
        claimed = await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)))
        assert [(t.project, t.id) for t in claimed] == [(DEFAULT_PROJECT, "old")]
        assert await store.list_queue_settings() == []

    _open_and(path, check)
    version, tables, indexes = _schema(path)
    assert version == SCHEMA_VERSION
    assert tables == set(TABLES)
    assert indexes == _index_names()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT project, target FROM tasks").fetchall() == [(DEFAULT_PROJECT, "pull")]
    finally:
        conn.close()


# Frozen: the schema version 2 servers created (tasques/store/sqlite/schema.py before projects).
_V2_TASK_COLUMNS = """
    queue TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL, run_at INTEGER NOT NULL,
    times_out_at INTEGER, kind TEXT NOT NULL, recurring_task_id TEXT, created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, target TEXT NOT NULL DEFAULT 'pull'"""
_V2_DDL = (
    f"CREATE TABLE IF NOT EXISTS tasks ({_V2_TASK_COLUMNS},\n    PRIMARY KEY (queue, id))",
    "CREATE INDEX IF NOT EXISTS tasks_claimable_by_target ON tasks (queue, target, priority DESC, run_at) "
    "WHERE state IN ('queued', 'failed')",
    "CREATE INDEX IF NOT EXISTS tasks_timeouts ON tasks (times_out_at) WHERE state = 'claimed'",
    "CREATE INDEX IF NOT EXISTS tasks_finished_v2 ON tasks (modified_at) WHERE state IN ('done', 'dead', 'cancelled')",
    "CREATE INDEX IF NOT EXISTS tasks_outstanding_v2 ON tasks (recurring_task_id) "
    "WHERE recurring_task_id IS NOT NULL AND state NOT IN ('done', 'dead', 'cancelled')",
    "CREATE INDEX IF NOT EXISTS tasks_listing ON tasks (created_at, queue, id)",
    "CREATE INDEX IF NOT EXISTS tasks_queue_listing ON tasks (queue, created_at, id)",
    "CREATE INDEX IF NOT EXISTS tasks_counts ON tasks (queue, state)",
    "CREATE INDEX IF NOT EXISTS tasks_earliest ON tasks (queue, run_at) WHERE state IN ('failed', 'queued')",
    f"CREATE TABLE IF NOT EXISTS archived_tasks ({_V2_TASK_COLUMNS},\n"
    "    archived_at INTEGER NOT NULL,\n    PRIMARY KEY (queue, id))",
    "CREATE TABLE IF NOT EXISTS recurring_tasks (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_settings (queue TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attempts (queue TEXT NOT NULL, task_id TEXT NOT NULL, run INTEGER NOT NULL, "
    "attempt INTEGER NOT NULL, ended_at INTEGER NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (queue, task_id, run, attempt))",
    "CREATE INDEX IF NOT EXISTS attempts_ended ON attempts (ended_at)",
    "CREATE TABLE IF NOT EXISTS locks ("
    "name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, seq INTEGER NOT NULL)",
)

# Frozen: schema version 1 (before HTTP tasks).
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
