"""Scenario 5, the limits: what the storage underneath can do with no Tasques server in between.

* **raw SQLite**: per task 1 insert + 2 updates (claim, done), batched 1,000 tasks per transaction, on
  Tasques' own schema and connection settings (WAL, synchronous=NORMAL, busy timeout: `_connect`), rows
  shaped exactly as the store writes them.
* **raw Elasticsearch `_bulk`**: per task 3 writes (create, claim, done; the updates conditional on
  `if_seq_no`/`if_primary_term`, as the store's are), 1,000 tasks per bulk, two bulks in flight, into an
  index with Tasques' mapping.
* **raw Elasticsearch claim loop**: refresh → search 100 claimable tasks (the store's claim query and sort) →
  conditional bulk claim → conditional bulk done, round after round until the backlog is gone.

Documents and rows are real task JSON (dumped from the domain model once per state; only ids change).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bench.context import Context, per_task
from bench.env import Json, check
from bench.server import refresh_index, remove_sqlite_files
from tasques.config import ElasticsearchConfig
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import NewTask, Task
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.elasticsearch.mappings import task_doc_id
from tasques.store.elasticsearch.store import es_date
from tasques.store.sqlite.schema import DDL, TASK_COLUMNS
from tasques.store.sqlite.store import _connect
from tests.process import delete_es_prefix

QUEUE = "raw"
BATCH = 1_000
LOOP_BATCH = 100
ES_PARALLEL = 2
_ID = "@@ID@@"
_WORKER = "raw-worker"
_BULK_FILTER = "filter_path=items.*.status,items.*._seq_no,items.*._primary_term,items.*.error.type"

_INSERT_SQL = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * len(TASK_COLUMNS.split(',')))})"
# The store's update: every non-key column, conditional on the version read.
_UPDATE_SQL = (
    "UPDATE tasks SET state = ?, priority = ?, run_at = ?, times_out_at = ?, kind = ?, recurring_task_id = ?, "
    "created_at = ?, modified_at = ?, seq = ?, body = ? WHERE project = ? AND queue = ? AND id = ? AND seq = ?"
)


def _states() -> tuple[Task, Task, Task]:
    """One task in each state a task goes through: queued, claimed, done."""
    now = datetime.now(UTC)
    new = NewTask(
        queue=QUEUE,
        kind="noop",
        id=_ID,
        run_at=now,
        retry_times=25,
        processing_timeout=timedelta(minutes=30),
        args={"n": 0},
    )
    queued = Task.create(new, now)
    claimed = queued.claimed(_WORKER, now, uuid.uuid4().hex)
    return queued, claimed, claimed.done(_WORKER, None, now)


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# -- SQLite --------------------------------------------------------------------------------------------------


def _raw_sqlite(path: Path, tasks: int) -> tuple[float, int]:
    conn = _connect(str(path), read_only=False)
    try:
        for statement in DDL:
            conn.execute(statement)
        states = _states()
        bodies = [t.model_dump_json() for t in states]
        run_at, created = _micros(states[0].run_at), _micros(states[0].metadata.created_at)
        claim = states[1].last_claimed
        assert claim is not None
        times_out = _micros(claim.times_out_at)
        t0 = time.perf_counter()
        for start in range(0, tasks, BATCH):
            ids = [f"t{i}" for i in range(start, min(start + BATCH, tasks))]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                _INSERT_SQL,
                [
                    (
                        DEFAULT_PROJECT,
                        QUEUE,
                        i,
                        "queued",
                        0,
                        run_at,
                        None,
                        "noop",
                        None,
                        created,
                        created,
                        1,
                        bodies[0].replace(_ID, i),
                        "pull",
                        None,  # batch_id
                    )
                    for i in ids
                ],
            )
            conn.execute("COMMIT")
            for seq, (state, body) in enumerate((("claimed", bodies[1]), ("done", bodies[2])), start=1):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    _UPDATE_SQL,
                    [
                        (
                            state,
                            0,
                            run_at,
                            times_out,
                            "noop",
                            None,
                            created,
                            created,
                            seq + 1,
                            body.replace(_ID, i),
                            DEFAULT_PROJECT,
                            QUEUE,
                            i,
                            seq,
                        )
                        for i in ids
                    ],
                )
                conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        done = int(conn.execute("SELECT count(*) FROM tasks WHERE state = 'done' AND seq = 3").fetchone()[0])
        return elapsed, done
    finally:
        conn.close()


async def raw_sqlite(ctx: Context) -> Json:
    tasks = ctx.params.raw_sqlite_tasks
    path = ctx.workdir / f"raw-{uuid.uuid4().hex[:6]}.db"
    meter = ctx.meter("sqlite", None).start()
    try:
        elapsed, done = await asyncio.to_thread(_raw_sqlite, path, tasks)
    finally:
        remove_sqlite_files(path)
    cpu = meter.stop()
    check(done == tasks, f"raw SQLite: {done} of {tasks} tasks done")
    out = {
        "what": "1 insert + 2 updates per task, 1,000 tasks per transaction, WAL, synchronous=NORMAL",
        "tasks": tasks,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "cpu": cpu,
        **per_task(cpu, tasks),
        "verified": True,
    }
    ctx.log(f"raw SQLite: {out['tasks_per_s']:.0f} tasks/s")
    return out


# -- Elasticsearch -------------------------------------------------------------------------------------------


class _RawEs:
    """A Tasques-mapped tasks index under its own prefix, written with pre-rendered `_bulk` bodies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
        self.index = f"{self.prefix}-tasks"
        self.sources = [
            json.dumps(t.model_dump(mode="json", exclude={"metadata": {"version"}}), separators=(",", ":"))
            for t in _states()
        ]

    async def __aenter__(self) -> _RawEs:
        settings = ElasticsearchConfig(addresses=[self.url], index_prefix=self.prefix, replicas=0)
        store = ElasticsearchStore.from_config(settings, maintain_archive_every=None)
        try:
            await store.open()  # Tasques' templates, mapping and settings
        finally:
            await store.close()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await delete_es_prefix(self.url, self.prefix)

    async def bulk(self, lines: list[str], expect: int, action: str) -> list[tuple[int, int]]:
        """One `_bulk`; every item must succeed. Returns each item's (seq_no, primary_term)."""
        body = ("\n".join(lines) + "\n").encode()
        async with self.http.post(
            f"{self.url}/_bulk?{_BULK_FILTER}", data=body, headers={"Content-Type": "application/x-ndjson"}
        ) as resp:
            check(resp.status == 200, f"raw _bulk answered {resp.status}")
            items = [next(iter(item.values())) for item in (await resp.json())["items"]]
        check(len(items) == expect, f"raw _bulk {action}: {len(items)} items for {expect}")
        bad = [it for it in items if it["status"] not in (200, 201)]
        check(not bad, f"raw _bulk {action}: {len(bad)} of {expect} failed, e.g. {bad[:1]}")
        return [(int(it["_seq_no"]), int(it["_primary_term"])) for it in items]

    def create_lines(self, ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for i in ids:
            out.append(json.dumps({"create": {"_index": self.index, "_id": task_doc_id(DEFAULT_PROJECT, QUEUE, i)}}))
            out.append(self.sources[0].replace(_ID, i))
        return out

    def update_lines(self, ids: Sequence[str], versions: Sequence[tuple[int, int]], state: int) -> list[str]:
        out: list[str] = []
        for i, (seq_no, term) in zip(ids, versions, strict=True):
            action = {
                "_index": self.index,
                "_id": task_doc_id(DEFAULT_PROJECT, QUEUE, i),
                "if_seq_no": seq_no,
                "if_primary_term": term,
            }
            out.append(json.dumps({"index": action}))
            out.append(self.sources[state].replace(_ID, i))
        return out

    async def count_state(self, state: str) -> int:
        await refresh_index(self.url, self.index)
        async with self.http.post(f"{self.url}/{self.index}/_count", json={"query": {"term": {"state": state}}}) as r:
            return int((await r.json())["count"])


def _shares(tasks: int, parallel: int) -> list[list[range]]:
    batches = [range(s, min(s + BATCH, tasks)) for s in range(0, tasks, BATCH)]
    return [batches[k::parallel] for k in range(parallel)]


async def raw_es_bulk(ctx: Context) -> Json:
    assert ctx.es is not None
    tasks = ctx.params.raw_es_bulk_tasks
    async with _RawEs(ctx.es.url) as es:

        async def pipeline(batches: list[range]) -> None:
            for batch in batches:
                ids = [f"t{i}" for i in batch]
                versions = await es.bulk(es.create_lines(ids), len(ids), "create")
                versions = await es.bulk(es.update_lines(ids, versions, 1), len(ids), "claim")
                await es.bulk(es.update_lines(ids, versions, 2), len(ids), "done")

        meter = ctx.meter("elasticsearch", None).start()
        t0 = time.perf_counter()
        await asyncio.gather(*(pipeline(share) for share in _shares(tasks, ES_PARALLEL)))
        elapsed = time.perf_counter() - t0
        cpu = meter.stop()
        done = await es.count_state("done")
    check(done == tasks, f"raw Elasticsearch _bulk: {done} of {tasks} tasks done")
    out = {
        "what": "create + conditional claim + conditional done per task, 1,000 per _bulk, 2 bulks in flight",
        "tasks": tasks,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "cpu": cpu,
        **per_task(cpu, tasks),
        "verified": True,
    }
    ctx.log(f"raw Elasticsearch _bulk: {out['tasks_per_s']:.0f} tasks/s")
    return out


async def raw_es_loop(ctx: Context) -> Json:
    assert ctx.es is not None
    tasks = ctx.params.raw_es_loop_tasks
    async with _RawEs(ctx.es.url) as es:
        for start in range(0, tasks, BATCH):
            ids = [f"t{i}" for i in range(start, min(start + BATCH, tasks))]
            await es.bulk(es.create_lines(ids), len(ids), "create")
        await refresh_index(es.url, es.index)
        claimed: set[str] = set()
        rounds = 0
        meter = ctx.meter("elasticsearch", None).start()
        t0 = time.perf_counter()
        while True:
            await refresh_index(es.url, es.index)
            query = {
                "bool": {
                    "filter": [
                        {"terms": {"queue": [QUEUE]}},
                        {"terms": {"state": ["failed", "queued"]}},
                        {"range": {"run_at": {"lte": es_date(datetime.now(UTC))}}},
                    ]
                }
            }
            search = {
                "query": query,
                "sort": [{"priority": "desc"}, {"run_at": "asc"}],
                "size": LOOP_BATCH,
                "seq_no_primary_term": True,
                "track_total_hits": False,
            }
            async with es.http.post(f"{es.url}/{es.index}/_search", json=search) as resp:
                check(resp.status == 200, f"raw search answered {resp.status}")
                hits = (await resp.json())["hits"]["hits"]
            if not hits:
                break
            rounds += 1
            ids = [str(h["_source"]["id"]) for h in hits]
            check(not claimed.intersection(ids), "raw loop: a search returned a task claimed already")
            claimed.update(ids)
            versions = [(int(h["_seq_no"]), int(h["_primary_term"])) for h in hits]
            versions = await es.bulk(es.update_lines(ids, versions, 1), len(ids), "claim")
            await es.bulk(es.update_lines(ids, versions, 2), len(ids), "done")
        elapsed = time.perf_counter() - t0
        cpu = meter.stop()
        done = await es.count_state("done")
    check(len(claimed) == tasks and done == tasks, f"raw loop: {len(claimed)} claimed, {done} done of {tasks}")
    out = {
        "what": "refresh -> search 100 -> conditional bulk claim -> conditional bulk done, one loop",
        "tasks": tasks,
        "rounds": rounds,
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "ms_per_round": round(elapsed * 1000 / max(rounds, 1), 2),
        "cpu": cpu,
        **per_task(cpu, tasks),
        "verified": True,
    }
    ctx.log(f"raw Elasticsearch claim loop: {out['tasks_per_s']:.0f} tasks/s")
    return out


async def run(ctx: Context, kind: str) -> Json:
    if kind == "sqlite":
        return {"raw_sqlite": await raw_sqlite(ctx)}
    return {"raw_es_bulk": await raw_es_bulk(ctx), "raw_es_loop": await raw_es_loop(ctx)}
