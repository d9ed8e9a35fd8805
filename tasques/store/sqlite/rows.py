"""Rows: the SQL of the task queries, task <-> row conversion, versions, and the task listing query.

Plain functions on a connection; they run on the store's connection threads (see `connection.py`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import Task, Version
from tasques.store.base import TaskFilter
from tasques.store.cursor import Cursor
from tasques.store.sealed_records import dump_json
from tasques.store.sealing import Sealer
from tasques.store.sqlite.schema import CLAIMABLE, FINISHED, OUTSTANDING, TASK_COLUMNS, WAITING

_TERM = 1  # SQLite has no primary terms; every version is (seq, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

CLAIMED_SQL = "SELECT queue, id, body FROM tasks WHERE state = 'claimed' AND times_out_at IS NOT NULL"

CLAIM_SQL = (
    f"SELECT priority, run_at, seq, id, body FROM tasks WHERE queue = ? AND target = ? AND {CLAIMABLE} AND run_at <= ? "
    "ORDER BY priority DESC, run_at LIMIT ?"
)
# Does one queue hold a claimable task of one target? Through the claim index, stopping at the first rows.
PROBE_SQL = f"SELECT id FROM tasks WHERE queue = ? AND target = ? AND {CLAIMABLE} AND run_at <= ? LIMIT ?"
_HAS_CLAIMABLE = (
    f"EXISTS (SELECT 1 FROM tasks WHERE tasks.queue = names.queue AND target = ? AND {CLAIMABLE} AND run_at <= ?)"
)
# The queues holding any claimable task: a loose scan of the claim index, one seek per queue.
_CLAIMABLE_NAMES = f"""
WITH RECURSIVE names(queue) AS (
    SELECT (SELECT queue FROM tasks INDEXED BY tasks_claimable_by_target WHERE {CLAIMABLE} ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT queue FROM tasks INDEXED BY tasks_claimable_by_target WHERE {CLAIMABLE} AND queue > names.queue
            ORDER BY queue LIMIT 1)
    FROM names WHERE names.queue IS NOT NULL
)"""
# Of every queue, those holding a claimable task of a target (params: target, now).
PROBE_ALL_SQL = f"{_CLAIMABLE_NAMES}\nSELECT queue FROM names WHERE queue IS NOT NULL AND {_HAS_CLAIMABLE}"


def probe_queues_sql(count: int) -> str:
    """Of `count` queues (the first params), those holding a claimable task of a target (then: target, now)."""
    values = ", ".join("(?)" for _ in range(count))
    return f"WITH names(queue) AS (VALUES {values}) SELECT queue FROM names WHERE {_HAS_CLAIMABLE}"


TIMED_OUT_SQL = (
    "SELECT queue, id, body FROM tasks WHERE state = 'claimed' AND times_out_at <= ? ORDER BY times_out_at LIMIT ?"
)
FINISHED_SQL = f"SELECT rowid FROM tasks WHERE {FINISHED} AND modified_at < ? ORDER BY modified_at LIMIT ?"
OUTSTANDING_SQL = f"SELECT count(*) FROM tasks WHERE recurring_task_id = ? AND {OUTSTANDING}"
COUNTS_SQL = "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state ORDER BY queue, state"
# One seek in `tasks_earliest` per queue.
EARLIEST_SQL = (
    f"SELECT run_at FROM tasks INDEXED BY tasks_earliest WHERE queue = ? AND {WAITING} ORDER BY run_at LIMIT 1"
)
_INSERT_TASK_SQL = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 13)}) ON CONFLICT DO NOTHING"
_UPDATE_TASK_SQL = (
    "UPDATE tasks SET state = ?, priority = ?, run_at = ?, times_out_at = ?, kind = ?, recurring_task_id = ?, "
    "created_at = ?, modified_at = ?, seq = ?, body = ?, target = ? WHERE queue = ? AND id = ? AND seq = ?"
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


_Versioned = TypeVar("_Versioned", Task, RecurringTask, QueueSettings)


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
    )


def _update_params(task: Task, expected_seq: int, sealer: Sealer | None) -> tuple[Any, ...]:
    """Parameters of `_UPDATE_TASK_SQL`: the non-key columns, the key, then the version it must still have."""
    queue, task_id, *rest = _columns(task, sealer)
    return (*rest, queue, task_id, expected_seq)


def _insert_task(conn: sqlite3.Connection, task: Task, sealer: Sealer | None) -> Task | AlreadyExists:
    if conn.execute("SELECT 1 FROM archived_tasks WHERE queue = ? AND id = ?", (task.queue, task.id)).fetchall():
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue} (archived)")
    stored = _versioned(task, 1)
    if conn.execute(_INSERT_TASK_SQL, _columns(stored, sealer)).rowcount == 0:
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue}")
    return stored


def _update_task(conn: sqlite3.Connection, task: Task, sealer: Sealer | None) -> Task | VersionConflict | NotFound:
    expected = _expected_seq(task.metadata.version)
    stored = _versioned(task, expected + 1)
    if conn.execute(_UPDATE_TASK_SQL, _update_params(stored, expected, sealer)).rowcount == 1:
        return stored
    if conn.execute("SELECT 1 FROM tasks WHERE queue = ? AND id = ?", (task.queue, task.id)).fetchall():
        return VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read")
    return NotFound(f"no task {task.id} in queue {task.queue}")


def _check_identity(before: Task, after: Task) -> None:
    if (before.queue, before.id) != (after.queue, after.id):
        raise ValueError(f"a change must not move task {before.queue}/{before.id}")


# Listing


def _list_query(flt: TaskFilter, limit: int, after: Cursor | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.queue is not None:
        clauses.append("queue = ?")
        params.append(flt.queue)
    if flt.states:
        clauses.append(f"state IN ({', '.join('?' * len(flt.states))})")
        params.extend(sorted(s.value for s in flt.states))
    if flt.kind is not None:
        clauses.append("kind = ?")
        params.append(flt.kind)
    if flt.recurring_task_id is not None:
        clauses.append("recurring_task_id = ?")
        params.append(flt.recurring_task_id)
    if after is not None:
        created, queue, task_id = after
        # Keyset on (created_at, queue, id) descending. With a queue filter, queue is constant, so state the
        # bound on (created_at, id) alone, which the (queue, created_at, id) index can seek to.
        if flt.queue is None:
            clauses.append("(created_at, queue, id) < (?, ?, ?)")
            params.extend((created, queue, task_id))
        elif queue == flt.queue:
            clauses.append("(created_at, id) < (?, ?)")
            params.extend((created, task_id))
        else:
            clauses.append("created_at <= ?" if queue > flt.queue else "created_at < ?")
            params.append(created)
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    sql = f"SELECT created_at, queue, id, body FROM tasks {where}ORDER BY created_at DESC, queue DESC, id DESC LIMIT ?"
    params.append(limit)
    return sql, params
