"""The dashboard's overview of one project: each queue's counts by state, paused flag, oldest due task and
finished tasks per minute, which server leads, and which server answered.

Read-only, and only when asked (the dashboard's page polls it; nothing runs when no page is open): one
`queue_counts`, one `finished_per_minute`, one `lock_holder` and the queue settings the claims already cache
(`QueueService.all`, fresh within a second; this server's own pauses show at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tasques.domain.task import TaskState
from tasques.service.clock import Clock
from tasques.service.queue_ops import oldest_queued_age
from tasques.service.queues import QueueService
from tasques.store.base import LockHolder, Store

# Minutes of throughput shown, the current one (still running) last.
THROUGHPUT_MINUTES = 5


@dataclass(frozen=True)
class QueueOverview:
    queue: str
    counts: dict[TaskState, int]
    paused: bool
    oldest_queued_age: timedelta
    finished_per_minute: list[int]  # one per `Overview.minutes`, in their order


@dataclass(frozen=True)
class Overview:
    store: str
    server_id: str
    server_leads: bool
    leader: LockHolder | None  # None when no lease is live
    minutes: list[datetime]  # minute starts (UTC), oldest first; the last is the current minute
    queues: list[QueueOverview]  # every queue with live tasks or stored settings, by name


class OverviewService:
    """`lock_name`, `server_id` and `is_leader` come from the composition root (the leader is not imported here)."""

    def __init__(
        self,
        store: Store,
        queues: QueueService,
        clock: Clock,
        *,
        lock_name: str,
        server_id: str,
        is_leader: Callable[[], bool],
    ) -> None:
        self._store = store
        self._queues = queues
        self._clock = clock
        self._lock_name = lock_name
        self._server_id = server_id
        self._is_leader = is_leader

    async def overview(self, project: str) -> Overview:
        now = self._clock().astimezone(UTC)
        current = now.replace(second=0, microsecond=0)
        minutes = [current - timedelta(minutes=back) for back in range(THROUGHPUT_MINUTES - 1, -1, -1)]
        counted, finished, settings, leader = await asyncio.gather(
            self._store.queue_counts(project=project),
            self._store.finished_per_minute(minutes[0], project=project),
            self._queues.all(),
            self._store.lock_holder(self._lock_name, now),
        )
        counts = {c.queue: c for c in counted}
        paused = {ref.queue: s.paused for ref, s in settings.items() if ref.project == project}
        queues = [
            QueueOverview(
                queue=queue,
                counts=dict(counts[queue].counts) if queue in counts else {},
                paused=paused.get(queue, False),
                oldest_queued_age=oldest_queued_age(counts.get(queue), now),
                finished_per_minute=[finished.get(queue, {}).get(minute, 0) for minute in minutes],
            )
            for queue in sorted(counts.keys() | paused.keys())
        ]
        return Overview(
            store=self._store.kind,
            server_id=self._server_id,
            server_leads=self._is_leader(),
            leader=leader,
            minutes=minutes,
            queues=queues,
        )
