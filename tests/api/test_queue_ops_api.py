"""Queue operations over HTTP: GET /queues/{queue}, PUT /queues/{queue}/run-now, DELETE /queues/{queue}."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasques.api.keys import TASKS
from tasques.domain.timeline import Attempt
from tasques.service.clock import ManualClock
from tests.api.conftest import (
    OTHER_WORKER,
    WORKER,
    Client,
    MakeClient,
    assert_error,
    call,
    claim,
    claim_one,
    create_task,
    get_task,
)


async def _finish(client: Client, queue: str, task_id: str, *, fail: bool = False) -> Any:
    await create_task(client, queue, id=task_id, retry_times=0)
    assert (await claim_one(client, queue))["id"] == task_id
    verb = "failed" if fail else "done"
    return await call(client, "PUT", f"/tasques/{verb}/{queue}/{task_id}", status=200, worker=WORKER)


async def test_inspect_a_queue(client: Client, clock: ManualClock) -> None:
    await _finish(client, "q", "done")
    await _finish(client, "q", "dead", fail=True)
    await create_task(client, "q", id="waited")
    await create_task(client, "q", id="later", run_at=(clock() + timedelta(hours=1)).isoformat())
    await call(client, "PUT", "/queues/q/pause", status=200)
    clock.advance(timedelta(seconds=42))
    seen = await call(client, "GET", "/queues/q", status=200)
    assert seen["queue"] == "q"
    assert seen["counts"] == {"queued": 2, "claimed": 0, "failed": 0, "done": 1, "dead": 1, "cancelled": 0,
                              "waiting": 0}  # fmt: skip
    assert seen["paused"] is True
    assert seen["settings"]["paused"] is True
    assert seen["oldest_queued_age_seconds"] == 42
    assert seen["finished_last_minute"] == 2
    clock.advance(timedelta(minutes=1))
    assert (await call(client, "GET", "/queues/q", status=200))["finished_last_minute"] == 0
    # The other /queues routes are unchanged beside it.
    assert (await call(client, "GET", "/queues/q/settings", status=200))["paused"] is True
    assert [s["queue"] for s in await call(client, "GET", "/queues", status=200)] == ["q"]
    empty = await call(client, "GET", "/queues/nothing-here", status=200)
    assert (empty["counts"]["queued"], empty["paused"], empty["oldest_queued_age_seconds"]) == (0, False, 0)
    assert_error(await call(client, "GET", "/queues/bad%20name", status=400), "queue")


async def test_run_now_makes_future_tasks_claimable_at_once(client: Client, clock: ManualClock) -> None:
    later = (clock() + timedelta(days=1)).isoformat()
    for i in range(3):
        await create_task(client, "q", id=f"later{i}", run_at=later)
    await create_task(client, "q", id="due")
    await create_task(client, "q2", id="elsewhere", run_at=later)
    assert await call(client, "PUT", "/queues/q/run-now", status=200) == {"queue": "q", "run_now": 3}
    claimed = await claim(client, ["q", "q2"], amount=10)
    assert sorted(t["id"] for t in claimed) == ["due", "later0", "later1", "later2"]


async def test_delete_a_queue_while_claims_are_held(make_client: MakeClient, clock: ManualClock) -> None:
    client = await make_client()
    await create_task(client, "q", id="held")
    held = await claim_one(client, "q")
    await create_task(client, "q", id="retrying", retry_times=5)
    assert (await claim_one(client, "q", OTHER_WORKER))["id"] == "retrying"
    await call(client, "PUT", "/tasques/failed/q/retrying", status=200, worker=OTHER_WORKER)
    await create_task(client, "q", id="queued")
    await create_task(client, "q", id="later", run_at=(clock() + timedelta(hours=1)).isoformat())
    await create_task(client, "q2", id="elsewhere")
    for confirm in (None, "q2", "Q"):
        params = {} if confirm is None else {"confirm": confirm}
        assert_error(await call(client, "DELETE", "/queues/q", status=400, params=params), "confirm")
    assert_error(await call(client, "DELETE", "/queues/q", status=400, params={"confirm": "q", "history": "yes"}),
                 "history")  # fmt: skip
    assert (await get_task(client, "q", "queued"))["state"] == "queued"  # nothing was deleted by the refusals
    gone = await call(client, "DELETE", "/queues/q", status=200, params={"confirm": "q"})
    assert gone == {"queue": "q", "deleted": 3, "cancelled": 1, "purged": 0}
    for task_id in ("queued", "later", "retrying"):
        await call(client, "GET", f"/tasques/q/{task_id}", status=404)
    cancelled = await get_task(client, "q", "held")
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("cancelled", "queue deleted")
    headers = {"X-TASQUES-CLAIM-ID": held["last_claimed"]["claim_id"]}
    assert_error(await call(client, "PUT", "/tasques/done/q/held", status=409, worker=WORKER, headers=headers))
    assert (await get_task(client, "q2", "elsewhere"))["state"] == "queued"


async def test_delete_with_history_removes_finished_archived_and_timeline(client: Client, clock: ManualClock) -> None:
    tasks = client.app[TASKS]
    await _finish(client, "q", "archived")
    clock.advance(timedelta(days=2))
    assert await tasks.archive_finished(timedelta(days=1), 100) == 1
    await _finish(client, "q", "done")
    await _finish(client, "q2", "elsewhere")
    for task_id, queue in (("archived", "q"), ("done", "q"), ("elsewhere", "q2")):
        await tasks.record_attempt(
            Attempt(
                queue=queue,
                task_id=task_id,
                attempt=1,
                worker_id="d",
                started_at=clock(),
                ended_at=clock(),
                duration_ms=1.0,
                success=True,
            )
        )
    gone = await call(client, "DELETE", "/queues/q", status=200, params={"confirm": "q", "history": "true"})
    assert gone == {"queue": "q", "deleted": 0, "cancelled": 0, "purged": 2}
    for task_id in ("archived", "done"):
        await call(client, "GET", f"/tasques/q/{task_id}", status=404)
        await call(client, "GET", f"/tasques/timeline/q/{task_id}", status=404)
        assert await tasks._store.list_attempts("q", task_id) == []
    assert len((await call(client, "GET", "/tasques/timeline/q2/elsewhere", status=200))["attempts"]) == 1
    # The ids are free again.
    await create_task(client, "q", id="archived")
