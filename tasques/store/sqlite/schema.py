"""The SQLite schema. Bump `SCHEMA_VERSION` (the `user_version` pragma) and add a migration on any change."""

from __future__ import annotations

SCHEMA_VERSION = 2

# Columns shared by live and archived tasks. `body` is the whole Task as JSON, including its version;
# the other columns are copies of the fields the queries filter and sort on.
TASK_COLUMNS = (
    "queue, id, state, priority, run_at, times_out_at, kind, recurring_task_id, created_at, modified_at, seq, body, "
    "target"
)

_TASK_COLUMN_DEFS = """
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_at INTEGER NOT NULL,            -- unix microseconds, as are all times below
    times_out_at INTEGER,               -- set while claimed
    kind TEXT NOT NULL,
    recurring_task_id TEXT,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,               -- metadata.version.seq_num
    body TEXT NOT NULL,
    -- pull or http: who may claim it
    target TEXT NOT NULL DEFAULT 'pull'"""

# Partial indexes keep every hot query proportional to its result, not to the backlog of finished tasks.
# Their WHERE clauses must be repeated verbatim in the queries that are meant to use them.
CLAIMABLE = "state IN ('queued', 'failed')"
FINISHED = "state IN ('done', 'dead', 'cancelled')"
# The claimable states again, written otherwise: a partial index is usable only by queries repeating its text.
WAITING = "state IN ('failed', 'queued')"
OUTSTANDING = "recurring_task_id IS NOT NULL AND state NOT IN ('done', 'dead', 'cancelled')"

DDL: tuple[str, ...] = (
    f"CREATE TABLE IF NOT EXISTS tasks ({_TASK_COLUMN_DEFS},\n    PRIMARY KEY (queue, id))",
    f"CREATE INDEX IF NOT EXISTS tasks_claimable_by_target ON tasks (queue, target, priority DESC, run_at) "
    f"WHERE {CLAIMABLE}",
    "CREATE INDEX IF NOT EXISTS tasks_timeouts ON tasks (times_out_at) WHERE state = 'claimed'",
    f"CREATE INDEX IF NOT EXISTS tasks_finished_v2 ON tasks (modified_at) WHERE {FINISHED}",
    f"CREATE INDEX IF NOT EXISTS tasks_outstanding_v2 ON tasks (recurring_task_id) WHERE {OUTSTANDING}",
    "CREATE INDEX IF NOT EXISTS tasks_listing ON tasks (created_at, queue, id)",
    "CREATE INDEX IF NOT EXISTS tasks_queue_listing ON tasks (queue, created_at, id)",
    "CREATE INDEX IF NOT EXISTS tasks_counts ON tasks (queue, state)",
    # A queue's earliest waiting run_at in one index seek (queue_counts). Its WHERE is WAITING, not CLAIMABLE,
    # so the claim query cannot pick it (and sort) over tasks_claimable_by_target. A new index needs no schema
    # version: every open creates what is missing, and older servers ignore it.
    f"CREATE INDEX IF NOT EXISTS tasks_earliest ON tasks (queue, run_at) WHERE {WAITING}",
    f"CREATE TABLE IF NOT EXISTS archived_tasks ({_TASK_COLUMN_DEFS},\n"
    "    archived_at INTEGER NOT NULL,\n    PRIMARY KEY (queue, id))",
    "CREATE TABLE IF NOT EXISTS recurring_tasks (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_settings (queue TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attempts (queue TEXT NOT NULL, task_id TEXT NOT NULL, run INTEGER NOT NULL, "
    "attempt INTEGER NOT NULL, ended_at INTEGER NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (queue, task_id, run, attempt))",
    "CREATE INDEX IF NOT EXISTS attempts_ended ON attempts (ended_at)",
    "CREATE TABLE IF NOT EXISTS locks ("
    "name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, seq INTEGER NOT NULL)",
)

# Run before DDL on a database at user_version 1: the new column, and the indexes whose WHERE clauses changed.
MIGRATE_1_TO_2: tuple[str, ...] = (
    "ALTER TABLE tasks ADD COLUMN target TEXT NOT NULL DEFAULT 'pull'",
    "ALTER TABLE archived_tasks ADD COLUMN target TEXT NOT NULL DEFAULT 'pull'",
    "DROP INDEX IF EXISTS tasks_claimable",
    "DROP INDEX IF EXISTS tasks_finished",
    "DROP INDEX IF EXISTS tasks_outstanding",
)
