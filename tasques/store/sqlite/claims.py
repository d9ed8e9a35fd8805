"""Claims and the searches around them: claim, the idle waiters' probe, what is left of a claim, timeouts.

A claim reads and writes in one write transaction, so it cannot lose a race. It runs one indexed query per
(project, queue), each already in claim order, merges them, and parses only the winners. A claim of every
project (the dispatcher's, `project=None`) first finds the projects holding claimable tasks by a loose scan of
the claim index.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from tasques.domain.errors import TasquesError
from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task
from tasques.store.base import QueueProbe
from tasques.store.sqlite.admin import SqliteAdmin
from tasques.store.sqlite.connection import TaskKey, task_key
from tasques.store.sqlite.queries import (
    CLAIM_SQL,
    CLAIMED_SQL,
    PROBE_ALL_SQL,
    PROBE_SQL,
    PROJECTS_SQL,
    TIMED_OUT_SQL,
    probe_queues_sql,
)
from tasques.store.sqlite.rows import _UPDATE_TASK_SQL, _check_identity, _micros, _update_params, _versioned

# (project, queue) pairs per probe statement: two bound parameters each, well under SQLite's limit.
PROBE_CHUNK = 500

Pair = tuple[str, str]


class SqliteClaims(SqliteAdmin):
    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
        *,
        project: str | None = DEFAULT_PROJECT,
    ) -> list[Task]:
        if limit <= 0 or not queues:
            return []
        now_us = _micros(now)
        unique_queues = list(dict.fromkeys(queues))

        def run(conn: sqlite3.Connection) -> list[Task]:
            # An unreadable task is passed over (and looked past from then on): it never takes a claim's place.
            pairs = [(p, q) for p in _projects(conn, project) for q in unique_queues]
            claimed: list[Task] = []
            params: list[tuple[Any, ...]] = []
            seen: set[TaskKey] = set()
            while True:
                skip = self._unreadable_tasks() | seen
                wanted = limit - len(claimed)
                candidates: list[tuple[int, int, int, TaskKey, str]] = []
                for p, queue in pairs:
                    rows = conn.execute(CLAIM_SQL, (p, queue, target.value, now_us, wanted + len(skip))).fetchall()
                    candidates.extend(
                        (-priority, run_at, seq, (p, queue, task_id), body)
                        for priority, run_at, seq, task_id, body in rows
                        if (p, queue, task_id) not in skip
                    )
                unreadable = 0
                for _, _, seq, key, body in heapq.nsmallest(wanted, candidates, key=lambda c: (c[0], c[1])):
                    seen.add(key)
                    task = self._parse(Task, task_key(*key), body)
                    if task is None:
                        unreadable += 1
                        continue
                    try:
                        changed = change(task)
                    except TasquesError:
                        continue
                    _check_identity(task, changed)
                    stored = _versioned(changed, seq + 1)
                    params.append(_update_params(stored, seq, self.sealer))
                    claimed.append(stored)
                if not unreadable or len(claimed) >= limit:
                    break
            if params:
                conn.executemany(_UPDATE_TASK_SQL, params)
            return claimed

        return await self._write(run)

    async def claimable_queues(self, now: datetime, probes: Sequence[QueueProbe]) -> set[tuple[str, str, TaskTarget]]:
        now_us = _micros(now)

        def run(conn: sqlite3.Connection) -> set[tuple[str, str, TaskTarget]]:
            skip = self._unreadable_tasks()
            found: set[tuple[str, str, TaskTarget]] = set()
            for probe in probes:
                target = probe.target.value
                pairs: list[Pair] = []
                for p in _projects(conn, probe.project):
                    if probe.queues is None:
                        pairs += [(p, row[0]) for row in conn.execute(PROBE_ALL_SQL, (p, p, target, now_us))]
                    else:
                        pairs += _with_claimable(conn, [(p, q) for q in sorted(probe.queues)], target, now_us)
                for p, queue in set(pairs) - probe.excluding:
                    # A queue whose only claimable tasks are unreadable has nothing a claim would take.
                    if any((sp, sq) == (p, queue) for sp, sq, _ in skip):
                        rows = conn.execute(PROBE_SQL, (p, queue, target, now_us, len(skip) + 1)).fetchall()
                        if all((p, queue, task_id) in skip for (task_id,) in rows):
                            continue
                    found.add((p, queue, probe.target))
            return found

        return await self._read(run)

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        now_us = _micros(now)

        def run(conn: sqlite3.Connection) -> list[Task]:
            bad = self._unreadable_tasks()
            rows = conn.execute(TIMED_OUT_SQL, (now_us, limit + len(bad))).fetchall()
            parsed = (self._parse(Task, task_key(p, q, i), body) for p, q, i, body in rows if (p, q, i) not in bad)
            return [t for t in parsed if t is not None][:limit]

        return await self._read(run)

    async def find_claimed_by(
        self, worker_id: str, claimed_at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> list[Task]:
        _micros(claimed_at)

        def matches(task: Task) -> bool:
            claim = task.last_claimed
            return claim is not None and claim.worker_id == worker_id and claim.claimed_at == claimed_at

        # Rare (only after a failed claim): a walk of the project's claimed tasks through their index is enough.
        def run(conn: sqlite3.Connection) -> list[Task]:
            rows = conn.execute(CLAIMED_SQL, (project,))
            parsed = (self._parse(Task, task_key(project, q, i), body) for q, i, body in rows)
            return [t for t in parsed if t is not None and matches(t)]

        return await self._read(run)


def _projects(conn: sqlite3.Connection, project: str | None) -> list[str]:
    """`project`, or when None every project holding a claimable task."""
    if project is not None:
        return [project]
    return [row[0] for row in conn.execute(PROJECTS_SQL)]


def _with_claimable(conn: sqlite3.Connection, pairs: list[Pair], target: str, now_us: int) -> list[Pair]:
    """Those of `pairs` holding a task of `target` claimable at `now_us`."""
    out: list[Pair] = []
    for i in range(0, len(pairs), PROBE_CHUNK):
        chunk = pairs[i : i + PROBE_CHUNK]
        flat = [name for pair in chunk for name in pair]
        out += [(p, q) for p, q in conn.execute(probe_queues_sql(len(chunk)), (*flat, target, now_us))]
    return out
