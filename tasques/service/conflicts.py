"""The retry rule for read-modify-writes of one record (recurring tasks, queue settings).

Tasks have their own batched loop (`TaskService.modify_many`) with the same rule and the same budget: a write
that lost a race is read, changed and written again, up to `CONFLICT_RETRIES` times in all, then the
caller gets `VersionConflict`. Every use shares this one budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tasques.domain.errors import VersionConflict

T = TypeVar("T")

# Attempts of one read-modify-write before giving up (Tasques' original said 500 and retried once).
CONFLICT_RETRIES = 100


async def retry_conflicts(what: str, attempt: Callable[[], Awaitable[T]], budget: int = CONFLICT_RETRIES) -> T:
    """Run `attempt` (read, change, conditional write) until it does not raise `VersionConflict`."""
    for _ in range(budget):
        try:
            return await attempt()
        except VersionConflict:
            continue
    raise VersionConflict(f"{what} kept changing; gave up after {budget} attempts")
