"""The tasks this store instance wrote last, as it wrote them: the read half of a read-modify-write.

A worker's `done` usually follows the claim this server wrote a moment ago, so `modify_tasks` starts from the
copy kept here instead of a realtime GET, and the conditional write alone makes it one round trip. A copy is
only a guess: another server may have changed the task since, and then the write fails its version check
(409) and the task is read again. Bounded (least recently written goes first), so memory stays small however
many tasks pass through.
"""

from __future__ import annotations

from collections import OrderedDict

from tasques.domain.task import Task

# About 2-4 KB per task: at most a few tens of MB.
RECENT_TASKS = 10_000


class RecentTasks:
    def __init__(self, capacity: int = RECENT_TASKS) -> None:
        self._capacity = capacity
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, doc_id: str) -> Task | None:
        return self._tasks.get(doc_id)

    def wrote(self, doc_id: str, task: Task) -> None:
        """Remember `task` as just written (with the version the write answered)."""
        self._tasks.pop(doc_id, None)
        self._tasks[doc_id] = task
        while len(self._tasks) > self._capacity:
            self._tasks.popitem(last=False)

    def forget(self, doc_id: str) -> None:
        self._tasks.pop(doc_id, None)
