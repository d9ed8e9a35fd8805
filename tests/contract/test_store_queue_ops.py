"""Contract: the store primitives of dead-letter replay and queue operations (`find_dead`, `restore_archived`,
`delete_tasks`, `purge_finished`, `count_finished_since`, `finished_per_minute`)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime

import pytest

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.task import Task, TaskState, Version
from tasques.domain.timeline import Attempt
from tasques.store.base import Store
from tasques.store.elasticsearch.names import task_doc_id
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tasques.store.sqlite.queue_ops import (
    FINISHED_BY_MINUTE_SQL,
    FINISHED_SINCE_SQL,
    NEXT_FINISHED_QUEUE_SQL,
    find_dead_sql,
)
from tests.contract import claim_as, finished, make_task, ts

P2 = "other"


def _dead(queue: str, task_id: str, at: datetime, *, kind: str = "k", project: str = "default") -> Task:
    return finished(make_task(queue, task_id, kind=kind, retry_times=0, project=project), at, dead=True)


def _ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


async def _find(store: Store, *, archived: bool = False, project: str = "default", **kw: object) -> list[str]:
    args: dict[str, object] = {"queue": None, "kind": None, "since": None, "until": None, "limit": 100}
    args.update(kw)
    return _ids(await store.find_dead(project=project, archived=archived, **args))  # type: ignore[arg-type]


async def test_find_dead_filters_and_orders_by_time_of_death(store: Store) -> None:
    await store.insert_tasks(
        [
            _dead("q", "d3", ts(30)),
            _dead("q", "d1", ts(10)),
            _dead("q2", "d2", ts(20), kind="k2"),
            finished(make_task("q", "done"), ts(5)),
            make_task("q", "queued"),
            make_task("q", "claimed").claimed("w", ts(1), "c1"),
        ]
    )
    await store.insert_tasks([_dead("q", "theirs", ts(15), project=P2)])
    assert await _find(store) == ["d1", "d2", "d3"]
    assert await _find(store, queue="q") == ["d1", "d3"]
    assert await _find(store, kind="k2") == ["d2"]
    assert await _find(store, queue="q", kind="k2") == []
    assert await _find(store, since=ts(20)) == ["d2", "d3"]
    assert await _find(store, until=ts(20)) == ["d1"]
    assert await _find(store, since=ts(10), until=ts(30)) == ["d1", "d2"]
    assert await _find(store, limit=2) == ["d1", "d2"]
    assert await _find(store, limit=0) == []
    assert await _find(store, project=P2) == ["theirs"]
    assert await _find(store, archived=True) == []


async def test_find_dead_sees_live_and_archived_apart(store: Store) -> None:
    await store.insert_tasks(
        [_dead("q", "old", ts(10)), _dead("q2", "old2", ts(12), kind="k2"), _dead("q", "new", ts(100))]
    )
    await store.insert_tasks([_dead("q", "theirs", ts(10), project=P2)])
    assert await store.archive_finished(ts(50), 100) == 3
    assert await _find(store) == ["new"]
    assert await _find(store, archived=True) == ["old", "old2"]
    assert await _find(store, archived=True, queue="q") == ["old"]
    assert await _find(store, archived=True, kind="k2") == ["old2"]
    assert await _find(store, archived=True, since=ts(11)) == ["old2"]
    assert await _find(store, archived=True, project=P2) == ["theirs"]
    [old] = await store.find_dead(
        project="default", queue="q", kind=None, since=None, until=None, limit=1, archived=True
    )
    assert old == await store.get_task("q", "old")  # with the version restore_archived needs


async def _archived_dead(store: Store, task_id: str = "d") -> Task:
    await store.insert_task(_dead("q", task_id, ts(10)))
    assert await store.archive_finished(ts(50), 100) == 1
    return await store.get_task("q", task_id)


async def test_restore_puts_an_archived_task_back_live(store: Store) -> None:
    archived = await _archived_dead(store)
    replayed = archived.replayed_now(ts(100))
    [restored] = await store.restore_archived([replayed])
    assert isinstance(restored, Task)
    assert restored.state is TaskState.QUEUED
    assert restored.replayed == 1
    assert restored.last_claimed is not None
    assert restored.last_claimed.result is not None
    assert restored.last_claimed.result.failure == {"boom": True}  # the failure stays visible
    assert await store.get_task("q", "d") == restored
    assert await _find(store, archived=True) == []
    # Live again: listed, counted, claimable, and changed by conditional writes.
    [counts] = await store.queue_counts()
    assert counts.counts.get(TaskState.QUEUED) == 1
    [claimed] = await store.claim_tasks(["q"], ts(101), 10, claim_as("w", ts(101)))
    assert claimed.id == "d"
    assert claimed.attempted == 1
    # Once live, its id is taken as any live id is.
    with pytest.raises(AlreadyExists):
        await store.insert_task(make_task("q", "d"))


async def test_restore_again_is_refused_harmlessly(store: Store) -> None:
    archived = await _archived_dead(store)
    replayed = archived.replayed_now(ts(100))
    [first] = await store.restore_archived([replayed])
    assert isinstance(first, Task)
    [again] = await store.restore_archived([replayed])
    assert isinstance(again, NotFound)
    [other] = await store.restore_archived([archived.replayed_now(ts(200))])
    assert isinstance(other, NotFound)
    assert await store.get_task("q", "d") == first


async def test_restore_checks_the_archived_version_and_each_slot_alone(store: Store) -> None:
    archived = await _archived_dead(store)
    version = archived.metadata.version
    stale = archived.model_copy(
        update={"metadata": archived.metadata.model_copy(update={"version": Version(seq_num=version.seq_num + 7)})}
    )
    missing = make_task("q", "never")
    got = await store.restore_archived([stale.replayed_now(ts(100)), missing])
    assert isinstance(got[0], VersionConflict)
    assert isinstance(got[1], NotFound)
    assert (await store.get_task("q", "d")).state is TaskState.DEAD  # still archived, untouched
    assert await _find(store, archived=True) == ["d"]
    assert await store.restore_archived([]) == []


async def _copy_archived_back(store: Store, archived: Task) -> None:
    """Put the archived copy back after a restore: what a crash between a restore's two steps leaves."""
    if isinstance(store, SqliteStore):
        with contextlib.closing(sqlite3.connect(store._path)) as conn, conn:
            conn.execute(
                "INSERT INTO archived_tasks SELECT * FROM saved_archived WHERE project = ? AND queue = ? AND id = ?",
                (archived.project, archived.queue, archived.id),
            )
        return
    assert isinstance(store, ElasticsearchStore)
    index, source = _saved_es[archived.id]
    await store._client.index(
        index=index, id=task_doc_id(archived.project, archived.queue, archived.id), document=source, refresh=True
    )


_saved_es: dict[str, tuple[str, dict[str, object]]] = {}


async def _save_archived(store: Store, archived: Task) -> None:
    if isinstance(store, SqliteStore):
        with contextlib.closing(sqlite3.connect(store._path)) as conn, conn:
            conn.execute("CREATE TABLE saved_archived AS SELECT * FROM archived_tasks")
        return
    assert isinstance(store, ElasticsearchStore)
    doc_id = task_doc_id(archived.project, archived.queue, archived.id)
    resp = await store._client.search(index=store.names.archive_alias, query={"ids": {"values": [doc_id]}})
    [hit] = resp.body["hits"]["hits"]
    _saved_es[archived.id] = (hit["_index"], hit["_source"])


async def test_a_restore_cut_short_is_finished_by_the_same_restore(store: Store) -> None:
    archived = await _archived_dead(store)
    await _save_archived(store, archived)
    replayed = archived.replayed_now(ts(100))
    [restored] = await store.restore_archived([replayed])
    assert isinstance(restored, Task)
    await _copy_archived_back(store, archived)
    # Both copies now: get_task prefers the live one.
    assert (await store.get_task("q", "d")).state is TaskState.QUEUED
    [stale] = await store.find_dead(project="default", queue=None, kind=None, since=None, until=None, limit=10,
                                    archived=True)  # fmt: skip
    # Another restore of it is refused: a live task holds the key.
    [refused] = await store.restore_archived([stale.replayed_now(ts(200))])
    assert isinstance(refused, AlreadyExists)
    assert await _find(store, archived=True) == ["d"]
    # The same restore again recognises its live copy and removes the archived one.
    [again] = await store.restore_archived([stale.replayed_now(ts(100))])
    assert isinstance(again, Task)
    assert again.state is TaskState.QUEUED
    assert await _find(store, archived=True) == []
    assert (await store.get_task("q", "d")).metadata.modified_at == ts(100)


async def test_delete_tasks_is_conditional_on_the_version(store: Store) -> None:
    a, b, c = await store.insert_tasks([make_task("q", "a"), make_task("q", "b"), make_task("q", "c")])
    assert isinstance(a, Task)
    assert isinstance(b, Task)
    assert isinstance(c, Task)
    await store.update_task(b.run_now(ts(5)))
    got = await store.delete_tasks([a, b, make_task("q", "missing")])
    assert got[0] == a
    assert isinstance(got[1], VersionConflict)
    assert isinstance(got[2], NotFound)
    with pytest.raises(NotFound):
        await store.get_task("q", "a")
    assert (await store.get_task("q", "b")).run_at == ts(5)
    claimed = await store.claim_tasks(["q"], ts(10), 10, claim_as("w", ts(10)))
    assert sorted(_ids(claimed)) == ["b", "c"]
    assert await store.delete_tasks([]) == []
    [again] = await store.delete_tasks([a])
    assert isinstance(again, NotFound)


def _attempt(task_id: str, *, queue: str = "q", project: str = "default") -> Attempt:
    return Attempt(
        queue=queue, task_id=task_id, project=project, attempt=1, worker_id="d", started_at=ts(1), ended_at=ts(2),
        duration_ms=1.0, success=True,
    )  # fmt: skip


async def test_purge_removes_the_queues_finished_history_live_and_archived(store: Store) -> None:
    await store.insert_tasks(
        [
            finished(make_task("q", "old-done"), ts(1)),
            _dead("q", "old-dead", ts(2)),
            finished(make_task("q", "done"), ts(100)),
            _dead("q", "dead", ts(100)),
            make_task("q", "cancelled").cancelled(ts(100)),
            make_task("q", "queued"),
            make_task("q", "claimed").claimed("w", ts(1), "c1"),
            finished(make_task("q2", "elsewhere"), ts(100)),
        ]
    )
    await store.insert_tasks([finished(make_task("q", "theirs", project=P2), ts(100))])
    assert await store.archive_finished(ts(50), 100) == 2
    for task_id in ("old-done", "done", "queued", "claimed"):
        await store.insert_attempt(_attempt(task_id))
    await store.insert_attempt(_attempt("elsewhere", queue="q2"))
    await store.insert_attempt(_attempt("theirs", project=P2))

    assert await store.purge_finished("q") == 5
    for task_id in ("old-done", "old-dead", "done", "dead", "cancelled"):
        with pytest.raises(NotFound):
            await store.get_task("q", task_id)
    assert (await store.get_task("q", "queued")).state is TaskState.QUEUED
    assert (await store.get_task("q", "claimed")).state is TaskState.CLAIMED
    assert (await store.get_task("q2", "elsewhere")).state is TaskState.DONE
    assert (await store.get_task("q", "theirs", project=P2)).state is TaskState.DONE
    # The attempts of the purged tasks go; those of tasks still there stay.
    assert await store.list_attempts("q", "old-done") == []
    assert await store.list_attempts("q", "done") == []
    assert len(await store.list_attempts("q", "queued")) == 1
    assert len(await store.list_attempts("q", "claimed")) == 1
    assert len(await store.list_attempts("q2", "elsewhere")) == 1
    assert len(await store.list_attempts("q", "theirs", project=P2)) == 1
    assert await _find(store, archived=True) == []
    # The purged ids are free again.
    await store.insert_task(make_task("q", "old-done"))
    assert await store.purge_finished("q") == 0


async def test_count_finished_since(store: Store) -> None:
    await store.insert_tasks(
        [
            finished(make_task("q", "done"), ts(10)),
            _dead("q", "dead", ts(20)),
            make_task("q", "cancelled").cancelled(ts(30)),
            make_task("q", "queued", at=ts(40)),
            finished(make_task("q2", "other-queue"), ts(30)),
        ]
    )
    await store.insert_tasks([_dead("q", "theirs", ts(30), project=P2)])
    assert await store.count_finished_since("q", ts(15)) == 2
    assert await store.count_finished_since("q", ts(10)) == 3
    assert await store.count_finished_since("q", ts(31)) == 0
    assert await store.count_finished_since("q", ts(0), project=P2) == 1
    assert await store.count_finished_since("none", ts(0)) == 0


async def test_finished_per_minute_by_queue_and_minute(store: Store) -> None:
    await store.insert_tasks(
        [
            finished(make_task("q", "old", at=ts(-60)), ts(-30)),
            finished(make_task("q", "done"), ts(10)),
            _dead("q", "dead", ts(70)),
            make_task("q", "cancelled").cancelled(ts(119.9)),
            finished(make_task("q", "later"), ts(130)),
            make_task("q", "queued", at=ts(40)),
            make_task("q", "claimed").claimed("w", ts(50), "c1"),
            finished(make_task("q2", "other-queue"), ts(65)),
        ]
    )
    await store.insert_tasks([_dead("q", "theirs", ts(70), project=P2), make_task("q3", "theirs-queued", project=P2)])
    assert await store.finished_per_minute(ts(0), project="default") == {
        "q": {ts(0): 1, ts(60): 2, ts(120): 1},
        "q2": {ts(60): 1},
    }
    assert await store.finished_per_minute(ts(60), project="default") == {
        "q": {ts(60): 2, ts(120): 1},
        "q2": {ts(60): 1},
    }
    assert await store.finished_per_minute(ts(-60), project="default") == {
        "q": {ts(-60): 1, ts(0): 1, ts(60): 2, ts(120): 1},
        "q2": {ts(60): 1},
    }
    assert await store.finished_per_minute(ts(0), project=P2) == {"q": {ts(60): 1}}
    assert await store.finished_per_minute(ts(180), project="default") == {}
    assert await store.finished_per_minute(ts(0), project="nobody") == {}


def _plan(store: SqliteStore, sql: str, params: tuple[object, ...]) -> str:
    with contextlib.closing(sqlite3.connect(store._path)) as conn:
        return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize("archived", [False, True])
@pytest.mark.parametrize("queue", [False, True])
async def test_sqlite_queue_ops_queries_seek_their_index(store: Store, archived: bool, queue: bool) -> None:
    if not isinstance(store, SqliteStore):
        return  # SQLite's query plans only
    sql = find_dead_sql(archived=archived, queue=queue, since=True, until=True, kind=True)
    params: tuple[object, ...] = ("p", *(("q",) if queue else ()), 0, 10, "k", 10)
    plan = _plan(store, sql, params)
    index = ("archived_dead" if archived else "tasks_dead") + ("_by_queue" if queue else "")
    assert f"USING INDEX {index} (project=?" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    plan = _plan(store, FINISHED_SINCE_SQL, ("p", "q", 0))
    assert "INDEX tasks_finished_by_queue (project=? AND queue=? AND modified_at>?)" in plan, plan
    plan = _plan(store, FINISHED_BY_MINUTE_SQL, ("p", "q", 0))
    assert "INDEX tasks_finished_by_queue (project=? AND queue=? AND modified_at>?)" in plan, plan
    plan = _plan(store, NEXT_FINISHED_QUEUE_SQL, ("p", ""))
    assert "INDEX tasks_finished_by_queue (project=? AND queue>?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
