"""Replay and queue operations on SQLite: dead tasks by time of death, putting archived tasks back live,
conditional deletes, a queue's history purge, and its tasks finished since a time (in all, and per minute).

Each query seeks a partial index (`schema.py`); the purge deletes in bounded transactions, so a queue with a long
history never holds the writer for long.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task
from tasques.store.base import same_but_version
from tasques.store.sealed_records import load_json
from tasques.store.sqlite.connection import SqliteConnections, task_key
from tasques.store.sqlite.rows import _INSERT_TASK_SQL, _columns, _expected_seq, _from_micros, _micros, _versioned
from tasques.store.sqlite.schema import DEAD, FINISHED

_KEY = "project = ? AND queue = ? AND id = ?"
# Rows deleted per purge transaction.
PURGE_CHUNK = 5000

# Params: project, queue, since.
FINISHED_SINCE_SQL = (
    "SELECT count(*) FROM tasks INDEXED BY tasks_finished_by_queue "
    f"WHERE project = ? AND queue = ? AND {FINISHED} AND modified_at >= ?"
)
# The next queue of the project with finished tasks, after a name: a skip-scan of the same index, one seek a queue.
# Params: project, after.
NEXT_FINISHED_QUEUE_SQL = (
    "SELECT queue FROM tasks INDEXED BY tasks_finished_by_queue "
    f"WHERE project = ? AND {FINISHED} AND queue > ? ORDER BY queue LIMIT 1"
)
# One queue's finished tasks since a time, by minute (unix microseconds // MINUTE_US). Params: project, queue, since.
MINUTE_US = 60_000_000
FINISHED_BY_MINUTE_SQL = (
    f"SELECT modified_at / {MINUTE_US}, count(*) FROM tasks INDEXED BY tasks_finished_by_queue "
    f"WHERE project = ? AND queue = ? AND {FINISHED} AND modified_at >= ? GROUP BY 1"
)
# Params: project, queue, limit.
_PURGE_LIVE_SQL = (
    f"SELECT rowid FROM tasks INDEXED BY tasks_finished_by_queue WHERE project = ? AND queue = ? AND {FINISHED} LIMIT ?"
)
_PURGE_ARCHIVED_SQL = f"SELECT rowid FROM archived_tasks WHERE project = ? AND queue = ? AND {FINISHED} LIMIT ?"
# The queue's task ids with attempts, after a cursor. Params: project, queue, after, limit.
_ATTEMPT_IDS_SQL = (
    "SELECT DISTINCT task_id FROM attempts WHERE project = ? AND queue = ? AND task_id > ? ORDER BY task_id LIMIT ?"
)


def find_dead_sql(*, archived: bool, queue: bool, since: bool, until: bool, kind: bool) -> str:
    """Dead tasks of a project in order of death; params: project, [queue], [since], [until], [kind], limit.
    A seek in the partial index of dead tasks (of one queue when it is given); kind is filtered within it."""
    table = "archived_tasks" if archived else "tasks"
    index = ("archived_dead" if archived else "tasks_dead") + ("_by_queue" if queue else "")
    clauses = ["project = ?"]
    if queue:
        clauses.append("queue = ?")
    clauses.append(DEAD)
    if since:
        clauses.append("modified_at >= ?")
    if until:
        clauses.append("modified_at < ?")
    if kind:
        clauses.append("kind = ?")
    return (
        f"SELECT queue, id, body FROM {table} INDEXED BY {index} WHERE {' AND '.join(clauses)} "
        "ORDER BY modified_at, queue, id LIMIT ?"
    )


class SqliteQueueOps(SqliteConnections):
    """The `Store` methods of replay and queue operations."""

    async def find_dead(
        self,
        *,
        project: str,
        queue: str | None,
        kind: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        archived: bool,
    ) -> list[Task]:
        if limit <= 0:
            return []
        sql = find_dead_sql(
            archived=archived, queue=queue is not None, since=since is not None, until=until is not None,
            kind=kind is not None,
        )  # fmt: skip
        params: list[Any] = [project]
        if queue is not None:
            params.append(queue)
        if since is not None:
            params.append(_micros(since))
        if until is not None:
            params.append(_micros(until))
        if kind is not None:
            params.append(kind)
        params.append(limit)

        def run(conn: sqlite3.Connection) -> list[Task]:
            out = []
            for q, task_id, body in conn.execute(sql, params).fetchall():
                task = self._parse(Task, task_key(project, q, task_id), body)
                if task is not None:  # an unreadable one is skipped, as by every search
                    out.append(task)
            return out

        return await self._read(run)

    async def restore_archived(self, tasks: Sequence[Task]) -> list[Task | Exception]:
        if not tasks:
            return []

        def run(conn: sqlite3.Connection) -> list[Task | Exception]:
            return [self._restore_one(conn, task) for task in tasks]

        return await self._write(run)

    def _restore_one(self, conn: sqlite3.Connection, task: Task) -> Task | Exception:
        key = (task.project, task.queue, task.id)
        row = conn.execute(f"SELECT seq FROM archived_tasks WHERE {_KEY}", key).fetchone()
        if row is None:
            return NotFound(f"no archived task {task.id} in queue {task.queue}")
        if row[0] != _expected_seq(task.metadata.version):
            return VersionConflict(f"archived task {task.id} in queue {task.queue} changed since it was read")
        # The insert check refuses archived ids, so insert directly; one transaction, so no crash splits the move.
        stored = _versioned(task, row[0] + 1)
        if conn.execute(_INSERT_TASK_SQL, _columns(stored, self.sealer)).rowcount == 0:
            (body,) = conn.execute(f"SELECT body FROM tasks WHERE {_KEY}", key).fetchone()
            live = load_json(Task, body, self.sealer)
            if not same_but_version(live, task):
                return AlreadyExists(f"task {task.id} already exists in queue {task.queue}")
            stored = live  # this very restore was made before, its archived copy left behind: finish it
        conn.execute(f"DELETE FROM archived_tasks WHERE {_KEY}", key)
        return stored

    async def delete_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict | NotFound]:
        if not tasks:
            return []

        def run(conn: sqlite3.Connection) -> list[Task | VersionConflict | NotFound]:
            out: list[Task | VersionConflict | NotFound] = []
            for task in tasks:
                key = (task.project, task.queue, task.id)
                expected = _expected_seq(task.metadata.version)
                if conn.execute(f"DELETE FROM tasks WHERE {_KEY} AND seq = ?", (*key, expected)).rowcount == 1:
                    out.append(task)
                elif conn.execute(f"SELECT 1 FROM tasks WHERE {_KEY}", key).fetchone() is not None:
                    out.append(VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read"))
                else:
                    out.append(NotFound(f"no task {task.id} in queue {task.queue}"))
            return out

        return await self._write(run)

    async def purge_finished(self, queue: str, *, project: str = DEFAULT_PROJECT) -> int:
        deleted = 0
        for select, table in ((_PURGE_LIVE_SQL, "tasks"), (_PURGE_ARCHIVED_SQL, "archived_tasks")):
            while True:
                count = await self._write(
                    partial(_delete_chunk, select=select, table=table, project=project, queue=queue)
                )
                deleted += count
                if count < PURGE_CHUNK:
                    break
        # Then the attempts of the queue's tasks that are gone (neither live nor archived any more).
        after: str | None = ""
        while after is not None:
            after = await self._write(partial(_purge_attempts, project=project, queue=queue, after=after))
        return deleted

    async def count_finished_since(self, queue: str, since: datetime, *, project: str = DEFAULT_PROJECT) -> int:
        params = (project, queue, _micros(since))
        rows = await self._read(lambda conn: conn.execute(FINISHED_SINCE_SQL, params).fetchall())
        return int(rows[0][0])

    async def finished_per_minute(self, since: datetime, *, project: str) -> dict[str, dict[datetime, int]]:
        since_us = _micros(since)

        def run(conn: sqlite3.Connection) -> dict[str, dict[datetime, int]]:
            out: dict[str, dict[datetime, int]] = {}
            after = ""
            while (row := conn.execute(NEXT_FINISHED_QUEUE_SQL, (project, after)).fetchone()) is not None:
                after = row[0]
                rows = conn.execute(FINISHED_BY_MINUTE_SQL, (project, after, since_us)).fetchall()
                if rows:
                    out[after] = {_from_micros(minute * MINUTE_US): count for minute, count in rows}
            return out

        return await self._read(run)


def _delete_chunk(conn: sqlite3.Connection, *, select: str, table: str, project: str, queue: str) -> int:
    rowids = [(r[0],) for r in conn.execute(select, (project, queue, PURGE_CHUNK)).fetchall()]
    conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", rowids)
    return len(rowids)


def _purge_attempts(conn: sqlite3.Connection, *, project: str, queue: str, after: str) -> str | None:
    """Delete the attempts of one page of the queue's task ids whose task is gone; the next cursor, or None."""
    ids = [r[0] for r in conn.execute(_ATTEMPT_IDS_SQL, (project, queue, after, PURGE_CHUNK)).fetchall()]
    for task_id in ids:
        key = (project, queue, task_id)
        live = conn.execute(
            f"SELECT 1 FROM tasks WHERE {_KEY} UNION ALL SELECT 1 FROM archived_tasks WHERE {_KEY} LIMIT 1",
            (*key, *key),
        ).fetchone()
        if live is None:
            conn.execute("DELETE FROM attempts WHERE project = ? AND queue = ? AND task_id = ?", key)
    return ids[-1] if len(ids) == PURGE_CHUNK else None
