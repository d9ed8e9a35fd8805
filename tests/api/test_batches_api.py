"""The batch endpoints for a worker's writes: POST /tasques/{done,failed,reports,unclaims}.

One request carries many tasks, each with its queue, id, optional claim id and data; the answer has one result
per item, in order, with the status the single call would answer. The store behaviour behind them is in
tests/contract/test_store_batches.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import WORKER, Client, assert_error, call, claim, create_task, get_task

OTHER = "worker-2"


async def _claimed(client: Client, n: int, queue: str = "q") -> list[Any]:
    for i in range(n):
        await create_task(client, queue=queue, id=f"t{i}")
    tasks = await claim(client, [queue], amount=n)
    assert len(tasks) == n
    return sorted(tasks, key=lambda t: t["id"])


def _item(task: Any, *, claim_id: bool = True, data: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"queue": task["queue"], "id": task["id"]}
    if claim_id:
        item["claim_id"] = task["last_claimed"]["claim_id"]
    if data is not None:
        item["data"] = data
    return item


async def _batch(client: Client, path: str, items: list[dict[str, Any]], worker: str = WORKER) -> list[Any]:
    body = await call(client, "POST", path, status=200, worker=worker, body={"tasks": items})
    assert set(body) == {"results"}
    assert len(body["results"]) == len(items)
    return list(body["results"])


async def test_done_batch_answers_each_item_in_order(client: Client) -> None:
    a, b, c = await _claimed(client, 3)
    await create_task(client, id="queued")
    results = await _batch(
        client,
        "/tasques/done",
        [
            _item(a, data={"ok": 1}),
            {"queue": "q", "id": "missing"},
            {**_item(b), "claim_id": "not-this-claim"},
            {"queue": "q", "id": "queued"},
            _item(c, claim_id=False),
        ],
    )
    assert [r["status"] for r in results] == [200, 404, 409, 409, 200]
    assert results[0]["task"]["state"] == "done"
    assert results[0]["task"]["last_claimed"]["result"]["success"] == {"ok": 1}
    for failed in results[1:4]:
        assert "task" not in failed or failed["task"] is None
        assert_error(failed["error"])
    assert (await get_task(client, "q", b["id"]))["state"] == "claimed"
    assert (await get_task(client, "q", c["id"]))["state"] == "done"


async def test_another_workers_task_is_403_for_that_item(client: Client) -> None:
    [mine] = await _claimed(client, 1)
    await create_task(client, id="theirs")
    [theirs] = await claim(client, ["q"], worker=OTHER)
    results = await _batch(client, "/tasques/failed", [_item(theirs, claim_id=False), _item(mine, data={"e": 1})])
    assert [r["status"] for r in results] == [403, 200]
    assert results[1]["task"]["state"] == "failed"
    assert (await get_task(client, "q", theirs["id"]))["state"] == "claimed"


async def test_a_retried_done_batch_changes_nothing(client: Client) -> None:
    tasks = await _claimed(client, 3)
    items = [_item(t, data={"n": i}) for i, t in enumerate(tasks)]
    first = await _batch(client, "/tasques/done", items)
    stored = [await get_task(client, "q", t["id"]) for t in tasks]
    again = await _batch(client, "/tasques/done", items)
    assert [r["status"] for r in first] == [200] * 3
    assert [r["status"] for r in again] == [409] * 3
    assert [await get_task(client, "q", t["id"]) for t in tasks] == stored


async def test_reports_then_unclaims(client: Client) -> None:
    a, b = await _claimed(client, 2)
    reported = await _batch(client, "/tasques/reports", [_item(a, data={"p": 10}), _item(b)])
    assert [r["status"] for r in reported] == [200, 200]
    assert reported[0]["task"]["last_claimed"]["last_report"]["data"] == {"p": 10}
    unclaimed = await _batch(client, "/tasques/unclaims", [_item(a), _item(b)])
    assert [r["task"]["state"] for r in unclaimed] == ["queued", "queued"]
    again = await claim(client, ["q"], worker=OTHER, amount=5)
    assert sorted(t["id"] for t in again) == [a["id"], b["id"]]


@pytest.mark.parametrize("path", ["/tasques/done", "/tasques/failed", "/tasques/reports", "/tasques/unclaims"])
async def test_malformed_batches_are_refused_whole(client: Client, path: str) -> None:
    [a] = await _claimed(client, 1)
    bad_items = [
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"queue": "q"}]}, "tasks.0.id"),
        ({"tasks": [_item(a), {"queue": "q", "id": "bad/id"}]}, "tasks.1.id"),
        ({"tasks": [{**_item(a), "claim_id": "no spaces"}]}, "tasks.0.claim_id"),
        ({"tasks": [{**_item(a), "data": [1]}]}, "tasks.0.data"),
        ({"tasks": [_item(a)] * 1001}, "tasks"),
    ]
    for body, field in bad_items:
        error = await call(client, "POST", path, status=400, worker=WORKER, body=body)
        assert_error(error, field)
    error = await call(client, "POST", path, status=400, body={"tasks": [_item(a)]})
    assert_error(error)
    assert (await get_task(client, "q", a["id"]))["state"] == "claimed"
