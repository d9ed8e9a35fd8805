"""Elasticsearch-only checks of projects: the migration of documents written before projects into `default`,
and the quota holding while two servers (two store instances on one prefix) insert at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from tasques.domain.errors import AlreadyExists, NotFound, QuotaExceeded
from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.store.base import QueueProbe, TaskFilter
from tasques.store.elasticsearch.documents import _source_of
from tasques.store.elasticsearch.mappings import (
    TEMPLATE_VERSION,
    IndexNames,
    JsonDict,
    archive_template_body,
    queues_template_body,
    recurring_template_body,
    tasks_template_body,
    timeline_template_body,
)
from tasques.store.elasticsearch.migrate import migrate_to_projects
from tasques.store.elasticsearch.quota import admission_window
from tasques.store.elasticsearch.store import ElasticsearchStore
from tests.contract import T0, claim_as, finished, make_recurring, make_task, ts
from tests.contract.conftest import StoreFactory, es_settings

pytestmark = pytest.mark.elasticsearch

LEGACY_VERSION = 4  # the last template version before projects


# Migration


def _legacy(value: Any) -> Any:
    """A template body or document as a Tasques before projects wrote it: no `project` (nor `sensitive`)."""
    if isinstance(value, dict):
        return {k: _legacy(v) for k, v in value.items() if k not in ("project", "sensitive")}
    return value


def _legacy_template(body: JsonDict) -> JsonDict:
    return {**_legacy(body), "version": LEGACY_VERSION}


async def _write_legacy(raw: AsyncElasticsearch, prefix: str) -> None:
    """Templates of version 4, and the documents that version wrote, with their old `_id`s."""
    names = IndexNames(prefix)
    settings = es_settings("http://unused", prefix)
    templates = {
        "tasks": tasks_template_body(names, settings),
        "recurring": recurring_template_body(names, settings),
        "queues": queues_template_body(names, settings),
        "timeline": timeline_template_body(names, settings),
        "archive": archive_template_body(names, settings, ilm=False),
    }
    for what, body in templates.items():
        await raw.indices.put_index_template(name=names.template(what), body=_legacy_template(body))
    await raw.indices.create(index=names.first_archive_index, aliases={names.archive_alias: {"is_write_index": True}})
    queued, claimed = make_task("q", "a", priority=5), make_task("q", "b").claimed("w", ts(1), "c1")
    old = {**_source_of(finished(make_task("q", "old"), ts(1)), None), "archived_at": "2024-01-01T00:00:02.000000Z"}
    attempt = Attempt(queue="q", task_id="a", attempt=1, worker_id="d", started_at=ts(1), ended_at=ts(2),
                      duration_ms=1.0, success=True, status_code=200)  # fmt: skip
    docs: list[tuple[str, str, JsonDict]] = [
        (names.tasks, "q/a", _source_of(queued, None)),
        (names.tasks, "q/b", _source_of(claimed, None)),
        (names.first_archive_index, "q/old", old),
        (names.recurring, "every-minute", _source_of(make_recurring(), None)),
        (names.queues, "q", _source_of(QueueSettings.default("q", T0).changed(T0, max_concurrent_dispatches=3), None)),
        (names.timeline, "q/a/0/1", attempt.model_dump(mode="json")),
    ]
    for index, doc_id, source in docs:
        await raw.index(index=index, id=doc_id, document=_legacy(source))
    await raw.indices.refresh(index=f"{prefix}-*")


async def _without_project(raw: AsyncElasticsearch, prefix: str) -> int:
    await raw.indices.refresh(index=f"{prefix}-*")
    query = {"bool": {"must_not": [{"exists": {"field": "project"}}]}}
    return int((await raw.count(index=f"{prefix}-*", query=query)).body["count"])


async def _check_migrated(store: ElasticsearchStore) -> None:
    found = await store.claimable_queues(ts(5), [QueueProbe(TaskTarget.PULL, None, project=None)])
    assert found == {(DEFAULT_PROJECT, "q", TaskTarget.PULL)}
    page = await store.list_tasks(TaskFilter(), 10, None)
    assert sorted((t.project, t.id, t.state) for t in page.tasks) == [
        (DEFAULT_PROJECT, "a", TaskState.QUEUED),
        (DEFAULT_PROJECT, "b", TaskState.CLAIMED),
    ]
    archived = await store.get_task("q", "old")
    assert (archived.project, archived.state) == (DEFAULT_PROJECT, TaskState.DONE)
    assert isinstance((await store.insert_tasks([make_task("q", "old")]))[0], AlreadyExists)
    assert (await store.get_recurring("every-minute")).project == DEFAULT_PROJECT
    assert [r.id for r in await store.list_recurring(project=DEFAULT_PROJECT)] == ["every-minute"]
    assert (await store.get_queue_settings("q")).max_concurrent_dispatches == 3
    assert [a.attempt for a in await store.list_attempts("q", "a")] == [1]
    assert await store.count_project_outstanding(DEFAULT_PROJECT) == 2


async def test_documents_of_a_tasques_before_projects_move_into_the_default_project(
    make_store: StoreFactory, raw: AsyncElasticsearch, es_index_prefix: str
) -> None:
    await _write_legacy(raw, es_index_prefix)
    # Two servers starting at once both migrate: every record ends up exactly once.
    first, second = await asyncio.gather(make_store(), make_store())
    assert await _without_project(raw, es_index_prefix) == 0
    await _check_migrated(first)
    await _check_migrated(second)
    templates = (await raw.indices.get_index_template(name=f"{es_index_prefix}-*")).body["index_templates"]
    assert {t["index_template"]["version"] for t in templates} == {TEMPLATE_VERSION}
    # Versions are sane: the migrated task takes a conditional write, a stale version is refused.
    task = await first.get_task("q", "a")
    [claimed] = await second.claim_tasks(["q"], ts(5), 1, claim_as("w", ts(5)))
    assert claimed.id == "a"
    assert claimed.metadata.version != task.metadata.version
    assert (await first.get_task("q", "a")).state is TaskState.CLAIMED
    # Opening again moves nothing and leaves every document as it is.
    before = (await first.get_task("q", "b")).metadata.version
    names = first.names
    assert await migrate_to_projects(raw, names, first._bulk_raw, 100) == 0
    await make_store()
    assert (await first.get_task("q", "b")).metadata.version == before


async def test_a_migration_that_stopped_half_way_resumes(
    make_store: StoreFactory, raw: AsyncElasticsearch, es_index_prefix: str
) -> None:
    """A run that created the new documents but did not delete the old ones (a crash between the two): the
    next open deletes the old ones and keeps the new, even if they changed since."""
    await _write_legacy(raw, es_index_prefix)
    names = IndexNames(es_index_prefix)
    old = (await raw.get(index=names.tasks, id="q/b")).body["_source"]
    moved_on = {**old, "project": DEFAULT_PROJECT, "state": "done"}  # claimed and finished since the copy
    await raw.indices.put_mapping(index=names.tasks, properties={"project": {"type": "keyword"}})  # as open() does
    await raw.index(index=names.tasks, id="default/q/b", document=moved_on, op_type="create", refresh=True)
    store = await make_store()
    assert await _without_project(raw, es_index_prefix) == 0
    assert (await store.get_task("q", "b")).state is TaskState.DONE
    assert await store.count_project_outstanding(DEFAULT_PROJECT) == 1


# Quota


async def test_the_quota_holds_while_two_servers_insert_at_once(make_store: StoreFactory) -> None:
    """With a long refresh interval each server's inserts stay invisible to the other's searches throughout:
    a count alone would let both fill the same places. Every call is one task, so exactly `quota` are admitted."""
    quota, calls = 20, 40
    a = await make_store(refresh_interval=timedelta(seconds=30))
    b = await make_store(refresh_interval=timedelta(seconds=30))

    async def insert(store: ElasticsearchStore, i: int) -> list[Task | AlreadyExists] | BaseException:
        await asyncio.sleep(i % 8 * 0.003)  # arriving in waves, so the servers' admissions interleave
        try:
            return await store.insert_tasks([make_task("q", f"t{i}", project="alpha")], quota=quota)
        except QuotaExceeded as e:
            return e

    outcomes = await asyncio.gather(*(insert(a if i % 2 else b, i) for i in range(calls)))
    admitted = [i for i, out in enumerate(outcomes) if isinstance(out, list)]
    refused = [i for i, out in enumerate(outcomes) if isinstance(out, QuotaExceeded)]
    assert len(admitted) + len(refused) == calls
    assert len(admitted) == quota
    for i in refused:  # nothing written
        with pytest.raises(NotFound):
            await a.get_task("q", f"t{i}", project="alpha")
    await a.refresher.refresh_if_idle_for(0)
    assert await a.count_project_outstanding("alpha") == quota
    assert await b.count_project_outstanding("alpha") == quota
    # Another project's quota is its own.
    assert isinstance((await b.insert_tasks([make_task("q", "x", project="beta")], quota=1))[0], Task)


async def test_a_refused_slot_holds_its_place_for_the_window_only(make_store: StoreFactory) -> None:
    """A slot refused because its id is archived never became a task, but its admission cannot tell it from a
    task not yet visible: it holds a place until the window passes, never longer."""
    store = await make_store(refresh_interval=timedelta(milliseconds=100))
    window = admission_window(timedelta(milliseconds=100))
    await store.insert_tasks([finished(make_task("q", "old", project="alpha"), ts(1))])
    assert await store.archive_finished(ts(10), 10) == 1
    [refused] = await store.insert_tasks([make_task("q", "old", project="alpha")], quota=1)
    assert isinstance(refused, AlreadyExists)
    with pytest.raises(QuotaExceeded):
        await store.insert_tasks([make_task("q", "new", project="alpha")], quota=1)
    await asyncio.sleep(window.total_seconds())
    assert isinstance((await store.insert_tasks([make_task("q", "new", project="alpha")], quota=1))[0], Task)
    # A duplicate of a live task counts once, by that task's state.
    [dup] = await store.insert_tasks([make_task("q", "new", project="alpha")], quota=2)
    assert isinstance(dup, AlreadyExists)
    assert isinstance((await store.insert_tasks([make_task("q", "more", project="alpha")], quota=2))[0], Task)
    with pytest.raises(QuotaExceeded):
        await store.insert_tasks([make_task("q", "past", project="alpha")], quota=2)
