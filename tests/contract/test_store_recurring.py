"""Contract: recurring tasks — insert, get, conditional update, delete, list."""

from __future__ import annotations

import pytest

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.store.base import Store
from tests.contract import make_recurring, ts


async def test_insert_then_get(store: Store) -> None:
    rec = make_recurring("r1")
    inserted = await store.insert_recurring(rec)
    assert inserted.model_dump(exclude={"metadata"}) == rec.model_dump(exclude={"metadata"})
    assert await store.get_recurring("r1") == inserted


async def test_insert_duplicate_is_refused(store: Store) -> None:
    original = await store.insert_recurring(make_recurring("r1", queue="q1"))
    with pytest.raises(AlreadyExists):
        await store.insert_recurring(make_recurring("r1", queue="q2"))
    assert await store.get_recurring("r1") == original


async def test_get_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_recurring("nope")


async def test_update_is_conditional_on_version(store: Store) -> None:
    inserted = await store.insert_recurring(make_recurring("r1"))
    updated = await store.update_recurring(inserted.handled(ts(60)))
    assert updated.last_slot_at == ts(60)
    assert updated.metadata.version != inserted.metadata.version
    assert await store.get_recurring("r1") == updated
    with pytest.raises(VersionConflict):
        await store.update_recurring(inserted.loaded(ts(61)))
    assert await store.get_recurring("r1") == updated
    again = await store.update_recurring(updated.loaded(ts(62)))
    assert again.loaded_at == ts(62)
    assert again.last_slot_at == ts(60)


async def test_update_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_recurring(make_recurring("ghost"))


async def test_delete_returns_it_and_removes_it(store: Store) -> None:
    inserted = await store.insert_recurring(make_recurring("r1"))
    await store.insert_recurring(make_recurring("r2"))
    assert await store.delete_recurring("r1") == inserted
    with pytest.raises(NotFound):
        await store.get_recurring("r1")
    with pytest.raises(NotFound):
        await store.delete_recurring("r1")
    assert [r.id for r in await store.list_recurring()] == ["r2"]
    # The id is free again.
    await store.insert_recurring(make_recurring("r1"))


async def test_list(store: Store) -> None:
    assert await store.list_recurring() == []
    inserted = [await store.insert_recurring(make_recurring(f"r{i}")) for i in range(5)]
    listed = await store.list_recurring()
    assert sorted(listed, key=lambda r: r.id) == inserted
