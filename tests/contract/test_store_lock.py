"""Contract: the leader lock — acquire, renew, contend, expire, release."""

from __future__ import annotations

from tasques.store.base import LockHolder, Store
from tests.contract import ts


async def test_acquire_renew_contend_expire(store: Store) -> None:
    assert await store.acquire_lock("leader", "a", ts(0), ts(5))
    assert not await store.acquire_lock("leader", "b", ts(1), ts(6))
    # The holder renews, pushing the expiry out.
    assert await store.acquire_lock("leader", "a", ts(4), ts(9))
    assert not await store.acquire_lock("leader", "b", ts(8), ts(13))
    # Expired at exactly `expires_at`: another holder may take it.
    assert await store.acquire_lock("leader", "b", ts(9), ts(14))
    assert not await store.acquire_lock("leader", "a", ts(10), ts(15))


async def test_holder_can_renew_after_its_own_lease_lapsed(store: Store) -> None:
    assert await store.acquire_lock("leader", "a", ts(0), ts(5))
    assert await store.acquire_lock("leader", "a", ts(100), ts(105))
    assert not await store.acquire_lock("leader", "b", ts(101), ts(106))


async def test_release(store: Store) -> None:
    assert await store.acquire_lock("leader", "a", ts(0), ts(5))
    # Only the holder can release it.
    await store.release_lock("leader", "b")
    assert not await store.acquire_lock("leader", "b", ts(1), ts(6))
    await store.release_lock("leader", "a")
    assert await store.acquire_lock("leader", "b", ts(1), ts(6))
    # Releasing a lock nobody holds is a no-op.
    await store.release_lock("other", "a")


async def test_locks_are_independent_by_name(store: Store) -> None:
    assert await store.acquire_lock("one", "a", ts(0), ts(5))
    assert await store.acquire_lock("two", "b", ts(0), ts(5))
    assert not await store.acquire_lock("two", "a", ts(1), ts(6))


async def test_lock_holder_names_the_live_lease_only(store: Store) -> None:
    assert await store.lock_holder("leader", ts(0)) is None
    assert await store.acquire_lock("leader", "a", ts(0), ts(5))
    assert await store.lock_holder("leader", ts(4)) == LockHolder(holder="a", expires_at=ts(5))
    assert await store.lock_holder("other", ts(4)) is None
    # Expired at exactly `expires_at`, as for acquire_lock.
    assert await store.lock_holder("leader", ts(5)) is None
    assert await store.acquire_lock("leader", "b", ts(6), ts(11))
    assert await store.lock_holder("leader", ts(6)) == LockHolder(holder="b", expires_at=ts(11))
    await store.release_lock("leader", "b")
    assert await store.lock_holder("leader", ts(6)) is None
