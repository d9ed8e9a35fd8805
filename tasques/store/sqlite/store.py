"""The SQLite store: one server process, one database file.

`SqliteStore` is the `Store`: the task methods are here; recurring tasks, queue settings, the timeline and the
leader lock come from `records.py`; the connection threads and transactions from `connection.py`; the SQL
and row conversion from `rows.py`.
"""

from __future__ import annotations

import asyncio
import heapq
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TasquesError,
    VersionConflict,
)
from tasques.domain.http_target import TaskTarget
from tasques.domain.task import Task, TaskState
from tasques.store.base import GeneratedKeys, QueueCounts, QueueProbe, TaskChange, TaskFilter, TaskPage, check_distinct
from tasques.store.cursor import decode_cursor, encode_cursor
from tasques.store.sealed_records import load_json
from tasques.store.sealing import Sealer
from tasques.store.sqlite.connection import _connect as _connect  # re-exported: bench/raw_limits.py imports it here
from tasques.store.sqlite.records import SqliteRecords
from tasques.store.sqlite.rows import (
    _ARCHIVE_SQL,
    _UPDATE_TASK_SQL,
    _check_identity,
    _from_micros,
    _insert_task,
    _micros,
    _update_params,
    _update_task,
    _versioned,
    probe_queues_sql,
)

# Re-exported: tests/contract/test_sqlite_specific.py reads these from this module.
from tasques.store.sqlite.rows import CLAIM_SQL as CLAIM_SQL
from tasques.store.sqlite.rows import CLAIMED_SQL as CLAIMED_SQL
from tasques.store.sqlite.rows import COUNTS_SQL as COUNTS_SQL
from tasques.store.sqlite.rows import EARLIEST_SQL as EARLIEST_SQL
from tasques.store.sqlite.rows import FINISHED_SQL as FINISHED_SQL
from tasques.store.sqlite.rows import OUTSTANDING_SQL as OUTSTANDING_SQL
from tasques.store.sqlite.rows import PROBE_ALL_SQL as PROBE_ALL_SQL
from tasques.store.sqlite.rows import PROBE_SQL as PROBE_SQL
from tasques.store.sqlite.rows import TIMED_OUT_SQL as TIMED_OUT_SQL
from tasques.store.sqlite.rows import _list_query as _list_query

# Queues per probe statement, well under SQLite's limit on bound parameters.
PROBE_CHUNK = 500


class SqliteStore(SqliteRecords):
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
        self, tasks: Sequence[Task], *, generated: GeneratedKeys = frozenset()
    ) -> list[Task | AlreadyExists]:
        if not tasks:
            return []
        return await self._write(lambda conn: [_insert_task(conn, t, self.sealer) for t in tasks])

    async def get_task(self, queue: str, task_id: str) -> Task:
        def run(conn: sqlite3.Connection) -> Task:
            rows = conn.execute(
                "SELECT body FROM tasks WHERE queue = ? AND id = ? "
                "UNION ALL SELECT body FROM archived_tasks WHERE queue = ? AND id = ? LIMIT 1",
                (queue, task_id, queue, task_id),
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
            return [_modify_one(conn, c, self.sealer) for c in changes]

        return await self._write(run)

    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
    ) -> list[Task]:
        if limit <= 0 or not queues:
            return []
        now_us = _micros(now)
        unique_queues = list(dict.fromkeys(queues))

        def run(conn: sqlite3.Connection) -> list[Task]:
            # One indexed query per queue, each already in claim order; merge, then parse only the winners.
            # An unreadable task is passed over (and looked past from then on): it never takes a claim's place.
            claimed: list[Task] = []
            params: list[tuple[Any, ...]] = []
            seen: set[tuple[str, str]] = set()
            while True:
                skip = self._unreadable_tasks() | seen
                wanted = limit - len(claimed)
                candidates: list[tuple[int, int, int, str, str, str]] = []
                for queue in unique_queues:
                    rows = conn.execute(CLAIM_SQL, (queue, target.value, now_us, wanted + len(skip))).fetchall()
                    candidates.extend(
                        (-priority, run_at, seq, queue, task_id, body)
                        for priority, run_at, seq, task_id, body in rows
                        if (queue, task_id) not in skip
                    )
                unreadable = 0
                for _, _, seq, queue, task_id, body in heapq.nsmallest(wanted, candidates, key=lambda c: (c[0], c[1])):
                    seen.add((queue, task_id))
                    task = self._parse(Task, f"tasks/{queue}/{task_id}", body)
                    if task is None:
                        unreadable += 1
                        continue
                    try:
                        changed = change(task)
                    except TasquesError:
                        continue
                    _check_identity(task, changed)
                    stored = _versioned(changed, seq + 1)
                    params.append(_update_params(stored, seq, self.sealer))
                    claimed.append(stored)
                if not unreadable or len(claimed) >= limit:
                    break
            if params:
                conn.executemany(_UPDATE_TASK_SQL, params)
            return claimed

        return await self._write(run)

    async def claimable_queues(self, now: datetime, probes: Sequence[QueueProbe]) -> set[tuple[str, TaskTarget]]:
        now_us = _micros(now)

        def run(conn: sqlite3.Connection) -> set[tuple[str, TaskTarget]]:
            skip = self._unreadable_tasks()
            found: set[tuple[str, TaskTarget]] = set()
            for probe in probes:
                target = probe.target.value
                if probe.queues is None:
                    names = [row[0] for row in conn.execute(PROBE_ALL_SQL, (target, now_us))]
                else:
                    names = []
                    wanted = sorted(probe.queues)
                    for i in range(0, len(wanted), PROBE_CHUNK):
                        chunk = wanted[i : i + PROBE_CHUNK]
                        names += [
                            row[0] for row in conn.execute(probe_queues_sql(len(chunk)), (*chunk, target, now_us))
                        ]
                for queue in set(names) - probe.excluding:
                    # A queue whose only claimable tasks are unreadable has nothing a claim would take.
                    if any(q == queue for q, _ in skip):
                        rows = conn.execute(PROBE_SQL, (queue, target, now_us, len(skip) + 1)).fetchall()
                        if all((queue, task_id) in skip for (task_id,) in rows):
                            continue
                    found.add((queue, probe.target))
            return found

        return await self._read(run)

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        now_us = _micros(now)

        def run(conn: sqlite3.Connection) -> list[Task]:
            bad = self._unreadable_tasks()
            rows = conn.execute(TIMED_OUT_SQL, (now_us, limit + len(bad))).fetchall()
            parsed = (self._parse(Task, f"tasks/{q}/{i}", body) for q, i, body in rows if (q, i) not in bad)
            return [t for t in parsed if t is not None][:limit]

        return await self._read(run)

    async def find_claimed_by(self, worker_id: str, claimed_at: datetime) -> list[Task]:
        _micros(claimed_at)

        def matches(task: Task) -> bool:
            claim = task.last_claimed
            return claim is not None and claim.worker_id == worker_id and claim.claimed_at == claimed_at

        # Rare (only after a failed claim): a scan of the claimed tasks through their partial index is enough.
        def run(conn: sqlite3.Connection) -> list[Task]:
            parsed = (self._parse(Task, f"tasks/{q}/{i}", body) for q, i, body in conn.execute(CLAIMED_SQL))
            return [t for t in parsed if t is not None and matches(t)]

        return await self._read(run)

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
        sql, params = _list_query(flt, limit + 1, after)

        def run(conn: sqlite3.Connection) -> TaskPage:
            rows = conn.execute(sql, params).fetchall()
            tasks = [load_json(Task, row[3], self.sealer) for row in rows[:limit]]
            next_cursor = encode_cursor(rows[limit - 1][:3]) if len(rows) > limit else None
            return TaskPage(tasks=tasks, next_cursor=next_cursor)

        return await self._read(run)

    async def queue_counts(self) -> list[QueueCounts]:
        def run(conn: sqlite3.Connection) -> list[QueueCounts]:
            by_queue: dict[str, dict[TaskState, int]] = {}
            for queue, state, count in conn.execute(COUNTS_SQL).fetchall():
                by_queue.setdefault(queue, {})[TaskState(state)] = count
            out = []
            for queue, counts in by_queue.items():
                earliest = None
                if counts.get(TaskState.QUEUED) or counts.get(TaskState.FAILED):
                    row = conn.execute(EARLIEST_SQL, (queue,)).fetchone()
                    earliest = _from_micros(row[0]) if row is not None else None
                out.append(QueueCounts(queue=queue, counts=counts, earliest_run_at=earliest))
            return out

        return await self._read(run)

    async def count_outstanding(self, recurring_task_id: str) -> int:
        rows = await self._read(lambda conn: conn.execute(OUTSTANDING_SQL, (recurring_task_id,)).fetchall())
        return int(rows[0][0])

    async def archive_finished(self, finished_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        before_us = _micros(finished_before)
        archived_at = _micros(datetime.now(UTC))

        def run(conn: sqlite3.Connection) -> int:
            rowids = [row[0] for row in conn.execute(FINISHED_SQL, (before_us, limit)).fetchall()]
            conn.executemany(_ARCHIVE_SQL, [(archived_at, rowid) for rowid in rowids])
            conn.executemany("DELETE FROM tasks WHERE rowid = ?", [(rowid,) for rowid in rowids])
            return len(rowids)

        return await self._write(run)


def _modify_one(conn: sqlite3.Connection, item: TaskChange, sealer: Sealer | None) -> Task | Exception:
    key = (item.queue, item.id)
    rows = conn.execute("SELECT body FROM tasks WHERE queue = ? AND id = ?", key).fetchall()
    archived = not rows
    if archived:
        rows = conn.execute("SELECT body FROM archived_tasks WHERE queue = ? AND id = ?", key).fetchall()
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
    return _update_task(conn, changed, sealer)
