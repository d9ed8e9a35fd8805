"""Elasticsearch-only checks: mappings, versions, the archive lifecycle, ILM bodies, refresh coalescing and
claim races between separate store instances (separate servers, as far as the cluster can tell)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError

from tasques.config import ElasticsearchConfig
from tasques.domain.errors import AlreadyExists, NotFound, StoreUnavailable
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.store.base import TaskFilter
from tasques.store.elasticsearch.archive import (
    ArchiveIndex,
    ArchiveLifecycle,
    expired_indices,
    ilm_policy_body,
    rollover_conditions,
)
from tasques.store.elasticsearch.cluster import has_ilm
from tasques.store.elasticsearch.documents import _source_of
from tasques.store.elasticsearch.mappings import (
    CLAIM_SORT,
    TASKS_INDEX_SORT,
    TEMPLATE_VERSION,
    IndexNames,
    archive_mappings,
    archive_template_body,
    es_time,
    task_mappings,
)
from tasques.store.elasticsearch.refresh import CoalescedRefresher
from tasques.store.elasticsearch.store import ElasticsearchStore, es_date
from tests.contract import claim_as, finished, make_task, ts
from tests.contract.conftest import StoreFactory

pytestmark = pytest.mark.elasticsearch


def _big_json(n: int) -> dict[str, Any]:
    return {f"key_{i}": {"nested": i, f"deep_{i}": [i, str(i)]} for i in range(n)}


# Mappings and documents


async def test_mapping_is_strict(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store()
    task = await store.insert_task(make_task("q", "a"))
    source = task.model_dump(mode="json", exclude={"metadata": {"version"}})
    with pytest.raises(BadRequestError) as info:
        await raw.index(index=store.names.tasks, id="default/q/b", document={**source, "id": "b", "surprise": 1})
    assert "strict_dynamic_mapping_exception" in str(info.value)
    with pytest.raises(BadRequestError):
        await raw.index(
            index=store.names.tasks, id="default/q/c", document={**source, "id": "c", "metadata": {"version": {"x": 1}}}
        )


async def test_user_json_is_stored_but_never_mapped(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store()
    big = _big_json(2_000)
    task = make_task("q", "big", args=big).claimed("w", ts(1), "c1").reported("w", big, ts(2)).done("w", big, ts(3))
    task = task.model_copy(update={"context": big})
    inserted = await store.insert_task(task)
    assert await store.get_task("q", "big") == inserted
    assert (await store.get_task("q", "big")).args == big

    mapping = (await raw.indices.get_mapping(index=store.names.tasks)).body[store.names.tasks]["mappings"]
    assert mapping == task_mappings()
    assert mapping["properties"]["args"] == {"type": "object", "enabled": False}
    archive = (await raw.indices.get_mapping(index=store.names.archive_alias)).body
    assert [m["mappings"] for m in archive.values()] == [archive_mappings()]


async def test_user_json_round_trips_through_the_store(make_store: StoreFactory) -> None:
    # Exactly: integers past 64 bits stay integers (a JSON library that reads them as floats would lose them).
    store = await make_store()
    args = {"big": 10**30, "neg": -(2**63), "f": 0.1, "text": "é ✓ 𝄞 \u2028", "deep": {"l": [[{}]]}}
    inserted = await store.insert_task(make_task("q", "a", args=args))
    assert (await store.get_task("q", "a")).args == args == inserted.args
    claimed = await store.claim_tasks(["q"], ts(1), 1, claim_as("w", ts(1)))
    assert [t.args for t in claimed] == [args]


async def test_version_is_seq_no_and_primary_term_not_source(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store()
    inserted = await store.insert_task(make_task("q", "a"))
    updated = await store.update_task(inserted.claimed("w", ts(1), "c1"))
    doc = (await raw.get(index=store.names.tasks, id="default/q/a")).body
    assert "version" not in doc["_source"]["metadata"]
    assert (updated.metadata.version.seq_num, updated.metadata.version.primary_term) == (
        doc["_seq_no"],
        doc["_primary_term"],
    )
    assert doc["_source"]["run_at"] == "2024-01-01T00:00:00Z"


async def test_index_settings_come_from_the_config(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store(shards=2, refresh_interval=timedelta(seconds=5))
    got = (await raw.indices.get_settings(index=store.names.tasks)).body[store.names.tasks]["settings"]["index"]
    assert (got["number_of_shards"], got["number_of_replicas"], got["refresh_interval"]) == ("2", "0", "5s")
    # Claims and listings still work across shards.
    await store.insert_tasks([make_task("q", f"t{i}", priority=i) for i in range(20)])
    claimed = await store.claim_tasks(["q"], ts(1), 5, claim_as("w", ts(1)))
    assert [t.id for t in claimed] == ["t19", "t18", "t17", "t16", "t15"]


async def _index_sort(raw: AsyncElasticsearch, index: str) -> dict[str, Any]:
    resp = await raw.indices.get_settings(index=index, name="index.sort.*", flat_settings=True)
    return dict(resp.body.get(index, {}).get("settings", {}))  # nothing at all without an index sort


async def test_the_tasks_index_is_sorted_in_claim_order(
    make_store: StoreFactory, raw: AsyncElasticsearch, caplog: pytest.LogCaptureFixture
) -> None:
    store = await make_store()
    wanted = {"index.sort.field": ["priority", "run_at"], "index.sort.order": ["desc", "asc"]}
    assert await _index_sort(raw, store.names.tasks) == wanted
    with caplog.at_level(logging.WARNING, logger="tasques.store.elasticsearch"):
        await make_store()  # opens the existing, sorted index: nothing to report
    assert not [r for r in caplog.records if "not sorted" in r.getMessage()]
    # The template carries it, so an index recreated behind Tasques' back is sorted too.
    await raw.indices.delete(index=store.names.tasks)
    await raw.index(index=store.names.tasks, id="default/q/x", document=_source_of(make_task("q", "x"), None))
    assert await _index_sort(raw, store.names.tasks) == wanted
    # The claim sort is the index sort, so each segment's search can stop at its first hits.
    assert [next(iter(s.items())) for s in CLAIM_SORT] == list(
        zip(TASKS_INDEX_SORT["sort.field"], TASKS_INDEX_SORT["sort.order"], strict=True)
    )


async def test_an_unsorted_tasks_index_keeps_working_and_is_reported_once_at_open(
    make_store: StoreFactory, raw: AsyncElasticsearch, es_index_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    names = IndexNames(es_index_prefix)
    # As an older Tasques created it: no index sort (which cannot be added to an existing index).
    await raw.indices.create(
        index=names.tasks, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=task_mappings()
    )
    with caplog.at_level(logging.WARNING, logger="tasques.store.elasticsearch"):
        store = await make_store()
        await store.open()  # already open: no second warning
    unsorted = [r for r in caplog.records if "not sorted in claim order" in r.getMessage()]
    assert len(unsorted) == 1
    assert await _index_sort(raw, names.tasks) == {}
    await store.insert_tasks([make_task("q", f"t{i}", priority=i % 3, run_at=ts(i)) for i in range(6)])
    claimed = await store.claim_tasks(["q"], ts(10), 4, claim_as("w", ts(10)))
    assert [t.id for t in claimed] == ["t2", "t5", "t1", "t4"]


async def _external_refreshes(raw: AsyncElasticsearch, index: str) -> int:
    """Refreshes asked for from outside the shard (`refresh=true`, the refresh API); realtime GETs not included."""
    stats = await raw.indices.stats(index=index, metric="refresh")
    return int(stats.body["_all"]["primaries"]["refresh"]["external_total"])


async def test_per_task_writes_never_force_a_refresh(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store(refresh_interval=timedelta(hours=1))
    await raw.indices.put_settings(index=store.names.timeline, settings={"refresh_interval": "-1"})
    tasks, timeline = store.names.tasks, store.names.timeline
    before = (await _external_refreshes(raw, tasks), await _external_refreshes(raw, timeline))
    [a, b] = await store.insert_tasks([make_task("q", "a"), make_task("q", "b")])
    assert isinstance(a, Task)
    assert isinstance(b, Task)
    await store.insert_task(make_task("q", "g"), generated=frozenset({("q", "g")}))
    a = await store.update_task(a.claimed("w", ts(1), "c1"))
    await store.update_tasks([a.done("w", None, ts(2)), b.claimed("w", ts(2), "c2")])
    await store.insert_attempt(
        Attempt(
            queue="q", task_id="a", attempt=1, worker_id="d", started_at=ts(1), ended_at=ts(2), duration_ms=1.0,
            success=True,
        )
    )  # fmt: skip
    assert (await _external_refreshes(raw, tasks), await _external_refreshes(raw, timeline)) == before
    # Reads pay for what they need to see: one coalesced refresh each.
    assert [x.attempt for x in await store.list_attempts("q", "a")] == [1]
    assert await _external_refreshes(raw, timeline) == before[1] + 1
    assert len((await store.list_tasks(TaskFilter(), 10, None)).tasks) == 3
    assert await store.list_attempts("q", "a") != []
    assert (await _external_refreshes(raw, tasks), await _external_refreshes(raw, timeline)) == (
        before[0] + 1,
        before[1] + 1,
    )


async def test_open_is_idempotent_and_tolerates_servers_starting_together(
    make_store: StoreFactory, raw: AsyncElasticsearch, es_index_prefix: str
) -> None:
    stores = await asyncio.gather(*(make_store() for _ in range(4)))
    await stores[0].open()
    inserted = await stores[1].insert_task(make_task("q", "a"))
    again = await make_store()  # the indices exist now: open brings mappings and settings up to date
    assert await again.get_task("q", "a") == inserted
    aliases = (await raw.indices.get_alias(name=f"{es_index_prefix}-archive")).body
    assert aliases == {
        f"{es_index_prefix}-archive-000001": {"aliases": {f"{es_index_prefix}-archive": {"is_write_index": True}}}
    }


def _without_claim_id(mappings: dict[str, Any]) -> dict[str, Any]:
    """A mapping as Tasques put it before claim ids."""
    props = dict(mappings["properties"])
    last = props["last_claimed"]["properties"]
    props["last_claimed"] = {"properties": {k: v for k, v in last.items() if k != "claim_id"}}
    return {**mappings, "properties": props}


async def test_open_adds_the_claim_id_to_indices_an_older_tasques_created(
    make_store: StoreFactory, raw: AsyncElasticsearch, es_index_prefix: str
) -> None:
    names = IndexNames(es_index_prefix)
    await raw.indices.create(index=names.tasks, mappings=_without_claim_id(task_mappings()))
    await raw.indices.create(
        index=names.first_archive_index,
        mappings=_without_claim_id(archive_mappings()),
        aliases={names.archive_alias: {"is_write_index": True}},
    )
    store = await make_store()
    for index in (names.tasks, names.first_archive_index):
        mapping = (await raw.indices.get_mapping(index=index)).body[index]["mappings"]
        assert "claim_id" in mapping["properties"]["last_claimed"]["properties"], index
    # A claim with an id is written live, then archived (both mappings are strict).
    await store.insert_task(make_task("q", "a"))
    [claimed] = await store.claim_tasks(["q"], ts(1), 1, lambda t: t.claimed("w", ts(1), "claim-1"))
    await store.update_task(claimed.done("w", None, ts(2), "claim-1"))
    assert await store.archive_finished(ts(10), 10) == 1
    archived = await store.get_task("q", "a")
    assert archived.last_claimed is not None
    assert archived.last_claimed.claim_id == "claim-1"


async def test_naive_datetimes_are_refused(make_store: StoreFactory) -> None:
    store = await make_store()
    with pytest.raises(ValueError, match="naive"):
        await store.timed_out_tasks(ts(0).replace(tzinfo=None), 10)
    assert es_date(datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC)) == "2024-05-06T07:08:09.000010Z"


# Claims between separate servers


async def test_two_servers_claim_every_task_exactly_once(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    total = 500
    results = await a.insert_tasks(
        [make_task("q", f"t{i:03d}", priority=i % 4, run_at=ts(i % 9)) for i in range(total)]
    )
    assert all(isinstance(r, Task) for r in results)
    await a.refresher.ensure_fresh()  # visible to b's searches too

    names = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]
    per_worker: list[list[Task]] = [[] for _ in names]
    # In rounds, all eight claiming at once: both servers race for the same head of the queue every round
    # (claiming freely, one server's loops could drain it all before the other's first search).
    while True:
        rounds = await asyncio.gather(
            *((a if name[0] == "a" else b).claim_tasks(["q"], ts(10), 13, claim_as(name, ts(10))) for name in names)
        )
        for got, batch in zip(per_worker, rounds, strict=True):
            got.extend(batch)
        if not any(rounds):
            break
    claimed = [t.id for got in per_worker for t in got]
    assert len(claimed) == total
    assert set(claimed) == {f"t{i:03d}" for i in range(total)}
    assert any(per_worker[:4]), "server a claimed nothing"
    assert any(per_worker[4:]), "server b claimed nothing"
    for name, got in zip(names, per_worker, strict=True):
        for task in got:
            stored = await a.get_task("q", task.id)
            assert stored.last_claimed is not None
            assert stored.last_claimed.worker_id == name
            assert stored.attempted == 1
    assert await a.claim_tasks(["q"], ts(10), 100, claim_as("late", ts(10))) == []
    assert await b.claim_tasks(["q"], ts(10), 100, claim_as("late", ts(10))) == []


async def test_a_stale_search_never_hands_out_another_servers_claims(make_store: StoreFactory) -> None:
    # No periodic refresh: searches see only what explicit refreshes exposed.
    a = await make_store(refresh_interval=timedelta(hours=1))
    b = await make_store(refresh_interval=timedelta(hours=1))
    await a.insert_tasks([make_task("q", f"t{i}", priority=i) for i in range(10)])
    taken_by_a = await a.claim_tasks(["q"], ts(1), 5, claim_as("a", ts(1)))  # refreshes, then claims t9..t5
    assert [t.id for t in taken_by_a] == ["t9", "t8", "t7", "t6", "t5"]
    assert b.refresher.refreshes == 0

    # b has written nothing, so it does not refresh: its search still shows all ten tasks queued.
    taken_by_b = await b.claim_tasks(["q"], ts(1), 10, claim_as("b", ts(1)))
    assert [t.id for t in taken_by_b] == ["t4", "t3", "t2", "t1", "t0"]
    assert b.refresher.refreshes == 1  # after losing races, it refreshed and searched again
    for task in taken_by_a:
        stored = await b.get_task("q", task.id)
        assert stored == task
    assert await b.claim_tasks(["q"], ts(1), 10, claim_as("b", ts(1))) == []


async def test_a_claim_conflicting_with_an_update_skips_that_task(make_store: StoreFactory) -> None:
    store = await make_store(refresh_interval=timedelta(hours=1))
    [a, _] = await store.insert_tasks([make_task("q", "a", priority=2), make_task("q", "b", priority=1)])
    assert isinstance(a, Task)
    other = await make_store(refresh_interval=timedelta(hours=1))
    seen: list[str] = []

    def change(task: Task) -> Task:
        seen.append(task.id)
        return task.claimed("w", ts(1), "c1")

    await store.refresher.ensure_fresh()
    # Another server changes "a" after our search could see it, before our conditional write.
    await other.update_task(a.model_copy(update={"priority": 0}))
    claimed = await store.claim_tasks(["q"], ts(1), 1, change)
    assert [t.id for t in claimed] == ["b"]
    assert seen[:2] == ["a", "b"]
    assert (await store.get_task("q", "a")).state is TaskState.QUEUED


# The leader lock between servers


async def test_a_renewal_after_another_server_took_the_lease_over_is_refused(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    assert await a.acquire_lock("leader", "a", ts(0), ts(5))
    assert await a.acquire_lock("leader", "a", ts(1), ts(6))  # a renewal: a conditional write, no read first
    assert not await b.acquire_lock("leader", "b", ts(2), ts(7))
    assert await b.acquire_lock("leader", "b", ts(7), ts(12))  # a's lease ran out
    # a's renewal is conditional on the version a wrote last: it conflicts, a looks, and b's live lease wins.
    assert not await a.acquire_lock("leader", "a", ts(8), ts(13))
    assert not await b.acquire_lock("leader", "other", ts(8), ts(13))
    assert await b.acquire_lock("leader", "b", ts(9), ts(14))
    await b.release_lock("leader", "b")
    assert await a.acquire_lock("leader", "a", ts(10), ts(15))


# Read-your-writes and refresh coalescing


async def test_reads_after_own_writes_share_one_refresh(make_store: StoreFactory) -> None:
    store = await make_store(refresh_interval=timedelta(hours=1))
    assert store.refresher.refreshes == 0
    await store.list_tasks(TaskFilter(), 10, None)
    assert store.refresher.refreshes == 0  # nothing written, nothing to refresh
    await store.insert_tasks([make_task("q", f"t{i}", recurring_task_id="r") for i in range(3)])
    pages, counts, outstanding = await asyncio.gather(
        store.list_tasks(TaskFilter(), 10, None), store.queue_counts(), store.count_outstanding("r")
    )
    assert store.refresher.refreshes == 1
    assert len(pages.tasks) == 3
    assert counts[0].counts == {TaskState.QUEUED: 3}
    assert outstanding == 3
    await store.list_tasks(TaskFilter(), 10, None)
    assert store.refresher.refreshes == 1


async def test_refresher_coalesces_and_orders_refreshes() -> None:
    started: list[int] = []
    gates: list[asyncio.Event] = []

    async def refresh() -> None:
        gate = asyncio.Event()
        gates.append(gate)
        started.append(len(started))
        await gate.wait()

    r = CoalescedRefresher(refresh)
    await r.ensure_fresh()
    assert started == []
    r.wrote()
    early = [asyncio.create_task(r.ensure_fresh()) for _ in range(5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert started == [0]  # five callers, one refresh
    r.wrote()  # lands while that refresh is in flight: it needs a refresh that starts later
    late = [asyncio.create_task(r.ensure_fresh()) for _ in range(3)]
    await asyncio.sleep(0)
    assert started == [0]  # at most one in flight
    gates[0].set()
    await asyncio.gather(*early)
    assert not any(t.done() for t in late)
    for _ in range(3):
        await asyncio.sleep(0)
    assert started == [0, 1]
    gates[1].set()
    await asyncio.gather(*late)
    assert not r.dirty
    await r.ensure_fresh()
    assert started == [0, 1]


async def test_refresher_failure_reaches_every_waiter_and_a_cancelled_waiter_does_not_cancel_it() -> None:
    calls = 0
    gate = asyncio.Event()

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()
        if calls == 1:
            raise RuntimeError("cluster unavailable")

    r = CoalescedRefresher(refresh)
    r.wrote()
    waiters = [asyncio.create_task(r.ensure_fresh()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    gate.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])
    assert r.dirty
    await r.ensure_fresh()  # tries again
    assert calls == 2
    assert not r.dirty


# The archive


async def test_archived_tasks_are_found_and_their_ids_stay_taken_across_servers(
    make_store: StoreFactory, raw: AsyncElasticsearch
) -> None:
    a, b = await make_store(), await make_store()
    original = await a.insert_task(finished(make_task("q", "a"), ts(1)))
    assert await a.archive_finished(ts(10), 10) == 1
    archived = await b.get_task("q", "a")
    assert archived.model_dump(exclude={"metadata"}) == original.model_dump(exclude={"metadata"})
    assert archived.metadata.created_at == original.metadata.created_at
    with pytest.raises(AlreadyExists):
        await b.insert_task(make_task("q", "a", at=ts(20)))
    results = await b.insert_tasks([make_task("q", "a", at=ts(20)), make_task("q", "fresh")])
    assert isinstance(results[0], AlreadyExists)
    assert isinstance(results[1], Task)
    # The refused re-insert left nothing live.
    with pytest.raises(NotFoundError):
        await raw.get(index=a.names.tasks, id="default/q/a")
    hits = (await raw.search(index=a.names.archive_alias, query={"ids": {"values": ["default/q/a"]}})).body["hits"][
        "hits"
    ]
    assert len(hits) == 1
    assert hits[0]["_index"] == a.names.first_archive_index
    assert "archived_at" in hits[0]["_source"]


async def _archive_searches(raw: AsyncElasticsearch, store: ElasticsearchStore) -> int:
    """Query phases the archive indices have run (one per search: each archive index has one shard)."""
    stats = await raw.indices.stats(index=store.names.archive_alias, metric="search")
    return int(stats.body["_all"]["primaries"]["search"]["query_total"])


async def test_only_client_chosen_ids_cost_an_archive_search(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    store = await make_store()
    await store.insert_task(finished(make_task("q", "a"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1
    searches = await _archive_searches(raw, store)
    with pytest.raises(AlreadyExists):
        await store.insert_task(make_task("q", "a", at=ts(20)))
    assert await _archive_searches(raw, store) == searches + 1
    generated = frozenset({("q", "g1"), ("q", "g2")})
    results = await store.insert_tasks([make_task("q", "g1"), make_task("q", "g2")], generated=generated)
    assert all(isinstance(r, Task) for r in results)
    await store.insert_task(make_task("q", "g3"), generated=frozenset({("q", "g3")}))
    assert await _archive_searches(raw, store) == searches + 1
    # Through the service: an id it generates costs no search, a client's archived id is still refused.
    clock = ManualClock(ts(30))
    signals = QueueSignals()
    service = TaskService(store, TaskSettings(), clock, signals, QueueService(store, clock, signals))
    created = await service.create_many(
        [TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k"), TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k")]
    )
    created.append(await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k")))
    assert all(isinstance(t, Task) for t in created)
    assert await _archive_searches(raw, store) == searches + 1
    [refused] = await service.create_many([TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="a")])
    assert isinstance(refused, AlreadyExists)
    assert await _archive_searches(raw, store) == searches + 2


async def test_a_task_that_changes_while_being_archived_stays_live(
    make_store: StoreFactory, raw: AsyncElasticsearch
) -> None:
    store = await make_store()
    done = await store.insert_task(finished(make_task("q", "a"), ts(1)))
    await store.refresher.ensure_fresh()
    stale = (await raw.search(index=store.names.tasks, query={"match_all": {}}, seq_no_primary_term=True)).body["hits"][
        "hits"
    ]
    changed = await store.update_task(done.model_copy(update={"priority": 7}))
    assert await store._archive(stale) == 0
    assert await store.get_task("q", "a") == changed
    await raw.indices.refresh(index=store.names.archive_alias)
    count = (await raw.count(index=store.names.archive_alias)).body["count"]
    assert count == 0


async def test_manual_rollover_and_retention(make_store: StoreFactory, raw: AsyncElasticsearch) -> None:
    if await has_ilm(raw):
        pytest.skip("this cluster has ILM; the manual lifecycle is not used")
    retention = timedelta(days=3)
    store = await make_store(archive_rollover_max_docs=1, archive_retention=retention, maintain_archive_every=None)
    assert store.archive.ilm is False
    names = store.names

    await store.insert_tasks([finished(make_task("q", f"old{i}"), ts(i)) for i in range(3)])
    assert await store.archive_finished(ts(100), 10) == 3
    now = datetime.now(UTC)
    first = await store.maintain_archive(now)
    assert first.rolled_over_to == f"{names.prefix}-archive-000002"
    assert first.deleted == []
    aliases = (await raw.indices.get_alias(name=names.archive_alias)).body
    assert {name: a["aliases"][names.archive_alias].get("is_write_index") for name, a in aliases.items()} == {
        f"{names.prefix}-archive-000001": False,
        f"{names.prefix}-archive-000002": True,
    }

    # New archive writes go to the new write index.
    await store.insert_task(finished(make_task("q", "new"), ts(50)))
    assert await store.archive_finished(ts(100), 10) == 1
    hit = (await raw.search(index=names.archive_alias, query={"ids": {"values": ["default/q/new"]}})).body["hits"][
        "hits"
    ][0]
    assert hit["_index"] == f"{names.prefix}-archive-000002"
    assert (await store.get_task("q", "old0")).state is TaskState.DONE

    # Not yet past retention: nothing deleted. Max docs is met again, so it rolls over once more.
    second = await store.maintain_archive(now + retention - timedelta(minutes=5))
    assert second.rolled_over_to == f"{names.prefix}-archive-000003"
    assert second.deleted == []
    # Past retention for both rolled-over indices; the (empty) write index is never deleted.
    third = await store.maintain_archive(now + retention + timedelta(minutes=5))
    assert third.rolled_over_to is None
    assert third.deleted == [f"{names.prefix}-archive-000001", f"{names.prefix}-archive-000002"]
    remaining = (await raw.indices.get_alias(name=names.archive_alias)).body
    assert list(remaining) == [f"{names.prefix}-archive-000003"]
    with pytest.raises(NotFound):
        await store.get_task("q", "old0")
    # Archiving and inserting keep working on the new write index.
    await store.insert_task(finished(make_task("q", "later"), ts(60)))
    assert await store.archive_finished(ts(100), 10) == 1
    assert (await store.get_task("q", "later")).state is TaskState.DONE


async def test_archive_finished_maintains_the_archive_by_itself(
    make_store: StoreFactory, raw: AsyncElasticsearch
) -> None:
    if await has_ilm(raw):
        pytest.skip("this cluster has ILM; the manual lifecycle is not used")
    store = await make_store(archive_rollover_max_docs=2)
    await store.insert_tasks([finished(make_task("q", f"t{i}"), ts(i)) for i in range(4)])
    assert await store.archive_finished(ts(100), 2) == 2  # then rolls over: max_docs met
    assert await store.archive_finished(ts(100), 2) == 2  # not again within the interval
    aliases = (await raw.indices.get_alias(name=store.names.archive_alias)).body
    assert sorted(aliases) == [f"{store.names.prefix}-archive-000001", f"{store.names.prefix}-archive-000002"]


def test_expired_indices_never_include_the_write_index() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    indices = [
        ArchiveIndex("x-archive-000002", t + timedelta(days=1), is_write_index=False),
        ArchiveIndex("x-archive-000001", t, is_write_index=False),
        ArchiveIndex("x-archive-000003", t + timedelta(days=2), is_write_index=True),
    ]
    retention = timedelta(days=7)
    # 000001 rolled over when 000002 was created (t + 1d); 000002 when 000003 was (t + 2d).
    assert expired_indices(indices, retention, t + timedelta(days=8) - timedelta(seconds=1)) == []
    assert expired_indices(indices, retention, t + timedelta(days=8)) == ["x-archive-000001"]
    assert expired_indices(indices, retention, t + timedelta(days=100)) == ["x-archive-000001", "x-archive-000002"]
    # A write index that is not the newest (an operator moved the alias) is still kept.
    moved = [ArchiveIndex(i.name, i.created_at, is_write_index=i.name.endswith("1")) for i in indices]
    assert expired_indices(moved, retention, t + timedelta(days=100)) == ["x-archive-000002"]


# ILM: the exact requests (the test cluster has no ILM, so they are checked as data and against a fake client)


def _settings(**overrides: Any) -> ElasticsearchConfig:
    return ElasticsearchConfig(index_prefix="tq", replicas=2, **overrides)


def test_ilm_policy_body() -> None:
    settings = _settings(
        archive_rollover_max_age=timedelta(hours=12),
        archive_rollover_max_docs=5_000_000,
        archive_retention=timedelta(days=14),
    )
    assert ilm_policy_body(settings) == {
        "policy": {
            "_meta": {"managed_by": "tasques"},
            "phases": {
                "hot": {"min_age": "0ms", "actions": {"rollover": {"max_age": "12h", "max_docs": 5_000_000}}},
                "delete": {"min_age": "14d", "actions": {"delete": {}}},
            },
        }
    }
    assert rollover_conditions(settings) == {"max_age": "12h", "max_docs": 5_000_000}


def test_archive_template_body() -> None:
    names = IndexNames("tq")
    with_ilm = archive_template_body(names, _settings(), ilm=True)
    assert with_ilm == {
        "index_patterns": ["tq-archive-*"],
        "priority": 200,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "tasques"},
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 2,
                "index.lifecycle.name": "tq-archive-policy",
                "index.lifecycle.rollover_alias": "tq-archive",
            },
            "mappings": archive_mappings(),
        },
    }
    custom = archive_template_body(names, _settings(ilm_policy="company-90d"), ilm=True)
    assert custom["template"]["settings"]["index.lifecycle.name"] == "company-90d"
    without = archive_template_body(names, _settings(ilm_policy="company-90d"), ilm=False)
    assert without["template"]["settings"] == {"number_of_shards": 1, "number_of_replicas": 2}


class _Recorder:
    """Just enough of AsyncElasticsearch for `ArchiveLifecycle.setup`, recording every call."""

    def __init__(self, *, ilm: bool) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ilm = ilm
        self.ilm = self
        self.indices = self

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))

    async def get_status(self, **kwargs: Any) -> dict[str, Any]:
        if not self._ilm:
            raise _no_handler()
        return {"operation_mode": "RUNNING"}

    async def put_lifecycle(self, **kwargs: Any) -> None:
        self._record("put_lifecycle", kwargs)

    async def put_index_template(self, **kwargs: Any) -> None:
        self._record("put_index_template", kwargs)

    async def exists_alias(self, **kwargs: Any) -> bool:
        return False

    async def create(self, **kwargs: Any) -> None:
        self._record("create", kwargs)


def _no_handler() -> Exception:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

    meta = ApiResponseMeta(
        status=400, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "x", 9200)
    )
    return BadRequestError("no handler", meta, {"error": "no handler found for uri [/_ilm/status]"})


@pytest.mark.parametrize("custom", [None, "company-90d"])
async def test_setup_with_ilm_sends_the_policy_and_template(
    custom: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(ilm_policy=custom)
    client = _Recorder(ilm=True)
    lifecycle = ArchiveLifecycle(cast(AsyncElasticsearch, client), IndexNames("tq"), settings)
    with caplog.at_level(logging.INFO, logger="tasques.store.elasticsearch"):
        await lifecycle.setup()
    expected: list[tuple[str, dict[str, Any]]] = []
    if custom is None:
        expected.append(("put_lifecycle", {"name": "tq-archive-policy", "body": ilm_policy_body(settings)}))
    expected += [
        (
            "put_index_template",
            {"name": "tq-archive", "body": archive_template_body(IndexNames("tq"), settings, ilm=True)},
        ),
        ("create", {"index": "tq-archive-000001", "aliases": {"tq-archive": {"is_write_index": True}}}),
    ]
    assert client.calls == expected
    assert lifecycle.ilm is True
    assert f"ILM policy {custom or 'tq-archive-policy'}" in caplog.text
    # Under ILM, maintenance is ILM's job.
    result = await lifecycle.maintain(datetime.now(UTC))
    assert (result.rolled_over_to, result.deleted) == (None, [])
    assert len(client.calls) == len(expected)


async def test_setup_without_ilm_logs_the_manual_mode(caplog: pytest.LogCaptureFixture) -> None:
    client = _Recorder(ilm=False)
    lifecycle = ArchiveLifecycle(cast(AsyncElasticsearch, client), IndexNames("tq"), _settings(ilm_policy="x"))
    with caplog.at_level(logging.INFO, logger="tasques.store.elasticsearch"):
        await lifecycle.setup()
    assert [name for name, _ in client.calls] == ["put_index_template", "create"]
    assert client.calls[0][1]["body"] == archive_template_body(IndexNames("tq"), _settings(), ilm=False)
    assert lifecycle.ilm is False
    assert "no ILM" in caplog.text
    assert "ilm_policy 'x' is set but the cluster has no ILM" in caplog.text


def test_es_time() -> None:
    assert es_time(timedelta(days=30)) == "30d"
    assert es_time(timedelta(hours=36)) == "36h"
    assert es_time(timedelta(minutes=90)) == "90m"
    assert es_time(timedelta(seconds=1)) == "1s"
    assert es_time(timedelta(milliseconds=1500)) == "1500ms"
    assert es_time(timedelta(microseconds=7)) == "7micros"
    assert es_time(timedelta(0)) == "0s"
    assert es_time(timedelta(seconds=-1)) == "-1"


async def test_claim_races_lost_to_another_server_are_reported(make_store: StoreFactory) -> None:
    a = await make_store(refresh_interval=timedelta(hours=1))
    b = await make_store(refresh_interval=timedelta(hours=1))
    lost: list[tuple[str, int]] = []
    a.on_claim_conflicts = b.on_claim_conflicts = lambda queue, count: lost.append((queue, count))
    await a.insert_tasks([make_task("q", f"t{i}", priority=i) for i in range(6)])
    await a.claim_tasks(["q"], ts(1), 4, claim_as("a", ts(1)))
    assert lost == []
    # b's first search still shows a's four claimed tasks as queued: its conditional writes of them lose.
    taken = await b.claim_tasks(["q"], ts(1), 6, claim_as("b", ts(1)))
    assert [t.id for t in taken] == ["t1", "t0"]
    assert sum(n for _, n in lost) == 4
    assert {queue for queue, _ in lost} == {"q"}


async def test_a_closed_store_refuses_calls_before_any_request_and_opens_again(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.insert_tasks([make_task("q", "a")])
    await store.close()
    nodes = store._client.transport.node_pool.all()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get_task("q", "a")
    # Refused before the client was asked: it opened no new connection pool, which nothing would close.
    assert all(getattr(node, "session", None) is None for node in nodes)
    await store.open()
    assert (await store.get_task("q", "a")).id == "a"
