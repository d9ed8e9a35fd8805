"""Batch records and the counts of a batch's tasks, on the connection threads of `SqliteConnections`.

A batch is one row keyed (project, id), versioned by `seq` like the other records; `open` and `created_at` are
copies of the body for the leader's sweep (`batches_open`, a partial index). A batch's tasks are counted through
`tasks_batch` and `archived_tasks_batch`, partial indexes holding only tasks created in a batch.
"""

from __future__ import annotations

import sqlite3

from tasques.domain.batch import Batch
from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import TaskState, Version
from tasques.store.sealed_records import dump_json
from tasques.store.sqlite.connection import SqliteConnections
from tasques.store.sqlite.rows import _expected_seq, _micros
from tasques.store.sqlite.schema import OPEN_BATCH

_COUNTS_SQL = (
    "SELECT state, COUNT(*) FROM tasks WHERE project = ? AND batch_id = ? GROUP BY state "
    "UNION ALL SELECT state, COUNT(*) FROM archived_tasks WHERE project = ? AND batch_id = ? GROUP BY state"
)
_OPEN_SQL = f"SELECT project, id, body FROM batches WHERE {OPEN_BATCH}"
_ORDER = " ORDER BY created_at, project, id LIMIT ?"


def _with_seq(batch: Batch, seq: int) -> Batch:
    return batch.model_copy(
        update={"metadata": batch.metadata.model_copy(update={"version": Version(seq_num=seq, primary_term=1)})}
    )


class SqliteBatches(SqliteConnections):
    async def insert_batch(self, batch: Batch) -> Batch:
        stored = _with_seq(batch, 1)

        def run(conn: sqlite3.Connection) -> Batch:
            cur = conn.execute(
                "INSERT INTO batches (project, id, open, completed_at, created_at, seq, body) "
                "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                (stored.project, stored.id, *_copies(stored), dump_json(stored, self.sealer)),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"batch {batch.id} already exists")
            return stored

        return await self._write(run)

    async def get_batch(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> Batch:
        def run(conn: sqlite3.Connection) -> Batch:
            rows = conn.execute("SELECT body FROM batches WHERE project = ? AND id = ?", (project, batch_id)).fetchall()
            if not rows:
                raise NotFound(f"no batch {batch_id}")
            parsed = self._parse(Batch, f"batches/{project}/{batch_id}", rows[0][0])
            if parsed is None:
                raise NotFound(f"batch {batch_id} cannot be read")
            return parsed

        return await self._read(run)

    async def update_batch(self, batch: Batch) -> Batch:
        expected = _expected_seq(batch.metadata.version)
        stored = _with_seq(batch, expected + 1)

        def run(conn: sqlite3.Connection) -> Batch:
            open_, completed_at, _ = _copies(stored)
            cur = conn.execute(
                "UPDATE batches SET seq = ?, body = ?, open = ?, completed_at = ? WHERE project = ? AND id = ? AND seq = ?",
                (expected + 1, dump_json(stored, self.sealer), open_, completed_at, batch.project, batch.id, expected),
            )
            if cur.rowcount == 1:
                return stored
            if conn.execute("SELECT 1 FROM batches WHERE project = ? AND id = ?", (batch.project, batch.id)).fetchall():
                raise VersionConflict(f"batch {batch.id} changed since it was read")
            raise NotFound(f"no batch {batch.id}")

        return await self._write(run)

    async def open_batches(self, limit: int, *, after: Batch | None = None) -> list[Batch]:
        if limit <= 0:
            return []

        def run(conn: sqlite3.Connection) -> list[Batch]:
            if after is None:
                rows = conn.execute(_OPEN_SQL + _ORDER, (limit,)).fetchall()
            else:
                key = (_micros(after.metadata.created_at), after.project, after.id)
                sql = _OPEN_SQL + " AND (created_at, project, id) > (?, ?, ?)" + _ORDER
                rows = conn.execute(sql, (*key, limit)).fetchall()
            parsed = (self._parse(Batch, f"batches/{p}/{bid}", body) for p, bid, body in rows)
            return [b for b in parsed if b is not None]

        return await self._read(run)

    async def batch_counts(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> dict[TaskState, int]:
        def run(conn: sqlite3.Connection) -> dict[TaskState, int]:
            counts: dict[TaskState, int] = {}
            for state, n in conn.execute(_COUNTS_SQL, (project, batch_id, project, batch_id)).fetchall():
                counts[TaskState(state)] = counts.get(TaskState(state), 0) + n
            return counts

        return await self._read(run)


def _copies(batch: Batch) -> tuple[int, int | None, int]:
    """The columns copied from the body: open, completed_at, created_at."""
    completed = _micros(batch.completed_at) if batch.completed_at is not None else None
    return int(batch.open), completed, _micros(batch.metadata.created_at)
