"""The SQLite store: one server process, one database file.

Every operation is one plain function run on a dedicated thread that owns its connection, so a whole
transaction (including a claim's select-change-update) is atomic, costs one thread hop, and keeps disk I/O
and pydantic parsing off the event loop. Writes go through the single writer thread; pure reads go through a
second thread with its own connection, which WAL lets run alongside the writer.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

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
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import Task, TaskState, Version
from tasques.domain.timeline import Attempt
from tasques.store.base import QueueCounts, TaskFilter, TaskPage
from tasques.store.cursor import Cursor, decode_cursor, encode_cursor
from tasques.store.sqlite.schema import (
    CLAIMABLE,
    DDL,
    FINISHED,
    MIGRATE_1_TO_2,
    OUTSTANDING,
    SCHEMA_VERSION,
    TASK_COLUMNS,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("tasques.store.sqlite")

# Unreadable records remembered (so claims and the reaper skip them without re-reading); beyond this, only logged.
MAX_UNREADABLE = 10_000

_TERM = 1  # SQLite has no primary terms; every version is (seq, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_BUSY_TIMEOUT = timedelta(seconds=10)
# Primary result codes that mean "not now" (locked by another process, I/O failing, disk full, file gone),
# not a bug: they leave the store as StoreUnavailable.
_UNAVAILABLE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN}
)
CLAIMED_SQL = "SELECT queue, id, body FROM tasks WHERE state = 'claimed' AND times_out_at IS NOT NULL"

CLAIM_SQL = (
    f"SELECT priority, run_at, seq, id, body FROM tasks WHERE queue = ? AND target = ? AND {CLAIMABLE} AND run_at <= ? "
    "ORDER BY priority DESC, run_at LIMIT ?"
)
TIMED_OUT_SQL = (
    "SELECT queue, id, body FROM tasks WHERE state = 'claimed' AND times_out_at <= ? ORDER BY times_out_at LIMIT ?"
)
FINISHED_SQL = f"SELECT rowid FROM tasks WHERE {FINISHED} AND modified_at < ? ORDER BY modified_at LIMIT ?"
OUTSTANDING_SQL = f"SELECT count(*) FROM tasks WHERE recurring_task_id = ? AND {OUTSTANDING}"
COUNTS_SQL = "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state ORDER BY queue, state"
_INSERT_TASK_SQL = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 13)}) ON CONFLICT DO NOTHING"
_UPDATE_TASK_SQL = (
    "UPDATE tasks SET state = ?, priority = ?, run_at = ?, times_out_at = ?, kind = ?, recurring_task_id = ?, "
    "created_at = ?, modified_at = ?, seq = ?, body = ?, target = ? WHERE queue = ? AND id = ? AND seq = ?"
)
_ARCHIVE_SQL = (
    f"INSERT OR REPLACE INTO archived_tasks ({TASK_COLUMNS}, archived_at) "
    f"SELECT {TASK_COLUMNS}, ? FROM tasks WHERE rowid = ?"
)


class SqliteStore:
    """`Store` on one SQLite file (see `tasques.store.base` for the contract)."""

    kind: str = "sqlite"

    def __init__(self, path: str, busy_timeout: timedelta = _BUSY_TIMEOUT) -> None:
        self._path = path
        self._busy_ms = max(1, int(busy_timeout.total_seconds() * 1000))
        self._writer: _ConnectionThread | None = None
        self._reader: _ConnectionThread | None = None
        # Keys of stored records that could not be parsed, and how many times one was skipped (see `_parse`).
        self._unreadable: set[str] = set()
        self.skipped_unreadable = 0

    # Lifecycle

    async def open(self) -> None:
        if self._writer is not None:
            return
        writer = _ConnectionThread(
            "tasques-sqlite-writer", lambda: _connect(self._path, read_only=False, busy_ms=self._busy_ms)
        )
        try:
            await writer.run(_migrate)
        except BaseException:
            await writer.close()
            raise
        # The reader connects only once the writer has created the file and switched it to WAL.
        self._writer = writer
        self._reader = _ConnectionThread(
            "tasques-sqlite-reader", lambda: _connect(self._path, read_only=True, busy_ms=self._busy_ms)
        )

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if reader is not None:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _parse(self, model: type[M], key: str, body: str | bytes) -> M | None:
        """Parse a stored record for a loop or a claim. One that cannot be parsed (corrupt, or written by another
        version) is logged once, counted and remembered, and skipped: it never fails the pass for the others."""
        try:
            return model.model_validate_json(body)
        except ValueError as e:
            self.skipped_unreadable += 1
            if key not in self._unreadable and len(self._unreadable) < MAX_UNREADABLE:
                self._unreadable.add(key)
                log.error("stored record %s cannot be read; skipped: %s", key, e)
            return None

    def _unreadable_tasks(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for key in self._unreadable:
            kind, _, rest = key.partition("/")
            if kind == "tasks":
                queue, _, task_id = rest.partition("/")
                out.add((queue, task_id))
        return out

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._writer.run(lambda conn: _in_transaction(conn, fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._reader.run(fn)

    # Tasks

    async def insert_task(self, task: Task) -> Task:
        stored = await self._write(lambda conn: _insert_task(conn, task))
        if isinstance(stored, AlreadyExists):
            raise stored
        return stored

    async def insert_tasks(self, tasks: Sequence[Task]) -> list[Task | AlreadyExists]:
        if not tasks:
            return []
        return await self._write(lambda conn: [_insert_task(conn, t) for t in tasks])

    async def get_task(self, queue: str, task_id: str) -> Task:
        def run(conn: sqlite3.Connection) -> Task:
            rows = conn.execute(
                "SELECT body FROM tasks WHERE queue = ? AND id = ? "
                "UNION ALL SELECT body FROM archived_tasks WHERE queue = ? AND id = ? LIMIT 1",
                (queue, task_id, queue, task_id),
            ).fetchall()
            if not rows:
                raise NotFound(f"no task {task_id} in queue {queue}")
            return Task.model_validate_json(rows[0][0])

        return await self._read(run)

    async def update_task(self, task: Task) -> Task:
        stored = await self._write(lambda conn: _update_task(conn, task))
        if isinstance(stored, TasquesError):
            raise stored
        return stored

    async def update_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict]:
        if not tasks:
            return []

        def run(conn: sqlite3.Connection) -> list[Task | VersionConflict]:
            results: list[Task | VersionConflict] = []
            for task in tasks:
                stored = _update_task(conn, task)
                if isinstance(stored, NotFound):
                    # The protocol's slot type has no NotFound; a re-read by the caller will tell.
                    stored = VersionConflict(str(stored))
                results.append(stored)
            return results

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
                    params.append(_update_params(stored, seq))
                    claimed.append(stored)
                if not unreadable or len(claimed) >= limit:
                    break
            if params:
                conn.executemany(_UPDATE_TASK_SQL, params)
            return claimed

        return await self._write(run)

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
            tasks = [Task.model_validate_json(row[3]) for row in rows[:limit]]
            next_cursor = encode_cursor(rows[limit - 1][:3]) if len(rows) > limit else None
            return TaskPage(tasks=tasks, next_cursor=next_cursor)

        return await self._read(run)

    async def queue_counts(self) -> list[QueueCounts]:
        rows = await self._read(lambda conn: conn.execute(COUNTS_SQL).fetchall())
        by_queue: dict[str, dict[TaskState, int]] = {}
        for queue, state, count in rows:
            by_queue.setdefault(queue, {})[TaskState(state)] = count
        return [QueueCounts(queue=queue, counts=counts) for queue, counts in by_queue.items()]

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

    # Recurring tasks

    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            stored = _versioned(task, 1)
            cur = conn.execute(
                "INSERT INTO recurring_tasks (id, seq, body) VALUES (?, 1, ?) ON CONFLICT DO NOTHING",
                (stored.id, stored.model_dump_json()),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"recurring task {task.id} already exists")
            return stored

        return await self._write(run)

    async def get_recurring(self, task_id: str) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            rows = conn.execute("SELECT body FROM recurring_tasks WHERE id = ?", (task_id,)).fetchall()
            if not rows:
                raise NotFound(f"no recurring task {task_id}")
            return RecurringTask.model_validate_json(rows[0][0])

        return await self._read(run)

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            expected = _expected_seq(task.metadata.version)
            stored = _versioned(task, expected + 1)
            cur = conn.execute(
                "UPDATE recurring_tasks SET seq = ?, body = ? WHERE id = ? AND seq = ?",
                (expected + 1, stored.model_dump_json(), task.id, expected),
            )
            if cur.rowcount == 1:
                return stored
            if conn.execute("SELECT 1 FROM recurring_tasks WHERE id = ?", (task.id,)).fetchall():
                raise VersionConflict(f"recurring task {task.id} changed since it was read")
            raise NotFound(f"no recurring task {task.id}")

        return await self._write(run)

    async def delete_recurring(self, task_id: str) -> RecurringTask:
        def run(conn: sqlite3.Connection) -> RecurringTask:
            rows = conn.execute("SELECT body FROM recurring_tasks WHERE id = ?", (task_id,)).fetchall()
            if not rows:
                raise NotFound(f"no recurring task {task_id}")
            conn.execute("DELETE FROM recurring_tasks WHERE id = ?", (task_id,))
            return RecurringTask.model_validate_json(rows[0][0])

        return await self._write(run)

    async def list_recurring(self) -> list[RecurringTask]:
        def run(conn: sqlite3.Connection) -> list[RecurringTask]:
            rows = conn.execute("SELECT id, body FROM recurring_tasks ORDER BY id").fetchall()
            parsed = (self._parse(RecurringTask, f"recurring/{rid}", body) for rid, body in rows)
            return [r for r in parsed if r is not None]

        return await self._read(run)

    # Queue settings

    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            stored = _versioned(settings, 1)
            cur = conn.execute(
                "INSERT INTO queue_settings (queue, seq, body) VALUES (?, 1, ?) ON CONFLICT DO NOTHING",
                (stored.queue, stored.model_dump_json()),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"queue {settings.queue} already has settings")
            return stored

        return await self._write(run)

    async def get_queue_settings(self, queue: str) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            rows = conn.execute("SELECT body FROM queue_settings WHERE queue = ?", (queue,)).fetchall()
            if not rows:
                raise NotFound(f"no settings for queue {queue}")
            return QueueSettings.model_validate_json(rows[0][0])

        return await self._read(run)

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        def run(conn: sqlite3.Connection) -> QueueSettings:
            expected = _expected_seq(settings.metadata.version)
            stored = _versioned(settings, expected + 1)
            cur = conn.execute(
                "UPDATE queue_settings SET seq = ?, body = ? WHERE queue = ? AND seq = ?",
                (expected + 1, stored.model_dump_json(), settings.queue, expected),
            )
            if cur.rowcount == 1:
                return stored
            if conn.execute("SELECT 1 FROM queue_settings WHERE queue = ?", (settings.queue,)).fetchall():
                raise VersionConflict(f"settings of queue {settings.queue} changed since they were read")
            raise NotFound(f"no settings for queue {settings.queue}")

        return await self._write(run)

    async def list_queue_settings(self) -> list[QueueSettings]:
        def run(conn: sqlite3.Connection) -> list[QueueSettings]:
            rows = conn.execute("SELECT queue, body FROM queue_settings ORDER BY queue").fetchall()
            parsed = (self._parse(QueueSettings, f"queues/{queue}", body) for queue, body in rows)
            return [s for s in parsed if s is not None]

        return await self._read(run)

    # Attempt timeline

    async def insert_attempt(self, attempt: Attempt) -> None:
        a = attempt
        row = (a.queue, a.task_id, a.run, a.attempt, _micros(a.ended_at), a.model_dump_json())
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO attempts (queue, task_id, run, attempt, ended_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def list_attempts(self, queue: str, task_id: str) -> list[Attempt]:
        def run(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT body FROM attempts WHERE queue = ? AND task_id = ? ORDER BY run, attempt", (queue, task_id)
            ).fetchall()
            return [Attempt.model_validate_json(row[0]) for row in rows]

        return await self._read(run)

    async def delete_attempts(self, ended_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        before_us = _micros(ended_before)

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM attempts WHERE rowid IN "
                "(SELECT rowid FROM attempts WHERE ended_at < ? ORDER BY ended_at LIMIT ?)",
                (before_us, limit),
            )
            return cur.rowcount

        return await self._write(run)

    # Leader lock

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        now_us, expires_us = _micros(now), _micros(expires_at)

        def run(conn: sqlite3.Connection) -> bool:
            rows = conn.execute("SELECT holder, expires_at FROM locks WHERE name = ?", (name,)).fetchall()
            if not rows:
                conn.execute(
                    "INSERT INTO locks (name, holder, expires_at, seq) VALUES (?, ?, ?, 1)", (name, holder, expires_us)
                )
                return True
            current_holder, current_expiry = rows[0]
            if current_holder != holder and current_expiry > now_us:
                return False
            conn.execute(
                "UPDATE locks SET holder = ?, expires_at = ?, seq = seq + 1 WHERE name = ?", (holder, expires_us, name)
            )
            return True

        return await self._write(run)

    async def release_lock(self, name: str, holder: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder)))


class _ConnectionThread:
    """One thread that owns one connection; the connection is touched only on that thread."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connect = connect
        self._conn: sqlite3.Connection | None = None

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)
        except sqlite3.Error as e:
            if (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"sqlite: {e}") from e
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        # The thread is idle now, so this returns at once.
        self._executor.shutdown(wait=True)


def _connect(path: str, *, read_only: bool, busy_ms: int = 10_000) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE themselves.
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    # WAL + synchronous=NORMAL: a commit survives a process crash (kill -9), but the last few commits
    # can be lost on power loss or an OS crash. Much faster than FULL, which fsyncs on every commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
    return conn


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # IMMEDIATE takes the write lock up front, so a transaction never fails to upgrade a read lock midway.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT, so the connection is never left inside a transaction.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _migrate(conn: sqlite3.Connection) -> None:
    def run(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchall()[0][0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {version} is newer than this server's {SCHEMA_VERSION}")
        if version == 1:
            for statement in MIGRATE_1_TO_2:
                conn.execute(statement)
        for statement in DDL:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    _in_transaction(conn, run)


# Rows


def _micros(at: datetime) -> int:
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store needs time-zone-aware datetimes")
    return (at - _EPOCH) // _MICRO


_Versioned = TypeVar("_Versioned", Task, RecurringTask, QueueSettings)


def _versioned(record: _Versioned, seq: int) -> _Versioned:
    metadata = record.metadata.model_copy(update={"version": Version(seq_num=seq, primary_term=_TERM)})
    return record.model_copy(update={"metadata": metadata})


def _expected_seq(version: Version) -> int:
    # A version from another term can never match what this store holds.
    return version.seq_num if version.primary_term == _TERM else -1


def _columns(task: Task) -> tuple[Any, ...]:
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
        task.model_dump_json(),
        task.target.value,
    )


def _update_params(task: Task, expected_seq: int) -> tuple[Any, ...]:
    """Parameters of `_UPDATE_TASK_SQL`: the non-key columns, the key, then the version it must still have."""
    queue, task_id, *rest = _columns(task)
    return (*rest, queue, task_id, expected_seq)


def _insert_task(conn: sqlite3.Connection, task: Task) -> Task | AlreadyExists:
    if conn.execute("SELECT 1 FROM archived_tasks WHERE queue = ? AND id = ?", (task.queue, task.id)).fetchall():
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue} (archived)")
    stored = _versioned(task, 1)
    if conn.execute(_INSERT_TASK_SQL, _columns(stored)).rowcount == 0:
        return AlreadyExists(f"task {task.id} already exists in queue {task.queue}")
    return stored


def _update_task(conn: sqlite3.Connection, task: Task) -> Task | VersionConflict | NotFound:
    expected = _expected_seq(task.metadata.version)
    stored = _versioned(task, expected + 1)
    if conn.execute(_UPDATE_TASK_SQL, _update_params(stored, expected)).rowcount == 1:
        return stored
    if conn.execute("SELECT 1 FROM tasks WHERE queue = ? AND id = ?", (task.queue, task.id)).fetchall():
        return VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read")
    return NotFound(f"no task {task.id} in queue {task.queue}")


def _check_identity(before: Task, after: Task) -> None:
    if (before.queue, before.id) != (after.queue, after.id):
        raise ValueError(f"a claim change must not move task {before.queue}/{before.id}")


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
