"""Contract: `claimable_queues`, the idle waiters' probe — it finds what a claim would, on every store."""

from __future__ import annotations

from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT as D
from tasques.domain.task import TaskState
from tasques.store.base import QueueProbe, Store
from tests.contract import BACKOFF, claim_as, finished, make_task, ts
from tests.contract.test_store_queues import _http_task

PULL, HTTP = TaskTarget.PULL, TaskTarget.HTTP
NOW = ts(10)


def _pull(*queues: str, excluding: frozenset[str] = frozenset()) -> QueueProbe:
    return QueueProbe(PULL, frozenset(queues), frozenset((D, q) for q in excluding))


async def _fill(store: Store) -> None:
    failed = make_task("failed", "f").claimed("w", ts(1), "c1").failed("w", None, ts(1), BACKOFF)
    await store.insert_tasks(
        [
            make_task("pull", "p"),
            _http_task("http", "h"),
            _http_task("both", "h"),
            make_task("both", "p"),
            make_task("later", "l", run_at=ts(3600)),  # not due yet
            make_task("claimed", "c").claimed("w", ts(1), "c1"),
            finished(make_task("done", "d"), ts(1)),
            failed,  # retried: claimable again once its run_at passes
        ]
    )


async def test_an_empty_store_has_nothing_claimable(store: Store) -> None:
    assert await store.claimable_queues(NOW, [_pull("q"), QueueProbe(HTTP)]) == set()
    assert await store.claimable_queues(NOW, []) == set()


async def test_the_probe_names_the_queues_and_targets_with_claimable_tasks(store: Store) -> None:
    await _fill(store)
    every = ("pull", "http", "both", "later", "claimed", "done", "failed", "none")
    found = await store.claimable_queues(NOW, [_pull(*every), QueueProbe(HTTP)])
    assert found == {(D, "pull", PULL), (D, "both", PULL), (D, "failed", PULL), (D, "http", HTTP), (D, "both", HTTP)}
    assert await store.claimable_queues(NOW, [QueueProbe(HTTP, frozenset({"http", "pull"}))]) == {(D, "http", HTTP)}
    # Left out: queues the caller serves anyway.
    http_less = QueueProbe(HTTP, None, frozenset({(D, "http")}))
    assert await store.claimable_queues(NOW, [http_less]) == {(D, "both", HTTP)}
    less_pull = _pull("pull", "both", excluding=frozenset({"pull"}))
    assert await store.claimable_queues(NOW, [less_pull]) == {(D, "both", PULL)}
    # `now` decides what is due, as for a claim.
    assert (D, "later", PULL) in await store.claimable_queues(ts(3600), [_pull("later")])
    assert await store.claimable_queues(ts(0), [_pull("failed")]) == set()


async def test_the_probe_sees_this_instances_claims_and_new_tasks_at_once(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    assert await store.claimable_queues(NOW, [_pull("q")]) == {(D, "q", PULL)}
    [claimed] = await store.claim_tasks(["q"], NOW, 5, claim_as("w", NOW))
    assert claimed.state is TaskState.CLAIMED
    assert await store.claimable_queues(NOW, [_pull("q")]) == set()  # what a claim now finds: nothing
    assert await store.claim_tasks(["q"], NOW, 5, claim_as("w", NOW)) == []
    await store.update_task(claimed.unclaimed("w", NOW))
    assert await store.claimable_queues(NOW, [_pull("q")]) == {(D, "q", PULL)}
    # And so does a claim, at once (Elasticsearch: no longer excluded as our unrefreshed take-out).
    assert [t.id for t in await store.claim_tasks(["q"], NOW, 5, claim_as("w", NOW))] == ["a"]
