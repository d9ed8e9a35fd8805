"""Rows: task <-> row conversion, versions, and the single-task writes (the queries are in `queries.py`).

Plain functions on a connection; they run on the store's connection threads (see `connection.py`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.project import ApiToken, Project
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import Task, Version
from tasques.store.sealed_records import dump_json
from tasques.store.sealing import Sealer
from tasques.store.sqlite.dependencies import write_edges
from tasques.store.sqlite.schema import TASK_COLUMNS

_TERM = 1  # SQLite has no primary terms; every version is (seq, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

_INSERT_TASK_SQL = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 15)}) ON CONFLICT DO NOTHING"
_UPDATE_TASK_SQL = (
    "UPDATE tasks SET state = ?, priority = ?, run_at = ?, times_out_at = ?, kind = ?, recurring_task_id = ?, "
    "created_at = ?, modified_at = ?, seq = ?, body = ?, target = ?, batch_id = ? WHERE project = ? AND queue = ? AND id = ? AND seq = ?"
)
_ARCHIVE_SQL = (
    f"INSERT OR REPLACE INTO archived_tasks ({TASK_COLUMNS}, archived_at) "
    f"SELECT {TASK_COLUMNS}, ? FROM tasks WHERE rowid = ?"
)


def _micros(at: datetime) -> int:
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store needs time-zone-aware datetimes")
    return (at - _EPOCH) // _MICRO


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


_Versioned = TypeVar("_Versioned", Task, RecurringTask, QueueSettings, Project, ApiToken)


def _versioned(record: _Versioned, seq: int) -> _Versioned:
    metadata = record.metadata.model_copy(update={"version": Version(seq_num=seq, primary_term=_TERM)})
    return record.model_copy(update={"metadata": metadata})


def _expected_seq(version: Version) -> int:
    # A version from another term can never match what this store holds.
    return version.seq_num if version.primary_term == _TERM else -1


def _columns(task: Task, sealer: Sealer | None) -> tuple[Any, ...]:
    """The row of a task, in `TASK_COLUMNS` order."""
    claim = task.last_claimed
    return (
        task.project,
        task.queue,
        task.id,
        task.state.value,
        task.priority,
        _micros(task.run_at),
        _micros(claim.times_out_at) if claim is not None else None,
        task.kind,
        task.recurring_task_id,
        _micros(task.metadata.created_at),
        _micros(task.metadata.modified_at),
        task.metadata.version.seq_num,
        dump_json(task, sealer),
        task.target.value,
        task.batch_id,
    )


def _update_params(task: Task, expected_seq: int, sealer: Sealer | None) -> tuple[Any, ...]:
    """Parameters of `_UPDATE_TASK_SQL`: the non-key columns, the key, then the version it must still have."""
    project, queue, task_id, *rest = _columns(task, sealer)
    return (*rest, project, queue, task_id, expected_seq)


def _insert_task(conn: sqlite3.Connection, task: Task, sealer: Sealer | None) -> Task | AlreadyExists:
    key = (task.project, task.queue, task.id)
    if conn.execute("SELECT 1 FROM archived_tasks WHERE project = ? AND queue = ? AND id = ?", key).fetchall():
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue} (archived)")
    stored = _versioned(task, 1)
    if conn.execute(_INSERT_TASK_SQL, _columns(stored, sealer)).rowcount == 0:
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue}")
    write_edges(conn, stored)
    return stored


def _update_task(conn: sqlite3.Connection, task: Task, sealer: Sealer | None) -> Task | VersionConflict | NotFound:
    expected = _expected_seq(task.metadata.version)
    stored = _versioned(task, expected + 1)
    if conn.execute(_UPDATE_TASK_SQL, _update_params(stored, expected, sealer)).rowcount == 1:
        return stored
    key = (task.project, task.queue, task.id)
    if conn.execute("SELECT 1 FROM tasks WHERE project = ? AND queue = ? AND id = ?", key).fetchall():
        return VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read")
    return NotFound(f"no task {task.id} in queue {task.queue}")


def _check_identity(before: Task, after: Task) -> None:
    if (before.project, before.queue, before.id) != (after.project, after.queue, after.id):
        raise ValueError(f"a change must not move task {before.project}/{before.queue}/{before.id}")
