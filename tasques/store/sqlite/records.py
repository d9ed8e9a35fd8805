"""The store's records other than tasks: recurring tasks, queue settings, the attempt timeline, the leader lock.

`SqliteRecords` holds their `Store` methods; `SqliteStore` (`store.py`) adds the task methods on top.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.timeline import Attempt
from tasques.store.base import LockHolder, lease_live
from tasques.store.sealed_records import dump_json, load_json
from tasques.store.sqlite.connection import SqliteConnections
from tasques.store.sqlite.rows import _expected_seq, _from_micros, _micros, _versioned


def _of_project(project: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of a listing of one project (of every project when None), and its params."""
    return ("", ()) if project is None else ("WHERE project = ?", (project,))


class SqliteRecords(SqliteConnections):
    """Recurring tasks, queue settings, attempts and locks on the connection threads of `SqliteConnections`."""

    # Recurring tasks

    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            stored = _versioned(task, 1)
            cur = conn.execute(
                "INSERT INTO recurring_tasks (project, id, seq, body) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING",
                (stored.project, stored.id, dump_json(stored, self.sealer)),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"recurring task {task.id} already exists")
            return stored

        return await self._write(run)

    async def get_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            rows = conn.execute(
                "SELECT body FROM recurring_tasks WHERE project = ? AND id = ?", (project, task_id)
            ).fetchall()
            if not rows:
                raise NotFound(f"no recurring task {task_id}")
            return load_json(RecurringTask, rows[0][0], self.sealer)

        return await self._read(run)

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            expected = _expected_seq(task.metadata.version)
            stored = _versioned(task, expected + 1)
            cur = conn.execute(
                "UPDATE recurring_tasks SET seq = ?, body = ? WHERE project = ? AND id = ? AND seq = ?",
                (expected + 1, dump_json(stored, self.sealer), task.project, task.id, expected),
            )
            if cur.rowcount == 1:
                return stored
            key = (task.project, task.id)
            if conn.execute("SELECT 1 FROM recurring_tasks WHERE project = ? AND id = ?", key).fetchall():
                raise VersionConflict(f"recurring task {task.id} changed since it was read")
            raise NotFound(f"no recurring task {task.id}")

        return await self._write(run)

    async def delete_recurring(self, task_id: str, *, project: str = DEFAULT_PROJECT) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            key = (project, task_id)
            rows = conn.execute("SELECT body FROM recurring_tasks WHERE project = ? AND id = ?", key).fetchall()
            if not rows:
                raise NotFound(f"no recurring task {task_id}")
            conn.execute("DELETE FROM recurring_tasks WHERE project = ? AND id = ?", key)
            return load_json(RecurringTask, rows[0][0], self.sealer)

        return await self._write(run)

    async def list_recurring(self, *, project: str | None = None) -> list[RecurringTask]:
        def run(conn: sqlite3.Connection) -> list[RecurringTask]:
            where, params = _of_project(project)
            sql = f"SELECT project, id, body FROM recurring_tasks {where} ORDER BY project, id"
            rows = conn.execute(sql, params).fetchall()
            parsed = (self._parse(RecurringTask, f"recurring/{p}/{rid}", body) for p, rid, body in rows)
            return [r for r in parsed if r is not None]

        return await self._read(run)

    # Queue settings

    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            stored = _versioned(settings, 1)
            cur = conn.execute(
                "INSERT INTO queue_settings (project, queue, seq, body) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING",
                (stored.project, stored.queue, stored.model_dump_json()),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"queue {settings.queue} already has settings")
            return stored

        return await self._write(run)

    async def get_queue_settings(self, queue: str, *, project: str = DEFAULT_PROJECT) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            rows = conn.execute(
                "SELECT body FROM queue_settings WHERE project = ? AND queue = ?", (project, queue)
            ).fetchall()
            if not rows:
                raise NotFound(f"no settings for queue {queue}")
            return QueueSettings.model_validate_json(rows[0][0])

        return await self._read(run)

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            expected = _expected_seq(settings.metadata.version)
            stored = _versioned(settings, expected + 1)
            cur = conn.execute(
                "UPDATE queue_settings SET seq = ?, body = ? WHERE project = ? AND queue = ? AND seq = ?",
                (expected + 1, stored.model_dump_json(), settings.project, settings.queue, expected),
            )
            if cur.rowcount == 1:
                return stored
            key = (settings.project, settings.queue)
            if conn.execute("SELECT 1 FROM queue_settings WHERE project = ? AND queue = ?", key).fetchall():
                raise VersionConflict(f"settings of queue {settings.queue} changed since they were read")
            raise NotFound(f"no settings for queue {settings.queue}")

        return await self._write(run)

    async def list_queue_settings(self, *, project: str | None = None) -> list[QueueSettings]:
        def run(conn: sqlite3.Connection) -> list[QueueSettings]:
            where, params = _of_project(project)
            sql = f"SELECT project, queue, body FROM queue_settings {where} ORDER BY project, queue"
            rows = conn.execute(sql, params).fetchall()
            parsed = (self._parse(QueueSettings, f"queues/{p}/{queue}", body) for p, queue, body in rows)
            return [s for s in parsed if s is not None]

        return await self._read(run)

    # Attempt timeline

    async def insert_attempt(self, attempt: Attempt) -> None:
        a = attempt
        row = (a.project, a.queue, a.task_id, a.run, a.attempt, _micros(a.ended_at), a.model_dump_json())
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO attempts (project, queue, task_id, run, attempt, ended_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def list_attempts(self, queue: str, task_id: str, *, project: str = DEFAULT_PROJECT) -> list[Attempt]:
        def run(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT body FROM attempts WHERE project = ? AND queue = ? AND task_id = ? ORDER BY run, attempt",
                (project, queue, task_id),
            ).fetchall()
            return [Attempt.model_validate_json(row[0]) for row in rows]

        return await self._read(run)

    async def delete_attempts(self, ended_before: datetime, limit: int) -> int:
        return await self._delete_oldest("attempts", "ended_at", _micros(ended_before), limit)

    # Leader lock

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        _micros(now)  # refuses a naive datetime before any write
        expires_us = _micros(expires_at)

        def run(conn: sqlite3.Connection) -> bool:
            current = _lock_row(conn, name)
            if current is None:
                conn.execute(
                    "INSERT INTO locks (name, holder, expires_at, seq) VALUES (?, ?, ?, 1)", (name, holder, expires_us)
                )
                return True
            if current.holder != holder and lease_live(current.expires_at, now):
                return False
            conn.execute(
                "UPDATE locks SET holder = ?, expires_at = ?, seq = seq + 1 WHERE name = ?", (holder, expires_us, name)
            )
            return True

        return await self._write(run)

    async def release_lock(self, name: str, holder: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder)))

    async def lock_holder(self, name: str, now: datetime) -> LockHolder | None:
        _micros(now)  # refuses a naive datetime, as every store call does
        current = await self._read(lambda conn: _lock_row(conn, name))
        return current if current is not None and lease_live(current.expires_at, now) else None


def _lock_row(conn: sqlite3.Connection, name: str) -> LockHolder | None:
    """The lock's stored holder and expiry, live or not."""
    row = conn.execute("SELECT holder, expires_at FROM locks WHERE name = ?", (name,)).fetchone()
    return LockHolder(holder=row[0], expires_at=_from_micros(row[1])) if row is not None else None
