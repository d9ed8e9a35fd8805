"""The structured fields a log line about one task, queue or worker carries (Elastic Common Schema style names).

Pass them as `extra=about(...)` to a logging call; the JSON log format emits them as nested objects
(`{"tasques": {"task": {"id": ...}}}`), the text format ignores them. This module imports nothing, so every
layer (store, service, dispatch, leader, api) may use it.

Explicit on each call rather than a per-request context variable: shared work (a coalesced claim, the claim
ticker, a refresh) runs in tasks started from one request's context, and would carry that request's ids into
lines about other requests' tasks.
"""

from __future__ import annotations

TASK_ID = "tasques.task.id"
QUEUE = "tasques.queue"
WORKER_ID = "tasques.worker.id"
RECURRING_ID = "tasques.recurring.id"


def about(
    *,
    task_id: str | None = None,
    queue: str | None = None,
    worker_id: str | None = None,
    recurring_id: str | None = None,
) -> dict[str, str]:
    """The fields for `extra=`; those not given are left out."""
    fields = {TASK_ID: task_id, QUEUE: queue, WORKER_ID: worker_id, RECURRING_ID: recurring_id}
    return {k: v for k, v in fields.items() if v is not None}
