"""huey with SQLite: `SqliteHuey` and its thread consumer, 4 worker threads per process, one database file.

huey deletes a task from its `task` table when a worker dequeues it (one exclusive transaction per task) and
keeps no record of it afterwards (a no-op's result, None, is not stored), so what the driver can see pending
is the queue and the schedule (where retries wait); that a task ran comes from the handlers' records alone.
The storage runs with `synchronous=NORMAL`, as Tasques' SQLite store does (huey's default is SQLite's FULL,
an fsync per commit, and its `fsync=False` is OFF).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from importlib import metadata
from typing import Any

from huey import SqliteHuey
from huey.storage import SqliteStorage

from bench.env import Json, check
from bench.peers import Peer

NAME = "bench"


class _NormalSyncStorage(SqliteStorage):  # type: ignore[misc]
    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def _huey(path: str, record: Callable[[str], None]) -> tuple[Any, Any]:
    huey = SqliteHuey(NAME, filename=path, storage_class=_NormalSyncStorage)

    @huey.task(name="noop")  # type: ignore[untyped-decorator]
    def noop(task_id: str) -> None:
        record(task_id)

    return huey, noop


class _Consumer:
    def __init__(self, path: str, threads: int, record: Callable[[str], None]) -> None:
        huey, _ = _huey(path, record)
        self.consumer = huey.create_consumer(workers=threads, worker_type="thread", periodic=False)

    def start(self) -> None:
        self.consumer.start()

    def stop(self) -> None:
        self.consumer.stop(graceful=True)


def consumer(url: str, threads: int, record: Callable[[str], None]) -> _Consumer:
    return _Consumer(url, threads, record)


class Huey(Peer):
    module = "huey_sqlite"
    threads = 4  # as our 4 claim loops per process (huey's default is 1; 2-4 measured alike here, 8 slower)

    async def start(self) -> None:
        self.path = self.workdir / "huey.db"
        self.huey, self.noop = _huey(str(self.path), lambda _: None)

    async def stop(self) -> None:
        if hasattr(self, "huey"):
            self.huey.storage.close()
        for suffix in ("", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    @property
    def url(self) -> str:
        return str(self.path)

    async def enqueue(self, ids: list[str]) -> str:
        def send() -> None:
            for task_id in ids:
                self.noop(task_id)

        await asyncio.to_thread(send)
        return "one task call per task, one transaction each (huey has no bulk enqueue)"

    async def pending(self) -> int:
        return int(await asyncio.to_thread(self.huey.pending_count))

    async def verify(self, total: int) -> None:
        queued, scheduled = await asyncio.to_thread(lambda: (self.huey.pending_count(), self.huey.scheduled_count()))
        check((queued, scheduled) == (0, 0), f"huey: {queued} tasks queued and {scheduled} scheduled (retries) left")

    def describe(self) -> Json:
        return {
            "label": f"huey {metadata.version('huey')} + SQLite {sqlite3.sqlite_version}",
            "versions": {"huey": metadata.version("huey"), "sqlite": sqlite3.sqlite_version},
            "settings": "SqliteHuey (WAL), synchronous=NORMAL, periodic tasks off",
            "concurrency": f"huey consumer with {self.threads} worker threads per process",
        }


PEER = Huey
