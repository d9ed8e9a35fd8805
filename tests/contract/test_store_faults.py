"""Contract: the fault primitives (`ping`, `find_claimed_by`), outages as `StoreUnavailable`, and, on
Elasticsearch, a retried write that meets its own earlier success."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tasques.domain.errors import StoreUnavailable
from tasques.domain.task import TaskState
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.contract import claim_as, make_task, ts
from tests.contract.conftest import es_settings
from tests.process import delete_es_prefix, free_port


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    await store.ping(timedelta(seconds=2))


async def test_find_claimed_by_returns_exactly_one_claim_calls_tasks(store: Store) -> None:
    for i in range(5):
        await store.insert_task(make_task("q", f"t{i}", priority=10 - i))
    first = await store.claim_tasks(["q"], ts(10), 2, claim_as("w", ts(10)))
    await store.claim_tasks(["q"], ts(11), 1, claim_as("w", ts(11)))
    await store.claim_tasks(["q"], ts(10), 1, claim_as("other", ts(10)))
    found = await store.find_claimed_by("w", ts(10))
    assert sorted(t.id for t in found) == sorted(t.id for t in first) == ["t0", "t1"]
    assert found[0] == await store.get_task("q", found[0].id)  # with its current version
    done = first[0].done("w", None, ts(12))
    await store.update_task(done)
    assert [t.id for t in await store.find_claimed_by("w", ts(10))] == [first[1].id]
    assert await store.find_claimed_by("w", ts(10) + timedelta(microseconds=1)) == []
    assert await store.find_claimed_by("nobody", ts(10)) == []


# SQLite


async def test_sqlite_write_while_locked_elsewhere_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SqliteStore(str(path), busy_timeout=timedelta(milliseconds=200))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.insert_task(make_task("q", "a"))
        assert time.monotonic() - started < 5
        other.execute("ROLLBACK")
        await store.insert_task(make_task("q", "a"))
    finally:
        other.close()
        await store.close()


# Elasticsearch


async def _silent_listener(held: list[asyncio.StreamWriter]) -> tuple[asyncio.Server, int]:
    """A port that accepts connections and never answers: a stalled node, as far as a client can tell."""

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.elasticsearch
async def test_unreachable_or_silent_elasticsearch_is_store_unavailable_within_the_deadline() -> None:
    held: list[asyncio.StreamWriter] = []
    silent, port = await _silent_listener(held)
    for address in (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{port}"):
        settings = es_settings(address, "t-unreachable", request_timeout=timedelta(milliseconds=500))
        store = ElasticsearchStore.from_config(settings)
        try:
            for op in (store.get_task("q", "a"), store.claim_tasks(["q"], ts(0), 1, claim_as("w", ts(0)))):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="elasticsearch did not answer"):
                    await op
                assert time.monotonic() - started < 2.0
            with pytest.raises(StoreUnavailable):
                await store.ping(timedelta(milliseconds=300))
        finally:
            await store.close()
    silent.close()
    for writer in held:
        writer.close()
    await silent.wait_closed()


@pytest.fixture
async def es_pair(elasticsearch_url: str, es_index_prefix: str) -> AsyncIterator[tuple[ElasticsearchStore, ...]]:
    """Two stores (two servers) on one prefix; searches see others' writes only after a refresh (60s)."""
    settings = es_settings(elasticsearch_url, es_index_prefix, refresh_interval=timedelta(seconds=60))
    stores = (ElasticsearchStore.from_config(settings), ElasticsearchStore.from_config(settings))
    try:
        for s in stores:
            await s.open()
        yield stores
    finally:
        for s in stores:
            await s.close()
        await delete_es_prefix(elasticsearch_url, es_index_prefix)


@pytest.mark.elasticsearch
async def test_a_claim_that_meets_its_own_earlier_write_returns_the_task(
    es_pair: tuple[ElasticsearchStore, ...],
) -> None:
    ours, first_attempt = es_pair
    task = await ours.insert_task(make_task("q", "a"))
    await ours.refresher.ensure_fresh()
    change = claim_as("w", ts(10))
    # What a lost-response first attempt of our bulk did; the index does not show it yet, so our claim
    # still sees the task as claimable and its conditional write meets that version as a 409.
    await first_attempt.update_task(change(task))
    [claimed] = await ours.claim_tasks(["q"], ts(10), 1, change)
    stored = await ours.get_task("q", "a")
    assert claimed == stored
    assert stored.state is TaskState.CLAIMED


@pytest.mark.elasticsearch
async def test_an_update_that_meets_its_own_earlier_write_succeeds(es_pair: tuple[ElasticsearchStore, ...]) -> None:
    ours, first_attempt = es_pair
    task = await ours.insert_task(make_task("q", "a"))
    [claimed] = await ours.claim_tasks(["q"], ts(10), 1, claim_as("w", ts(10)))
    done = claimed.done("w", {"ok": True}, ts(11))
    await first_attempt.update_task(done)
    assert await ours.update_task(done) == await ours.get_task("q", "a")
    [result] = await ours.update_tasks([done])
    assert result == await ours.get_task("q", "a")
    assert task.metadata.version != result.metadata.version
