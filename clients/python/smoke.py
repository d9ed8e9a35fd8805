"""Drive a Tasques server through the client openapi-python-client generates from openapi.yaml.

    python smoke.py <base-url> <queue> <worker-id> <result-json>

The generated package `tasques_client` must be importable (scripts/gen-clients puts it on PYTHONPATH); it needs
httpx and attrs, which the generator's own environment has. Does create -> claim -> report -> done and prints
{"queue": ..., "id": ...} of the finished task.
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
    report_on_claimed_task,
)
from tasques_client.models import (  # type: ignore[import-not-found]
    Claim,
    NewReport,
    NewReportDataType0,
    NewTask,
    NewTaskArgsType0,
    Success,
    SuccessDataType0,
    Task,
    TaskState,
)


def _require(ok: bool, step: str, got: object) -> None:
    if not ok:
        raise SystemExit(f"python smoke: {step}: unexpected {got!r}")


def _parsed(step: str, response: Any, status: int) -> Any:
    if response.status_code != status or response.parsed is None:
        raise SystemExit(f"python smoke: {step}: HTTP {response.status_code}, want {status}: {response.content!r}")
    return response.parsed


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
    print(json.dumps({"queue": queue, "id": created.id}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: smoke.py <base-url> <queue> <worker-id> <result-json>")
    main(*sys.argv[1:])
