"""SQLite plumbing: the connection threads, transactions, schema migration, and the store's base class.

Every operation is one plain function run on a dedicated thread that owns its connection, so a whole
transaction (including a claim's select-change-update) is atomic, costs one thread hop, and keeps disk I/O
and pydantic parsing off the event loop. Writes go through the single writer thread; pure reads go through a
second thread with its own connection, which WAL lets run alongside the writer. `SqliteConnections` opens the
two threads, routes reads and writes to them, and skips stored records that cannot be parsed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import IO, TypeVar

from pydantic import BaseModel

from tasques.domain.errors import StoreUnavailable
from tasques.store.sealed_records import load_json
from tasques.store.sealing import Sealer
from tasques.store.sqlite.lock import hold_shared
from tasques.store.sqlite.migrate import migrate
from tasques.store.unreadable import UnreadableRecords

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# (project, queue, id): a task's key.
TaskKey = tuple[str, str, str]

log = logging.getLogger("tasques.store.sqlite")

_BUSY_TIMEOUT = timedelta(seconds=10)
# Primary result codes that mean "not now" (locked by another process, I/O failing, disk full, file gone),
# not a bug: they leave the store as StoreUnavailable.
_UNAVAILABLE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN}
)


def task_key(project: str, queue: str, task_id: str) -> str:
    """A task's record key for `UnreadableRecords` (none of the three names may hold a '/')."""
    return f"tasks/{project}/{queue}/{task_id}"


class SqliteConnections:
    """The lifecycle of the writer and reader threads, and reads, writes and parsing on them."""

    def __init__(self, path: str, busy_timeout: timedelta = _BUSY_TIMEOUT, *, sealer: Sealer | None = None) -> None:
        """`sealer`: encrypts the sensitive fields of what is written, and opens them on reads (see sealed_records.py)."""
        self._path = path
        self.sealer = sealer
        self._busy_ms = max(1, int(busy_timeout.total_seconds() * 1000))
        self._writer: _ConnectionThread | None = None
        self._reader: _ConnectionThread | None = None
        self._in_use: IO[bytes] | None = None  # the shared lock that tells `tasques restore` the file is open
        self.unreadable = UnreadableRecords(log)

    # Lifecycle

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            in_use = await asyncio.to_thread(hold_shared, self._path)
        except BlockingIOError:
            raise StoreUnavailable(f"sqlite: {self._path} is being restored (tasques restore)") from None
        except OSError as e:
            raise StoreUnavailable(f"sqlite: cannot open {self._path}.lock: {e.strerror}") from e
        writer = _ConnectionThread(
            "tasques-sqlite-writer", lambda: _connect(self._path, read_only=False, busy_ms=self._busy_ms)
        )
        try:
            await writer.run(lambda conn: _in_transaction(conn, migrate))
        except BaseException:
            await writer.close()
            in_use.close()
            raise
        self._in_use = in_use
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
        in_use, self._in_use = self._in_use, None
        if in_use is not None:
            in_use.close()  # only now: the connections are closed, so a restore may replace the file

    def _parse(self, model: type[M], key: str, body: str | bytes) -> M | None:
        """Parse a stored record for a loop or a claim. One that cannot be parsed (corrupt, or written by another
        version) is logged once, counted and remembered, and skipped: it never fails the pass for the others."""
        try:
            return load_json(model, body, self.sealer)
        except ValueError as e:  # Unsealable too: a value sealed with an unknown key, or altered
            self.unreadable.note(key, e)
            return None

    def _unreadable_tasks(self) -> set[TaskKey]:
        """The (project, queue, id) of every unreadable task remembered (their record keys are `task_key`)."""
        out: set[TaskKey] = set()
        for key in self.unreadable.task_keys():
            project, queue, task_id = key.split("/", 2)
            out.add((project, queue, task_id))
        return out

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._writer.run(lambda conn: _in_transaction(conn, fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._reader.run(fn)

    async def _delete_oldest(self, table: str, column: str, before_us: int, limit: int) -> int:
        """Delete up to `limit` rows of `table` whose `column` (unix microseconds, indexed) is before `before_us`,
        oldest first; returns how many (the leader's retention sweeps). `table` and `column` are ours, not input."""
        if limit <= 0:
            return 0

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE rowid IN "
                f"(SELECT rowid FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT ?)",
                (before_us, limit),
            )
            return cur.rowcount

        return await self._write(run)


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
