"""No task stays claimed by a worker that never received it.

A claim call whose outcome is unknown — the store raised `StoreUnavailable` (it may still have applied the
write, even after answering with a timeout: a request buffered in a paused node is applied when it
resumes), or its caller went away and handing the tasks back failed — may have left tasks claimed that no
worker will run. The tasks of one claim call share (worker id, `claimed_at`), so `TaskService` reports that
pair here (`remember`), and the resolver, once the store answers again, hands back every task still claimed
under it (unclaimed: no attempt used up) instead of leaving it to its processing timeout.

Rules and limits:
- A pending claim call is looked at every `retry_every` until the store answers, and for `settle` after the
  store first answered (a late write lands then); it is dropped once a look that began that late finds nothing.
- At most `max_pending` claim calls are remembered; past that the oldest is dropped (logged), and its tasks,
  if any, wait out their processing timeout as before. Pending calls are in memory: a server that stops
  before the store returns leaves them to the processing timeout too.
- A task is handed back only while it is still claimed with exactly that worker id and `claimed_at`, by a
  conditional write: a task the reaper, a cancel or anything else changed meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta

from tasques.domain.errors import NotClaimed, NotFound, StoreUnavailable, TasquesError
from tasques.domain.task import Task
from tasques.log_fields import about
from tasques.service.tasks import TaskService
from tasques.store.base import Store

log = logging.getLogger(__name__)


class ClaimResolver:
    def __init__(
        self,
        store: Store,
        tasks: TaskService,
        *,
        retry_every: timedelta = timedelta(seconds=1),
        settle: timedelta = timedelta(seconds=5),
        max_pending: int = 10_000,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._retry_every = retry_every.total_seconds()
        self._settle = settle.total_seconds()
        self._max_pending = max_pending
        # (project, worker id, claimed_at) -> loop time of the first look the store answered (None: not yet)
        self._pending: OrderedDict[tuple[str, str, datetime], float | None] = OrderedDict()
        self._wake = asyncio.Event()
        self.handed_back = 0  # tasks handed back since start, for logs and tests

    @property
    def pending(self) -> int:
        return len(self._pending)

    def remember(self, project: str, worker_id: str, claimed_at: datetime) -> None:
        """A claim call by `worker_id` (of `project`) at `claimed_at` has an unknown outcome: resolve it once the
        store answers."""
        key = (project, worker_id, claimed_at)
        if key in self._pending:
            return
        if len(self._pending) >= self._max_pending:
            (_, old_worker, old_at), _ = self._pending.popitem(last=False)
            log.warning("too many unresolved claims: forgetting %s at %s (its tasks will time out)", old_worker, old_at,
                        extra=about(worker_id=old_worker))  # fmt: skip
        self._pending[key] = None
        self._wake.set()

    async def run(self) -> None:
        """Resolve pending claim calls until cancelled."""
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            await self.resolve_once()
            if self._pending:
                await asyncio.sleep(self._retry_every)

    async def resolve_once(self) -> int:
        """One look at every pending claim call; returns how many tasks it handed back."""
        loop = asyncio.get_running_loop()
        handed = 0
        for key, answered_at in list(self._pending.items()):
            started = loop.time()
            try:
                project, worker_id, claimed_at = key
                found = await self._store.find_claimed_by(worker_id, claimed_at, project=project)
                for task in found:
                    handed += await self._hand_back(task, key)
            except StoreUnavailable as e:
                log.warning("unresolved claims wait for the store: %s", e)
                break
            except Exception:
                # One claim call that cannot be resolved must not stop the others; it is looked at again.
                log.exception("could not resolve the claim of %s at %s", key[1], key[2], extra=about(worker_id=key[1]))
                continue
            if answered_at is None:
                self._pending[key] = answered_at = started
            if not found and started - answered_at >= self._settle:
                del self._pending[key]
        self.handed_back += handed
        return handed

    async def _hand_back(self, task: Task, key: tuple[str, str, datetime]) -> int:
        _, worker_id, claimed_at = key
        fields = about(task_id=task.id, queue=task.queue, worker_id=worker_id)
        try:
            # The service's one read-modify-write loop; it refuses once the task is no longer that claim's.
            await self._tasks.hand_back(worker_id, claimed_at, task.ref, task.id)
        except (NotClaimed, NotFound):
            return 0
        except StoreUnavailable:
            raise
        except TasquesError as e:
            log.warning("task %s in queue %s not handed back: %s", task.id, task.queue, e, extra=fields)
            return 0
        log.debug("task %s in queue %s handed back: its claim at %s never reached a worker", task.id, task.queue,
                  claimed_at, extra=fields)  # fmt: skip
        return 1
