"""Dependencies on SQLite: the `task_deps` edge table and the three `Store` reads over it.

An edge (project, dep_queue, dep_id, queue, id) says "task (queue, id) of project waits on (dep_queue, dep_id)".
Edges are written in the transaction that inserts the dependent and dropped when it leaves `waiting`; one
left behind by a task deleted while waiting is harmless, since `find_dependents` joins to live waiting tasks.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.store.sealed_records import load_json
from tasques.store.sqlite.connection import SqliteConnections, task_key

log = logging.getLogger(__name__)

_INSERT_EDGE = "INSERT OR IGNORE INTO task_deps (project, dep_queue, dep_id, queue, id) VALUES (?, ?, ?, ?, ?)"
_DELETE_EDGE = "DELETE FROM task_deps WHERE project = ? AND dep_queue = ? AND dep_id = ? AND queue = ? AND id = ?"
_KEY = "project = ? AND queue = ? AND id = ?"
_GET_SQL = f"SELECT body FROM tasks WHERE {_KEY} UNION ALL SELECT body FROM archived_tasks WHERE {_KEY} LIMIT 1"
# One primary-key range per dependency key, joined to the dependents still waiting (tasks' primary key).
_DEPENDENTS_SQL = (
    "SELECT t.queue, t.id, t.body FROM task_deps d JOIN tasks t "
    "ON t.project = d.project AND t.queue = d.queue AND t.id = d.id "
    "WHERE d.project = ? AND d.dep_queue = ? AND d.dep_id = ? AND t.state = 'waiting' LIMIT ?"
)
# The partial index tasks_waiting: the WHERE text must match it.
_WAITING_SQL = (
    "SELECT project, queue, id, body FROM tasks WHERE state = 'waiting' AND (project, queue, id) > (?, ?, ?) "
    "ORDER BY project, queue, id LIMIT ?"
)
_WAITING_FIRST_SQL = (
    "SELECT project, queue, id, body FROM tasks WHERE state = 'waiting' ORDER BY project, queue, id LIMIT ?"
)


Edge = tuple[str, str, str, str, str]  # (project, dep_queue, dep_id, queue, id)

# Stale edges kept in memory at most; past this, a release deletes them in its own transaction.
MAX_STALE_EDGES = 200_000


def _edges(task: Task) -> list[Edge]:
    return [(task.project, d.queue, d.id, task.queue, task.id) for d in task.depends_on or ()]


def write_edges(conn: sqlite3.Connection, task: Task) -> None:
    """The edges of a task just inserted (in its insert's transaction)."""
    if task.depends_on:
        conn.executemany(_INSERT_EDGE, _edges(task))


def left_waiting(before: Task, after: Task) -> list[Edge]:
    """The edges a dependent leaving `waiting` (released or cancelled) needs no more."""
    if before.depends_on and before.state is TaskState.WAITING and after.state is not TaskState.WAITING:
        return _edges(before)
    return []


class SqliteDependencies(SqliteConnections):
    """Edges of released or cancelled dependents are not deleted in the release's transaction (a join of 10,000
    spends most of its release there): they are stale (`find_dependents` joins live waiting tasks, so they match
    nothing) and go in the next archive pass, or at close. A crash leaks the stale edges of the last pass:
    harmless rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stale_edges: list[Edge] = []  # touched only on the writer thread

    def _left_waiting(self, conn: sqlite3.Connection, before: Task, after: Task) -> None:
        """On the writer thread, in the write's transaction: remember the edges `after` needs no more."""
        self._stale_edges += left_waiting(before, after)
        if len(self._stale_edges) > MAX_STALE_EDGES:
            self._drop_stale_edges(conn)

    def _drop_stale_edges(self, conn: sqlite3.Connection) -> None:
        """On the writer thread, in a write transaction."""
        if self._stale_edges:
            conn.executemany(_DELETE_EDGE, self._stale_edges)
            self._stale_edges = []

    async def close(self) -> None:
        if self._stale_edges and self._writer is not None:
            try:
                await self._write(self._drop_stale_edges)
            except Exception:  # leaking stale edges is harmless; closing must go on
                log.warning("could not delete %d stale dependency edges at close", len(self._stale_edges))
        await super().close()

    async def get_tasks(self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT) -> list[Task | None]:
        if not keys:
            return []

        def run(conn: sqlite3.Connection) -> list[Task | None]:
            out: list[Task | None] = []
            for key in keys:
                params = (project, key.queue, key.id)
                row = conn.execute(_GET_SQL, (*params, *params)).fetchone()
                out.append(load_json(Task, row[0], self.sealer) if row is not None else None)
            return out

        return await self._read(run)

    async def find_dependents(
        self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT, limit: int = 1000
    ) -> list[Task]:
        if not keys or limit <= 0:
            return []

        def run(conn: sqlite3.Connection) -> list[Task]:
            found: dict[tuple[str, str], Task] = {}
            for key in dict.fromkeys(keys):
                rows = conn.execute(_DEPENDENTS_SQL, (project, key.queue, key.id, limit)).fetchall()
                for queue, task_id, body in rows:
                    if (queue, task_id) in found:
                        continue
                    task = self._parse(Task, task_key(project, queue, task_id), body)
                    if task is not None:
                        found[(queue, task_id)] = task
                        if len(found) >= limit:
                            return list(found.values())
            return list(found.values())

        return await self._read(run)

    async def waiting_tasks(self, after: tuple[str, str, str] | None, limit: int) -> list[Task]:
        if limit <= 0:
            return []

        def run(conn: sqlite3.Connection) -> list[Task]:
            if after is None:
                rows = conn.execute(_WAITING_FIRST_SQL, (limit,)).fetchall()
            else:
                rows = conn.execute(_WAITING_SQL, (*after, limit)).fetchall()
            parsed = (self._parse(Task, task_key(p, q, i), body) for p, q, i, body in rows)
            return [t for t in parsed if t is not None]

        return await self._read(run)
