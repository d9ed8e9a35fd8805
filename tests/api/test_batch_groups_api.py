"""POST /batches and GET /batches/{id}: many tasks under one batch id, counted, with an on_complete task
created exactly once when the last one finishes. (Batched worker writes are in test_batches_api.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tasques.api.keys import BATCHES, TASKS
from tasques.leader.jobs import BatchSweeper
from tests.api.auth_helpers import ADMIN_HEADERS, auth_client, bearer, issue, new_project
from tests.api.conftest import WORKER, Client, MakeClient, assert_error, call, claim, create_task, get_task, parse_ts

ZERO = {"waiting": 0, "queued": 0, "claimed": 0, "failed": 0, "done": 0, "dead": 0, "cancelled": 0}


def _tasks(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"queue": "q", "kind": "k", "id": f"t{i}", "retry_times": 0, **fields} for i in range(n)]


async def _finish(client: Client, task_id: str, *, dead: bool = False) -> None:
    verb = "failed" if dead else "done"
    await call(client, "PUT", f"/tasques/{verb}/q/{task_id}", status=200, worker=WORKER, body={"data": {}})


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time allowed")


async def _callbacks(client: Client, queue: str = "cb") -> list[Any]:
    page = await call(client, "GET", "/tasques", status=200, params={"queue": queue})
    return list(page["tasks"])


async def test_create_gives_the_batch_view_and_tags_every_task(client: Client) -> None:
    body = {"id": "b1", "tasks": _tasks(3), "on_complete": {"queue": "cb", "kind": "joined", "args": {"album": 7}}}
    view = await call(client, "POST", "/batches", status=201, body=body)
    assert view["id"] == "b1"
    assert view["total"] == 3
    assert view["counts"] == {**ZERO, "queued": 3}
    assert view["finished"] == 0
    assert view["completed"] is False
    assert "completed_at" not in view
    assert "callback" not in view
    assert view["on_complete"]["queue"] == "cb"
    parse_ts(view["created_at"])
    assert (await get_task(client, "q", "t1"))["batch_id"] == "b1"
    assert await call(client, "GET", "/batches/b1", status=200) == view


async def test_a_generated_batch_id(client: Client) -> None:
    view = await call(client, "POST", "/batches", status=201, body={"tasks": [{"queue": "q", "kind": "k"}]})
    assert len(view["id"]) == 36
    assert (await call(client, "GET", f"/batches/{view['id']}", status=200))["total"] == 1


async def test_one_bad_item_creates_nothing(client: Client) -> None:
    tasks = [*_tasks(2), {"queue": "q"}, {"queue": "bad queue", "kind": "k"}]
    body = {"id": "b1", "tasks": tasks}
    assert_error(await call(client, "POST", "/batches", status=400, body=body), "tasks.2.kind", "tasks.3.queue")
    await call(client, "GET", "/tasques/q/t0", status=404)
    await call(client, "GET", "/batches/b1", status=404)


async def test_service_side_problems_name_the_item_and_nothing_is_created(client: Client) -> None:
    tasks = [*_tasks(2), {"queue": "q", "kind": "k", "run_at": "2030-01-01T00:00:00Z", "execution_delay": 5}]
    tasks.append({"queue": "q", "kind": "k", "id": "t0"})
    result = await call(client, "POST", "/batches", status=400, body={"id": "b1", "tasks": tasks})
    assert_error(result, "tasks.2.execution_delay", "tasks.3.id")
    await call(client, "GET", "/batches/b1", status=404)
    await call(client, "GET", "/tasques/q/t0", status=404)


async def test_the_request_is_strict_and_bounded(client: Client) -> None:
    assert_error(await call(client, "POST", "/batches", status=400, body={"tasks": []}), "tasks")
    assert_error(await call(client, "POST", "/batches", status=400, body={"tasks": _tasks(1), "extra": 1}), "extra")
    too_long = {"id": "x" * 252, "tasks": _tasks(1)}
    assert_error(await call(client, "POST", "/batches", status=400, body=too_long), "id")
    bad = {"tasks": _tasks(1), "on_complete": {"queue": "cb"}}
    assert_error(await call(client, "POST", "/batches", status=400, body=bad), "on_complete.kind")
    assert_error(await call(client, "GET", "/batches/bad%20id", status=400), "id")
    await call(client, "GET", "/batches/missing", status=404)


async def test_up_to_five_thousand_tasks(client: Client) -> None:
    body = {"id": "big", "tasks": [{"queue": "q", "kind": "k"}] * 5000}
    view = await call(client, "POST", "/batches", status=201, body=body)
    assert view["counts"]["queued"] == 5000
    assert (await call(client, "GET", "/batches/big", status=200))["counts"]["queued"] == 5000
    too_many = {"tasks": [{"queue": "q", "kind": "k"}] * 5001}
    assert_error(await call(client, "POST", "/batches", status=400, body=too_many), "tasks")


async def test_a_taken_batch_id_is_409_and_creates_nothing(client: Client) -> None:
    await call(client, "POST", "/batches", status=201, body={"id": "b1", "tasks": _tasks(1)})
    again = {"id": "b1", "tasks": [{"queue": "q", "kind": "k", "id": "other"}]}
    assert_error(await call(client, "POST", "/batches", status=409, body=again))
    await call(client, "GET", "/tasques/q/other", status=404)


async def test_a_taken_task_id_fails_the_batch_honestly(client: Client) -> None:
    await create_task(client, "q", "k", id="t1")
    body = {"id": "b1", "tasks": _tasks(3), "on_complete": {"queue": "cb", "kind": "joined"}}
    error = await call(client, "POST", "/batches", status=409, body=body)
    assert "tasks.1" in error["message"]
    assert "marked failed" in error["message"]
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["completed"] is False
    parse_ts(view["failed_at"])
    assert "2 of 3 tasks were created" in view["failure"]
    # The tasks that were created run; finishing them never completes the failed batch.
    for t in await claim(client, ["q"], amount=10):
        if t.get("batch_id") == "b1":
            await _finish(client, t["id"])
    await asyncio.sleep(0.2)
    assert (await call(client, "GET", "/batches/b1", status=200))["counts"]["done"] == 2
    assert await _callbacks(client) == []


async def test_counts_follow_the_tasks_and_the_callback_is_created_once_with_them(client: Client) -> None:
    on_complete = {"queue": "cb", "kind": "joined", "args": {"album": 7, "batch": "overwritten"}, "priority": 3}
    await call(
        client, "POST", "/batches", status=201, body={"id": "b1", "tasks": _tasks(3), "on_complete": on_complete}
    )
    assert len(await claim(client, ["q"], amount=3)) == 3
    assert (await call(client, "GET", "/batches/b1", status=200))["counts"] == {**ZERO, "claimed": 3}
    await _finish(client, "t0")
    await _finish(client, "t1", dead=True)
    await asyncio.sleep(0.1)
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["counts"] == {**ZERO, "claimed": 1, "done": 1, "dead": 1}
    assert (view["finished"], view["completed"]) == (2, False)
    assert await _callbacks(client) == []

    await _finish(client, "t2")

    async def completed() -> bool:
        return bool((await call(client, "GET", "/batches/b1", status=200))["completed"])

    await _eventually(completed)
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["callback"] == {"queue": "cb", "id": "b1.done"}
    assert view["finished"] == 3
    parse_ts(view["completed_at"])
    [callback] = await _callbacks(client)
    assert callback["id"] == "b1.done"
    assert callback["kind"] == "joined"
    assert callback["priority"] == 3
    assert "batch_id" not in callback
    assert callback["args"] == {
        "album": 7,
        "batch": {"id": "b1", "total": 3, "counts": {**ZERO, "done": 2, "dead": 1}, "deleted": 0},
    }
    # Checking again (the leader's sweep, a late hook) never creates a second one.
    assert await client.app[BATCHES].check("default", "b1") is True
    assert await BatchSweeper(client.app[BATCHES], interval=None, batch=100).run_once() == 0  # type: ignore[arg-type]
    assert len(await _callbacks(client)) == 1


async def test_without_on_complete_completion_is_still_reported(client: Client) -> None:
    await call(client, "POST", "/batches", status=201, body={"id": "b1", "tasks": _tasks(2)})
    await claim(client, ["q"], amount=2)
    await _finish(client, "t0", dead=True)
    await _finish(client, "t1", dead=True)

    async def completed() -> bool:
        return bool((await call(client, "GET", "/batches/b1", status=200))["completed"])

    await _eventually(completed)
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["counts"] == {**ZERO, "dead": 2}
    assert "callback" not in view
    assert "on_complete" not in view


async def test_cancelled_tasks_count_as_finished(client: Client) -> None:
    body = {"id": "b1", "tasks": _tasks(2), "on_complete": {"queue": "cb", "kind": "joined"}}
    await call(client, "POST", "/batches", status=201, body=body)
    await call(client, "PUT", "/tasques/cancel/q/t0", status=200)
    await call(client, "PUT", "/tasques/cancel/q/t1", status=200)

    async def called_back() -> bool:
        return len(await _callbacks(client)) == 1

    await _eventually(called_back)
    [callback] = await _callbacks(client)
    assert callback["args"]["batch"]["counts"]["cancelled"] == 2


async def test_items_of_a_batch_may_depend_on_each_other(client: Client) -> None:
    # t0 waits on t1, named after it: written in dependency order, so t0 is not judged before t1 is stored.
    items = _tasks(2)
    items[0]["depends_on"] = [{"queue": "q", "id": "t1"}]
    await call(client, "POST", "/batches", status=201, body={"id": "b1", "tasks": items})
    assert (await get_task(client, "q", "t0"))["state"] == "waiting"
    [first] = await claim(client, ["q"], amount=2)
    assert first["id"] == "t1"
    await _finish(client, "t1")

    async def released() -> bool:
        return bool((await get_task(client, "q", "t0"))["state"] == "queued")

    await _eventually(released)
    cycle = [{**t, "id": f"c{i}"} for i, t in enumerate(_tasks(2))]
    cycle[0]["depends_on"] = [{"queue": "q", "id": "c1"}]
    cycle[1]["depends_on"] = [{"queue": "q", "id": "c0"}]
    error = await call(client, "POST", "/batches", status=400, body={"id": "b2", "tasks": cycle})
    assert error["details"][0]["field"] in {"tasks.0.depends_on", "tasks.1.depends_on"}
    await call(client, "GET", "/batches/b2", status=404)


async def test_tasks_deleted_with_their_queue_count_as_finished(client: Client) -> None:
    body = {"id": "b1", "tasks": _tasks(3), "on_complete": {"queue": "cb", "kind": "joined"}}
    await call(client, "POST", "/batches", status=201, body=body)
    [claimed] = await claim(client, ["q"], amount=1)
    await _finish(client, claimed["id"])
    await call(client, "DELETE", "/queues/q", status=200, params={"confirm": "q"})

    async def called_back() -> bool:
        return len(await _callbacks(client)) == 1

    await _eventually(called_back)
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["completed"] is True
    assert (view["finished"], view["deleted"]) == (1, 2)
    [callback] = await _callbacks(client)
    assert callback["args"]["batch"]["deleted"] == 2
    assert callback["args"]["batch"]["counts"]["done"] == 1


async def test_the_leader_sweep_completes_a_batch_whose_hook_was_missed(client: Client) -> None:
    client.app[TASKS].on_settled.clear()  # as if the server crashed before the check
    body = {"id": "b1", "tasks": _tasks(2), "on_complete": {"queue": "cb", "kind": "joined"}}
    await call(client, "POST", "/batches", status=201, body=body)
    await call(client, "POST", "/batches", status=201, body={"id": "b2", "tasks": [{"queue": "other", "kind": "k"}]})
    await claim(client, ["q"], amount=2)
    await _finish(client, "t0")
    await _finish(client, "t1")
    await asyncio.sleep(0.1)
    assert (await call(client, "GET", "/batches/b1", status=200))["completed"] is False
    sweeper = BatchSweeper(client.app[BATCHES], interval=None, batch=1)  # type: ignore[arg-type]
    # One batch per pass: the first pass takes b1, the next b2 (open), then b1 is gone from the open ones.
    assert await sweeper.run_once() == 1
    assert await sweeper.run_once() == 0
    view = await call(client, "GET", "/batches/b1", status=200)
    assert view["completed"] is True
    assert view["callback"] == {"queue": "cb", "id": "b1.done"}
    assert [t["id"] for t in await _callbacks(client)] == ["b1.done"]


async def test_roles_producer_creates_viewer_reads(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    producer = await issue(client, "default", "producer")
    viewer = await issue(client, "default", "viewer")
    body = {"id": "b1", "tasks": _tasks(1)}
    assert_error(await call(client, "POST", "/batches", status=403, body=body, headers=bearer(viewer)))
    await call(client, "POST", "/batches", status=201, body=body, headers=bearer(producer))
    await call(client, "GET", "/batches/b1", status=200, headers=bearer(viewer))
    await call(client, "GET", "/batches/b1", status=401)
    await call(client, "GET", "/batches/b1", status=200, headers=ADMIN_HEADERS)


async def test_a_batch_is_refused_whole_when_the_quota_cannot_take_it(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    await new_project(client, "small", max_outstanding_tasks=3)
    producer = await issue(client, "small", "producer")
    body = {"id": "b1", "tasks": _tasks(4)}
    assert_error(await call(client, "POST", "/batches", status=429, body=body, headers=bearer(producer)))
    await call(client, "GET", "/batches/b1", status=404, headers=bearer(producer))
    body = {"id": "b1", "tasks": _tasks(3)}
    await call(client, "POST", "/batches", status=201, body=body, headers=bearer(producer))
