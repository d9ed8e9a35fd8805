"""The SQL of the task queries, each written to use one index (checked by tests/contract/test_sqlite_specific.py).

Per-project queries bind the project first; the sweeps across projects (timeouts, finished tasks) do not name one.
"""

from __future__ import annotations

from typing import Any

from tasques.store.base import TaskFilter
from tasques.store.cursor import Cursor
from tasques.store.sqlite.schema import CLAIMABLE, CLAIMABLE_ALT, CLAIMED, FINISHED, OUTSTANDING, UNFINISHED

# One project's claimed tasks (find_claimed_by; rare, only after a failed claim). Params: project.
CLAIMED_SQL = f"SELECT queue, id, body FROM tasks INDEXED BY tasks_claimed WHERE project = ? AND {CLAIMED}"

# Params: project, queue, target, now, limit.
CLAIM_SQL = (
    "SELECT priority, run_at, seq, id, body FROM tasks "
    f"WHERE project = ? AND queue = ? AND target = ? AND {CLAIMABLE} AND run_at <= ? "
    "ORDER BY priority DESC, run_at LIMIT ?"
)
# Does one queue hold a claimable task of one target? Through the claim index, stopping at the first rows.
PROBE_SQL = (
    f"SELECT id FROM tasks WHERE project = ? AND queue = ? AND target = ? AND {CLAIMABLE} AND run_at <= ? LIMIT ?"
)
_HAS_CLAIMABLE = (
    "EXISTS (SELECT 1 FROM tasks WHERE tasks.project = names.project AND tasks.queue = names.queue "
    f"AND target = ? AND {CLAIMABLE} AND run_at <= ?)"
)
_CLAIM_INDEX = "tasks INDEXED BY tasks_claimable_by_target"
# The projects holding any claimable task: a loose scan of the claim index, one seek per project (every text is
# >= '', which makes the first step a seek too).
PROJECTS_SQL = f"""
WITH RECURSIVE names(project) AS (
    SELECT (SELECT project FROM {_CLAIM_INDEX} WHERE {CLAIMABLE} AND project >= '' ORDER BY project LIMIT 1)
    UNION ALL
    SELECT (SELECT project FROM {_CLAIM_INDEX} WHERE {CLAIMABLE} AND project > names.project
            ORDER BY project LIMIT 1)
    FROM names WHERE names.project IS NOT NULL
)
SELECT project FROM names WHERE project IS NOT NULL"""
# Of one project's queues, those holding a claimable task of a target (params: project, project, target, now):
# a loose scan of the claim index within the project, one seek per queue.
PROBE_ALL_SQL = f"""
WITH RECURSIVE names(project, queue) AS (
    SELECT ?, (SELECT queue FROM {_CLAIM_INDEX} WHERE project = ? AND {CLAIMABLE} ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT names.project, (SELECT queue FROM {_CLAIM_INDEX} WHERE project = names.project AND {CLAIMABLE}
            AND queue > names.queue ORDER BY queue LIMIT 1)
    FROM names WHERE names.queue IS NOT NULL
)
SELECT queue FROM names WHERE queue IS NOT NULL AND {_HAS_CLAIMABLE}"""


def probe_queues_sql(count: int) -> str:
    """Of `count` (project, queue) pairs (the first params, flat), those holding a claimable task of a target
    (then: target, now)."""
    values = ", ".join("(?, ?)" for _ in range(count))
    return f"WITH names(project, queue) AS (VALUES {values}) SELECT project, queue FROM names WHERE {_HAS_CLAIMABLE}"


TIMED_OUT_SQL = (
    f"SELECT project, queue, id, body FROM tasks WHERE {CLAIMED} AND times_out_at <= ? ORDER BY times_out_at LIMIT ?"
)
FINISHED_SQL = f"SELECT rowid FROM tasks WHERE {FINISHED} AND modified_at < ? ORDER BY modified_at LIMIT ?"
# Params: project, recurring task id.
OUTSTANDING_SQL = f"SELECT count(*) FROM tasks WHERE project = ? AND recurring_task_id = ? AND {OUTSTANDING}"
# Params: project.
UNFINISHED_SQL = f"SELECT count(*) FROM tasks INDEXED BY tasks_unfinished WHERE project = ? AND {UNFINISHED}"
# Params: project.
COUNTS_SQL = "SELECT project, queue, state, count(*) FROM tasks WHERE project = ? GROUP BY queue, state"
# Every project's: a walk of the whole (covering) index, not of the table.
COUNTS_ALL_SQL = "SELECT project, queue, state, count(*) FROM tasks GROUP BY project, queue, state"
# One seek in `tasks_earliest` per queue. Params: project, queue.
EARLIEST_SQL = (
    "SELECT run_at FROM tasks INDEXED BY tasks_earliest "
    f"WHERE project = ? AND queue = ? AND {CLAIMABLE_ALT} ORDER BY run_at LIMIT 1"
)


def list_query(flt: TaskFilter, limit: int, after: Cursor | None) -> tuple[str, list[Any]]:
    """The listing of one project, newest first, keyset-paged on (created_at, queue, id)."""
    clauses: list[str] = ["project = ?"]
    params: list[Any] = [flt.project]
    if flt.queue is not None:
        clauses.append("queue = ?")
        params.append(flt.queue)
    if flt.states:
        clauses.append(f"state IN ({', '.join('?' * len(flt.states))})")
        params.extend(sorted(s.value for s in flt.states))
    if flt.kind is not None:
        clauses.append("kind = ?")
        params.append(flt.kind)
    if flt.recurring_task_id is not None:
        clauses.append("recurring_task_id = ?")
        params.append(flt.recurring_task_id)
    if after is not None:
        created, queue, task_id = after
        # Keyset on (created_at, queue, id) descending. With a queue filter, queue is constant, so state the
        # bound on (created_at, id) alone, which the (project, queue, created_at, id) index can seek to.
        if flt.queue is None:
            clauses.append("(created_at, queue, id) < (?, ?, ?)")
            params.extend((created, queue, task_id))
        elif queue == flt.queue:
            clauses.append("(created_at, id) < (?, ?)")
            params.extend((created, task_id))
        else:
            clauses.append("created_at <= ?" if queue > flt.queue else "created_at < ?")
            params.append(created)
    sql = (
        f"SELECT created_at, queue, id, body FROM tasks WHERE {' AND '.join(clauses)} "
        "ORDER BY created_at DESC, queue DESC, id DESC LIMIT ?"
    )
    params.append(limit)
    return sql, params
