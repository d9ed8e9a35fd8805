"""Contract: the attempt timeline — insert, list in attempt order, delete past a cutoff."""

from __future__ import annotations

from tasques.domain.timeline import Attempt
from tasques.store.base import Store
from tests.contract import ts


def _attempt(task_id: str, n: int, ended_s: float, *, queue: str = "q", ok: bool = True) -> Attempt:
    return Attempt(
        queue=queue,
        task_id=task_id,
        attempt=n,
        worker_id="d",
        started_at=ts(ended_s - 1),
        ended_at=ts(ended_s),
        duration_ms=1000.5,
        success=ok,
        status_code=200 if ok else 500,
        response_headers={"content-type": "text/plain"},
        response_body="x" * 4096,
        error=None,
    )


async def test_attempts_are_listed_per_task_in_order(store: Store) -> None:
    for attempt in (
        _attempt("t", 2, 20),
        _attempt("t", 1, 10, ok=False),
        _attempt("u", 1, 5),
        _attempt("t", 1, 1, queue="r"),
    ):
        await store.insert_attempt(attempt)
    assert await store.list_attempts("q", "t") == [_attempt("t", 1, 10, ok=False), _attempt("t", 2, 20)]
    assert await store.list_attempts("q", "none") == []
    # Recording an attempt again replaces it.
    await store.insert_attempt(_attempt("t", 2, 30))
    assert [a.ended_at for a in await store.list_attempts("q", "t")] == [ts(10), ts(30)]


async def test_delete_attempts_before_a_cutoff(store: Store) -> None:
    for n in range(1, 6):
        await store.insert_attempt(_attempt("t", n, n * 10))
    assert await store.delete_attempts(ts(35), 2) == 2
    assert await store.delete_attempts(ts(35), 10) == 1
    assert await store.delete_attempts(ts(35), 10) == 0
    assert [a.attempt for a in await store.list_attempts("q", "t")] == [4, 5]
