"""PgQueuer with PostgreSQL (asyncpg): a `QueueManager` per worker process, on its defaults.

PgQueuer is asyncio: one event loop per process dequeues batches of `BATCH` jobs (its default) and runs
their handlers concurrently. A finished job is deleted from the `pgqueuer` table and logged in
`pgqueuer_log` as `successful` (buffered, flushed per batch), so that table is what is still pending.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from importlib import metadata

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

from bench.env import Json, check
from bench.peers import Peer
from bench.peers.servers import Postgres

BATCH = 10  # QueueManager.run's default batch_size
CHUNK = 1_000  # jobs per bulk enqueue statement


class _Consumer:
    """The QueueManager on its own event loop thread, so the worker protocol stays the same as the others'.

    It connects before `start` (so the connection's PostgreSQL backend exists when the CPU meter starts) and
    runs once `start` releases it.
    """

    def __init__(self, dsn: str, record: Callable[[str], None]) -> None:
        self.dsn = dsn
        self.record = record
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._thread, name="pgqueuer")
        self.thread.start()
        self.connected.wait(60)
        if self.error is not None or not self.connected.is_set():
            raise RuntimeError(f"PgQueuer could not connect: {self.error!r}") from self.error

    def _thread(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as e:
            self.error = e
            self.connected.set()

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            self.qm = QueueManager(Queries(AsyncpgDriver(conn)))
            record = self.record

            @self.qm.entrypoint("noop")
            async def noop(job: Job) -> None:
                record((job.payload or b"").decode())

            self.loop = asyncio.get_running_loop()
            self.go = asyncio.Event()
            self.connected.set()
            await self.go.wait()
            if not self.qm.shutdown.is_set():
                await self.qm.run(batch_size=BATCH)
        finally:
            await conn.close()

    def start(self) -> None:
        self.loop.call_soon_threadsafe(self.go.set)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.qm.shutdown.set)
        self.loop.call_soon_threadsafe(self.go.set)
        self.thread.join(60)
        if self.thread.is_alive() or self.error is not None:
            raise RuntimeError(f"PgQueuer did not stop cleanly: {self.error!r}")


def consumer(url: str, threads: int, record: Callable[[str], None]) -> _Consumer:
    del threads  # PgQueuer runs handlers on its event loop, BATCH at a time
    return _Consumer(url, record)


class PgQueuer(Peer):
    module = "pgqueuer_postgres"
    threads = 1  # one event loop per process; its concurrency is the dequeue batch

    async def start(self) -> None:
        self.postgres = Postgres(self.workdir / "postgres.log")
        await asyncio.to_thread(self.postgres.start)
        self.conn = await asyncpg.connect(self.postgres.dsn)
        self.queries = Queries(AsyncpgDriver(self.conn))
        await self.queries.install()

    async def stop(self) -> None:
        if hasattr(self, "conn"):
            await self.conn.close()
        if hasattr(self, "postgres"):
            await asyncio.to_thread(self.postgres.stop)

    @property
    def url(self) -> str:
        return self.postgres.dsn

    def server_pids(self) -> dict[str, list[int]]:
        return {"postgres": self.postgres.pids()}

    async def enqueue(self, ids: list[str]) -> str:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            await self.queries.enqueue(["noop"] * len(chunk), [i.encode() for i in chunk], [0] * len(chunk))
        return f"`Queries.enqueue` with lists, {CHUNK:,} jobs per statement"

    async def pending(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM pgqueuer"))

    async def verify(self, total: int) -> None:
        left = await self.pending()
        rows = await self.conn.fetch(
            "SELECT status::text, count(*), count(DISTINCT job_id) FROM pgqueuer_log GROUP BY 1"
        )
        log = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        check(left == 0, f"PgQueuer: {left} jobs left in the queue")
        check(log.get("successful") == (total, total), f"PgQueuer log: {log}, expected {total} successful")
        unexpected = set(log) - {"queued", "picked", "successful"}
        check(not unexpected, f"PgQueuer log has {unexpected} jobs: {log}")

    def describe(self) -> Json:
        return {
            "label": f"PgQueuer {metadata.version('pgqueuer')} + PostgreSQL {self.postgres.version}",
            "versions": {
                "pgqueuer": metadata.version("pgqueuer"),
                "asyncpg": metadata.version("asyncpg"),
                "postgresql": self.postgres.version,
            },
            "settings": f"QueueManager defaults (durability 'durable'); PostgreSQL {self.postgres.settings()}",
            "concurrency": f"one QueueManager per process, dequeue batches of {BATCH}, handlers concurrent on its loop",
        }


PEER = PgQueuer
