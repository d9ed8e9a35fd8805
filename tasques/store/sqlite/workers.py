"""The worker registry's records: one row per (project, worker id) in `workers`, plain columns, no version.

A sighting merges in one `INSERT ... ON CONFLICT DO UPDATE`: the later `last_seen_at` and the earlier
`first_seen_at` win, the queues are the union (a JSON array, sorted, capped at `MAX_WORKER_QUEUES`), the
version and host are the sighted ones when given and the sighting is not older than what is stored, and the
drain columns are never touched. The drain flag is set by a plain UPDATE. One writer thread holds the file, so
each write is atomic without versions.

`claims_by_worker` counts a project's claimed tasks by `last_claimed.worker_id`, read from the JSON body
through the partial index `tasks_claimed` (claimed tasks only, as `find_claimed_by` uses it): it costs reads
proportional to the project's claimed tasks, and the claim path nothing (no extra column or index to keep).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tasques.domain.errors import NotFound
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.worker import MAX_WORKER_QUEUES, WorkerRecord, WorkerSighting
from tasques.store.sqlite.connection import SqliteConnections
from tasques.store.sqlite.rows import _from_micros, _micros
from tasques.store.sqlite.schema import CLAIMED

_COLUMNS = "project, id, first_seen_at, last_seen_at, queues, version, host, draining, drained_at"
# Params: project, id, seen_at (twice: first and last seen), queues (JSON array), version, host.
_RECORD_SQL = f"""
INSERT INTO workers (project, id, first_seen_at, last_seen_at, queues, version, host) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, id) DO UPDATE SET
    first_seen_at = min(workers.first_seen_at, excluded.first_seen_at),
    last_seen_at = max(workers.last_seen_at, excluded.last_seen_at),
    queues = (SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(workers.queues) UNION SELECT value FROM json_each(excluded.queues)
        ORDER BY value LIMIT {MAX_WORKER_QUEUES})),
    version = CASE WHEN excluded.version IS NOT NULL
        AND (excluded.last_seen_at >= workers.last_seen_at OR workers.version IS NULL)
        THEN excluded.version ELSE workers.version END,
    host = CASE WHEN excluded.host IS NOT NULL
        AND (excluded.last_seen_at >= workers.last_seen_at OR workers.host IS NULL)
        THEN excluded.host ELSE workers.host END"""
# The partial index `workers_draining` repeats it (schema.py).
_DRAINING = "draining = 1"
# Params: project.
_CLAIMS_SQL = (
    "SELECT json_extract(body, '$.last_claimed.worker_id') AS worker, count(*) FROM tasks INDEXED BY tasks_claimed "
    f"WHERE project = ? AND {CLAIMED} GROUP BY worker"
)


def _record_of(row: Sequence[Any]) -> WorkerRecord:
    project, worker_id, first, last, queues, version, host, draining, drained_at = row
    return WorkerRecord(
        id=worker_id,
        project=project,
        queues=sorted(json.loads(queues)),
        first_seen_at=_from_micros(first),
        last_seen_at=_from_micros(last),
        version=version,
        host=host,
        draining=bool(draining),
        drained_at=_from_micros(drained_at) if drained_at is not None else None,
    )


def _get(conn: sqlite3.Connection, project: str, worker_id: str) -> WorkerRecord:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM workers WHERE project = ? AND id = ?", (project, worker_id)).fetchall()
    if not rows:
        raise NotFound(f"no worker {worker_id}")
    return _record_of(rows[0])


class SqliteWorkers(SqliteConnections):
    """Worker records on the connection threads."""

    async def record_workers(self, sightings: Sequence[WorkerSighting]) -> None:
        if not sightings:
            return
        rows = [
            (
                s.project,
                s.worker_id,
                _micros(s.seen_at),
                _micros(s.seen_at),
                json.dumps(sorted(s.queues)[:MAX_WORKER_QUEUES]),
                s.version,
                s.host,
            )
            for s in sightings
        ]
        await self._write(lambda conn: conn.executemany(_RECORD_SQL, rows))

    async def get_worker(self, worker_id: str, *, project: str = DEFAULT_PROJECT) -> WorkerRecord:
        return await self._read(lambda conn: _get(conn, project, worker_id))

    async def list_workers(self, *, project: str | None = None, draining_only: bool = False) -> list[WorkerRecord]:
        clauses, params = ([] if project is None else ["project = ?"]), ([] if project is None else [project])
        if draining_only:
            clauses.append(_DRAINING)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_COLUMNS} FROM workers {where} ORDER BY project, id"
        return await self._read(lambda conn: [_record_of(row) for row in conn.execute(sql, params).fetchall()])

    async def set_worker_draining(
        self, worker_id: str, draining: bool, at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> WorkerRecord:
        def run(conn: sqlite3.Connection) -> WorkerRecord:
            # drained_at is when it was last put to drain: a resume keeps it.
            cur = conn.execute(
                "UPDATE workers SET draining = ?, drained_at = CASE WHEN ? THEN ? ELSE drained_at END "
                "WHERE project = ? AND id = ?",
                (int(draining), int(draining), _micros(at), project, worker_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no worker {worker_id}")
            return _get(conn, project, worker_id)

        return await self._write(run)

    async def claims_by_worker(self, *, project: str = DEFAULT_PROJECT) -> dict[str, int]:
        rows = await self._read(lambda conn: conn.execute(_CLAIMS_SQL, (project,)).fetchall())
        return {worker: int(count) for worker, count in rows if worker is not None}

    async def forget_workers(self, seen_before: datetime, limit: int) -> int:
        return await self._delete_oldest("workers", "last_seen_at", _micros(seen_before), limit)
