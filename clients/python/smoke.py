"""Drive a Tasques server through the client openapi-python-client generates from openapi.yaml.

    python smoke.py <base-url> <queue> <worker-id> <result-json>

The generated package `tasques_client` must be importable (scripts/gen-clients puts it on PYTHONPATH); it needs
httpx and attrs, which the generator's own environment has. Does create -> claim -> report -> done of one task,
then the same for two more through the batch endpoints (one `POST /tasques/reports`, one `POST /tasques/done` that
also names a missing task), and prints {"queue": ..., "id": ..., "batch_ids": [...]}; batch task i is finished with
{"item": i, "result": <result-json>}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tasques_client import Client  # type: ignore[import-not-found]
from tasques_client.api.tasks import (  # type: ignore[import-not-found]
    claim_tasks,
    create_task,
    mark_claimed_task_done,
    mark_claimed_tasks_done,
    report_on_claimed_task,
    report_on_claimed_tasks,
)
from tasques_client.models import (  # type: ignore[import-not-found]
    Claim,
    ErrorBody,
    NewReport,
    NewReportDataType0,
    NewTask,
    NewTaskArgsType0,
    Success,
    SuccessDataType0,
    Task,
    TaskState,
    TaskUpdate,
    TaskUpdateDataType0,
    TaskUpdates,
    UpdateItem,
    UpdateResult,
)


def _require(ok: bool, step: str, got: object) -> None:
    if not ok:
        raise SystemExit(f"python smoke: {step}: unexpected {got!r}")


def _parsed(step: str, response: Any, status: int) -> Any:
    if response.status_code != status or response.parsed is None:
        raise SystemExit(f"python smoke: {step}: HTTP {response.status_code}, want {status}: {response.content!r}")
    return response.parsed


def _items(step: str, response: Any, want: list[int]) -> list[Any]:
    """The batch answer's items, checked to be one per request item with the wanted per-item statuses."""
    result = _parsed(step, response, 200)
    _require(isinstance(result, UpdateResult), step, result)
    items = result.results
    _require(all(isinstance(i, UpdateItem) for i in items) and [i.status for i in items] == want, step, items)
    # The generated parser falls back to the raw value when a Task does not parse: insist on a Task.
    _require(all(isinstance(i.task, Task) for i in items if i.status == 200), step, items)
    return list(items)


def _claim_two(client: Any, queue: str, worker_id: str, args: dict[str, Any]) -> dict[str, str]:
    """Create two tasks and claim both with one call; return each one's claim id, in creation order."""
    ids = []
    for _ in range(2):
        new_task = NewTask(queue=queue, kind="pythonSmoke", args=NewTaskArgsType0.from_dict(args))
        ids.append(_parsed("batch create", create_task.sync_detailed(client=client, body=new_task), 201).id)
    claim = Claim(queues=[queue], amount=2, block_for="1s")
    claimed = _parsed(
        "batch claim", claim_tasks.sync_detailed(client=client, body=claim, x_tasques_worker_id=worker_id), 200
    )
    _require(
        isinstance(claimed, list)
        and sorted((t.id, t.state, t.last_claimed.worker_id) for t in claimed)
        == sorted((i, TaskState.CLAIMED, worker_id) for i in ids),
        "batch claim",
        claimed,
    )
    claim_ids = {t.id: t.last_claimed.claim_id for t in claimed}
    _require(all(isinstance(c, str) and c for c in claim_ids.values()), "batch claim ids", claim_ids)
    return {i: claim_ids[i] for i in ids}


def _batch(client: Any, queue: str, worker_id: str, args: dict[str, Any], progress: Any, result: Any) -> list[str]:
    """Two more tasks: claimed at once, reported on with one batch call and finished with another."""
    claim_ids = _claim_two(client, queue, worker_id, args)
    ids = list(claim_ids)
    reports = [
        TaskUpdate(queue=queue, id=i, claim_id=c, data=TaskUpdateDataType0.from_dict(progress))
        for i, c in claim_ids.items()
    ]
    items = _items(
        "batch report",
        report_on_claimed_tasks.sync_detailed(
            client=client, body=TaskUpdates(tasks=reports), x_tasques_worker_id=worker_id
        ),
        [200, 200],
    )
    _require(
        [(i.task.id, i.task.state, i.task.last_claimed.last_report.data.to_dict()) for i in items]
        == [(i, TaskState.CLAIMED, progress) for i in ids],
        "batch report",
        items,
    )

    results = [{"item": n, "result": result} for n in range(2)]
    dones = [
        TaskUpdate(queue=queue, id=ids[0], claim_id=claim_ids[ids[0]], data=TaskUpdateDataType0.from_dict(results[0])),
        TaskUpdate(queue=queue, id=ids[1], data=TaskUpdateDataType0.from_dict(results[1])),  # worker check only
        TaskUpdate(queue=queue, id=f"missing-{ids[0]}", data=TaskUpdateDataType0.from_dict(results[0])),
    ]
    items = _items(
        "batch done",
        mark_claimed_tasks_done.sync_detailed(
            client=client, body=TaskUpdates(tasks=dones), x_tasques_worker_id=worker_id
        ),
        [200, 200, 404],
    )
    _require(
        [(i.task.id, i.task.state, i.task.last_claimed.result.success.to_dict()) for i in items[:2]]
        == [(i, TaskState.DONE, r) for i, r in zip(ids, results, strict=True)],
        "batch done",
        items,
    )
    missing = items[2]
    _require(
        isinstance(missing.error, ErrorBody) and bool(missing.error.message) and not isinstance(missing.task, Task),
        "batch done 404",
        missing,
    )
    return ids


def main(base_url: str, queue: str, worker_id: str, result_json: str) -> None:
    result = json.loads(result_json)
    args = {"greeting": "hello", "n": 1}
    progress = {"progress": 50}
    with Client(base_url=base_url, raise_on_unexpected_status=True, timeout=20.0) as client:
        new_task = NewTask(queue=queue, kind="pythonSmoke", args=NewTaskArgsType0.from_dict(args))
        created = _parsed("create", create_task.sync_detailed(client=client, body=new_task), 201)
        _require(
            isinstance(created, Task)
            and created.state == TaskState.QUEUED
            and created.queue == queue
            and created.args is not None
            and created.args.to_dict() == args,
            "create",
            created,
        )

        claim = Claim(queues=[queue], amount=1, block_for="1s")
        claimed = _parsed(
            "claim", claim_tasks.sync_detailed(client=client, body=claim, x_tasques_worker_id=worker_id), 200
        )
        _require(
            isinstance(claimed, list)
            and [(t.id, t.state, t.last_claimed.worker_id) for t in claimed]
            == [(created.id, TaskState.CLAIMED, worker_id)],
            "claim",
            claimed,
        )

        report = NewReport(data=NewReportDataType0.from_dict(progress))
        reported = _parsed(
            "report",
            report_on_claimed_task.sync_detailed(
                queue, created.id, client=client, body=report, x_tasques_worker_id=worker_id
            ),
            200,
        )
        _require(reported.last_claimed.last_report.data.to_dict() == progress, "report", reported)

        success = Success(data=SuccessDataType0.from_dict(result))
        done = _parsed(
            "done",
            mark_claimed_task_done.sync_detailed(
                queue, created.id, client=client, body=success, x_tasques_worker_id=worker_id
            ),
            200,
        )
        _require(done.state == TaskState.DONE and done.last_claimed.result.success.to_dict() == result, "done", done)

        batch_ids = _batch(client, queue, worker_id, args, progress, result)
    print(json.dumps({"queue": queue, "id": created.id, "batch_ids": batch_ids}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: smoke.py <base-url> <queue> <worker-id> <result-json>")
    main(*sys.argv[1:])
