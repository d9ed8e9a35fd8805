"""The SQLite store: one server process, one database file.

`SqliteStore` is the `Store`. Its layers, each a class on top of the one before: `connection.py` (the connection
threads, transactions, migration on open), `records.py` (recurring tasks, queue settings, the timeline, the leader
lock), `admin.py` (projects, tokens), `claims.py` (claims, the probe, timeouts), and here the other task methods;
beside them, `workers.py` (the worker registry) and `batches.py` (batch records and counts).
The SQL of the task queries is in `queries.py`, row conversion in `rows.py`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    StoreUnavailable,
    TasquesError,
    VersionConflict,
)
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskState
from tasques.store.base import GeneratedKeys, QueueCounts, TaskChange, TaskFilter, TaskPage, check_distinct
from tasques.store.cursor import decode_cursor, encode_cursor
from tasques.store.sealed_records import load_json
from tasques.store.sealing import Sealer
from tasques.store.sqlite.batches import SqliteBatches
from tasques.store.sqlite.claims import SqliteClaims
from tasques.store.sqlite.connection import _connect as _connect  # re-exported: bench/raw_limits.py imports it here
from tasques.store.sqlite.dependencies import SqliteDependencies
from tasques.store.sqlite.queries import (
    COUNTS_ALL_SQL,
    COUNTS_SQL,
    EARLIEST_SQL,
    FINISHED_SQL,
    OUTSTANDING_SQL,
    UNFINISHED_SQL,
    list_query,
)
from tasques.store.sqlite.queue_ops import SqliteQueueOps
from tasques.store.sqlite.rows import _ARCHIVE_SQL, _check_identity, _from_micros, _insert_task, _micros, _update_task
from tasques.store.sqlite.workers import SqliteWorkers

_KEY = "project = ? AND queue = ? AND id = ?"


class SqliteStore(SqliteClaims, SqliteWorkers, SqliteBatches, SqliteQueueOps, SqliteDependencies):
    """`Store` on one SQLite file (see `tasques.store.base` for the contract)."""

    kind: str = "sqlite"

    @property
    def search_delay(self) -> timedelta:
        return timedelta(0)  # one process: every write goes through this instance

    # Tasks

    # `generated` is ignored: the archived-id check is a primary-key lookup in the same transaction, next to free.
    async def insert_task(self, task: Task, *, generated: GeneratedKeys = frozenset()) -> Task:
        stored = await self._write(lambda conn: _insert_task(conn, task, self.sealer))
        if isinstance(stored, AlreadyExists):
            raise stored
        return stored

    async def insert_tasks(
        self, tasks: Sequence[Task], *, generated: GeneratedKeys = frozenset(), quota: int | None = None
    ) -> list[Task | AlreadyExists]:
        if not tasks:
            return []
        projects = {t.project for t in tasks}
        if quota is not None and len(projects) != 1:
            raise ValueError("insert_tasks with a quota needs tasks of one project")

        def run(conn: sqlite3.Connection) -> list[Task | AlreadyExists]:
            # Counted in the write transaction that inserts: no other writer can get in between.
            if quota is not None:
                (project,) = projects
                (outstanding,) = conn.execute(UNFINISHED_SQL, (project,)).fetchone()
                if outstanding + len(tasks) > quota:
                    raise QuotaExceeded(
                        f"project {project} has {outstanding} outstanding tasks: {len(tasks)} more would pass "
                        f"its quota of {quota}"
                    )
            return [_insert_task(conn, t, self.sealer) for t in tasks]

        return await self._write(run)

    async def get_task(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> Task:
        def run(conn: sqlite3.Connection) -> Task:
            key = (project, queue, task_id)
            rows = conn.execute(
                f"SELECT body FROM tasks WHERE {_KEY} UNION ALL SELECT body FROM archived_tasks WHERE {_KEY} LIMIT 1",
                (*key, *key),
            ).fetchall()
            if not rows:
                raise NotFound(f"no task {task_id} in queue {queue}")
            return load_json(Task, rows[0][0], self.sealer)

        return await self._read(run)

    async def update_task(self, task: Task) -> Task:
        stored = await self._write(lambda conn: _update_task(conn, task, self.sealer))
        if isinstance(stored, TasquesError):
            raise stored
        return stored

    async def update_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict]:
        if not tasks:
            return []

        def run(conn: sqlite3.Connection) -> list[Task | VersionConflict]:
            results: list[Task | VersionConflict] = []
            for task in tasks:
                stored = _update_task(conn, task, self.sealer)
                if isinstance(stored, NotFound):
                    # The protocol's slot type has no NotFound; a re-read by the caller will tell.
                    stored = VersionConflict(str(stored))
                results.append(stored)
            return results

        return await self._write(run)

    async def modify_tasks(self, changes: Sequence[TaskChange]) -> list[Task | Exception]:
        if not changes:
            return []
        check_distinct(changes)

        # Read and write in the one write transaction: nothing can get in between, so no slot ever conflicts.
        def run(conn: sqlite3.Connection) -> list[Task | Exception]:
            return [_modify_one(conn, c, self.sealer, self._left_waiting) for c in changes]

        return await self._write(run)

    async def ping(self, within: timedelta) -> None:
        try:
            async with asyncio.timeout(within.total_seconds()):
                await self._read(lambda conn: conn.execute("SELECT 1 FROM locks LIMIT 1").fetchall())
        except TimeoutError:
            raise StoreUnavailable(f"sqlite did not answer within {within.total_seconds():g}s") from None

    async def list_tasks(self, flt: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        if limit <= 0:
            raise InvalidInput("limit must be positive", [FieldProblem(field="limit", problem="must be at least 1")])
        after = decode_cursor(cursor) if cursor is not None else None
        sql, params = list_query(flt, limit + 1, after)

        def run(conn: sqlite3.Connection) -> TaskPage:
            rows = conn.execute(sql, params).fetchall()
            tasks = [load_json(Task, row[3], self.sealer) for row in rows[:limit]]
            next_cursor = encode_cursor(rows[limit - 1][:3]) if len(rows) > limit else None
            return TaskPage(tasks=tasks, next_cursor=next_cursor)

        return await self._read(run)

    async def queue_counts(self, *, project: str | None = None) -> list[QueueCounts]:
        def run(conn: sqlite3.Connection) -> list[QueueCounts]:
            by_queue: dict[tuple[str, str], dict[TaskState, int]] = {}
            rows = conn.execute(COUNTS_ALL_SQL) if project is None else conn.execute(COUNTS_SQL, (project,))
            for p, queue, state, count in rows.fetchall():
                by_queue.setdefault((p, queue), {})[TaskState(state)] = count
            out = []
            for (p, queue), counts in by_queue.items():
                earliest = None
                if counts.get(TaskState.QUEUED) or counts.get(TaskState.FAILED):
                    row = conn.execute(EARLIEST_SQL, (p, queue)).fetchone()
                    earliest = _from_micros(row[0]) if row is not None else None
                out.append(QueueCounts(queue=queue, project=p, counts=counts, earliest_run_at=earliest))
            return out

        return await self._read(run)

    async def count_outstanding(self, recurring_task_id: str, *, project: str = DEFAULT_PROJECT) -> int:
        rows = await self._read(lambda conn: conn.execute(OUTSTANDING_SQL, (project, recurring_task_id)).fetchall())
        return int(rows[0][0])

    async def count_project_outstanding(self, project: str) -> int:
        rows = await self._read(lambda conn: conn.execute(UNFINISHED_SQL, (project,)).fetchall())
        return int(rows[0][0])

    async def archive_finished(self, finished_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        before_us = _micros(finished_before)
        archived_at = _micros(datetime.now(UTC))

        def run(conn: sqlite3.Connection) -> int:
            self._drop_stale_edges(conn)
            rowids = [row[0] for row in conn.execute(FINISHED_SQL, (before_us, limit)).fetchall()]
            conn.executemany(_ARCHIVE_SQL, [(archived_at, rowid) for rowid in rowids])
            conn.executemany("DELETE FROM tasks WHERE rowid = ?", [(rowid,) for rowid in rowids])
            return len(rowids)

        return await self._write(run)


def _modify_one(
    conn: sqlite3.Connection,
    item: TaskChange,
    sealer: Sealer | None,
    changed_from: Callable[[sqlite3.Connection, Task, Task], None],
) -> Task | Exception:
    key = (item.project, item.queue, item.id)
    rows = conn.execute(f"SELECT body FROM tasks WHERE {_KEY}", key).fetchall()
    archived = not rows
    if archived:
        rows = conn.execute(f"SELECT body FROM archived_tasks WHERE {_KEY}", key).fetchall()
        if not rows:
            return NotFound(f"no task {item.id} in queue {item.queue}")
    try:
        task = load_json(Task, rows[0][0], sealer)
        changed = item.change(task)
        _check_identity(task, changed)
    except Exception as e:  # this slot's answer; the others go on
        return e
    if archived:
        return NotFound(f"no task {item.id} in queue {item.queue} (archived)")
    stored = _update_task(conn, changed, sealer)
    if isinstance(stored, Task):
        changed_from(conn, task, stored)
    return stored
