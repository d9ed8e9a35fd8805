"""The SQLite schema. Bump `SCHEMA_VERSION` (the `user_version` pragma) and add a migration on any change.

Every record's key starts with its project (a tenant), and so does every index a per-project query uses; the
leader's sweeps across projects (timeouts, archiving, attempt retention) keep indexes without it.
"""

from __future__ import annotations

from tasques.domain.limits import DEFAULT_PROJECT

SCHEMA_VERSION = 4

# Columns shared by live and archived tasks. `body` is the whole Task as JSON, including its version;
# the other columns are copies of the fields the queries filter and sort on.
TASK_COLUMNS = (
    "project, queue, id, state, priority, run_at, times_out_at, kind, recurring_task_id, created_at, modified_at, "
    "seq, body, target, batch_id"
)
# The columns of version 3, before batches.
_V3_TASK_COLUMNS = (
    "project, queue, id, state, priority, run_at, times_out_at, kind, recurring_task_id, created_at, modified_at, "
    "seq, body, target"
)

_TASK_COLUMN_DEFS = """
    project TEXT NOT NULL,
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
    target TEXT NOT NULL DEFAULT 'pull',
    -- set on the tasks of a batch
    batch_id TEXT"""

# Partial indexes keep every hot query proportional to its result, not to the backlog of finished tasks.
# Their WHERE clauses must be repeated verbatim in the queries that are meant to use them.
CLAIMABLE = "state IN ('queued', 'failed')"
FINISHED = "state IN ('done', 'dead', 'cancelled')"
# The claimable states again, written otherwise: a partial index is usable only by queries repeating its text.
CLAIMABLE_ALT = "state IN ('failed', 'queued')"
OUTSTANDING = "recurring_task_id IS NOT NULL AND state NOT IN ('done', 'dead', 'cancelled')"
# What a project's quota counts.
UNFINISHED = "state NOT IN ('done', 'dead', 'cancelled')"
CLAIMED = "state = 'claimed'"
OPEN_BATCH = "open = 1"
DEAD = "state = 'dead'"
WAITING = "state = 'waiting'"

# Table name -> its CREATE statement. The migration to version 3 rebuilds the first five from these.
TABLES: dict[str, str] = {
    "tasks": f"CREATE TABLE IF NOT EXISTS tasks ({_TASK_COLUMN_DEFS},\n    PRIMARY KEY (project, queue, id))",
    "archived_tasks": f"CREATE TABLE IF NOT EXISTS archived_tasks ({_TASK_COLUMN_DEFS},\n"
    "    archived_at INTEGER NOT NULL,\n    PRIMARY KEY (project, queue, id))",
    "recurring_tasks": "CREATE TABLE IF NOT EXISTS recurring_tasks (project TEXT NOT NULL, id TEXT NOT NULL, "
    "seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (project, id))",
    "queue_settings": "CREATE TABLE IF NOT EXISTS queue_settings (project TEXT NOT NULL, queue TEXT NOT NULL, "
    "seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (project, queue))",
    "attempts": "CREATE TABLE IF NOT EXISTS attempts (project TEXT NOT NULL, queue TEXT NOT NULL, "
    "task_id TEXT NOT NULL, run INTEGER NOT NULL, attempt INTEGER NOT NULL, ended_at INTEGER NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (project, queue, task_id, run, attempt))",
    "locks": "CREATE TABLE IF NOT EXISTS locks ("
    "name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, seq INTEGER NOT NULL)",
    "projects": "CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    "tokens": "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, project TEXT NOT NULL, "
    "created_at INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL)",
    # One row per (project, worker id): plain columns, so a sighting merges in one upsert (see workers.py).
    # `queues` is a JSON array of names, sorted.
    "workers": "CREATE TABLE IF NOT EXISTS workers (project TEXT NOT NULL, id TEXT NOT NULL, "
    "first_seen_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, queues TEXT NOT NULL DEFAULT '[]', "
    "version TEXT, host TEXT, draining INTEGER NOT NULL DEFAULT 0, drained_at INTEGER, PRIMARY KEY (project, id))",
    # `open` is 1 until the batch completes or fails (copied from the body, for the leader's sweep).
    "batches": "CREATE TABLE IF NOT EXISTS batches (project TEXT NOT NULL, id TEXT NOT NULL, "
    "open INTEGER NOT NULL, completed_at INTEGER, created_at INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (project, id))",
    # Dependency edges (see sqlite/dependencies.py): the primary key is the index find_dependents seeks.
    "task_deps": "CREATE TABLE IF NOT EXISTS task_deps (project TEXT NOT NULL, dep_queue TEXT NOT NULL, "
    "dep_id TEXT NOT NULL, queue TEXT NOT NULL, id TEXT NOT NULL, "
    "PRIMARY KEY (project, dep_queue, dep_id, queue, id)) WITHOUT ROWID",
}

INDEXES: tuple[str, ...] = (
    # Claims and probes of one project's queue; the dispatcher's claims across projects seek it per project.
    "CREATE INDEX IF NOT EXISTS tasks_claimable_by_target ON tasks "
    f"(project, queue, target, priority DESC, run_at) WHERE {CLAIMABLE}",
    # The reaper's sweep across every project, oldest deadline first.
    f"CREATE INDEX IF NOT EXISTS tasks_timeouts ON tasks (times_out_at) WHERE {CLAIMED}",
    # find_claimed_by: one project's claimed tasks.
    f"CREATE INDEX IF NOT EXISTS tasks_claimed ON tasks (project) WHERE {CLAIMED}",
    # The archiver's sweep across every project.
    f"CREATE INDEX IF NOT EXISTS tasks_finished_v2 ON tasks (modified_at) WHERE {FINISHED}",
    f"CREATE INDEX IF NOT EXISTS tasks_outstanding_v2 ON tasks (project, recurring_task_id) WHERE {OUTSTANDING}",
    f"CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (project) WHERE {UNFINISHED}",
    "CREATE INDEX IF NOT EXISTS tasks_listing ON tasks (project, created_at, queue, id)",
    "CREATE INDEX IF NOT EXISTS tasks_queue_listing ON tasks (project, queue, created_at, id)",
    "CREATE INDEX IF NOT EXISTS tasks_counts ON tasks (project, queue, state)",
    # A queue's earliest waiting run_at in one index seek (queue_counts). Its WHERE is CLAIMABLE_ALT, not CLAIMABLE,
    # so the claim query cannot pick it (and sort) over tasks_claimable_by_target. A new index needs no schema
    # version: every open creates what is missing, and older servers ignore it.
    f"CREATE INDEX IF NOT EXISTS tasks_earliest ON tasks (project, queue, run_at) WHERE {CLAIMABLE_ALT}",
    # Dead tasks of a project by time of death, live and archived, and of one queue (find_dead: replay).
    f"CREATE INDEX IF NOT EXISTS tasks_dead ON tasks (project, modified_at, queue, id) WHERE {DEAD}",
    f"CREATE INDEX IF NOT EXISTS tasks_dead_by_queue ON tasks (project, queue, modified_at, id) WHERE {DEAD}",
    f"CREATE INDEX IF NOT EXISTS archived_dead ON archived_tasks (project, modified_at, queue, id) WHERE {DEAD}",
    "CREATE INDEX IF NOT EXISTS archived_dead_by_queue ON archived_tasks (project, queue, modified_at, id) "
    f"WHERE {DEAD}",
    # One queue's finished tasks by finish time: finished in the last minute, and the queue's history purge.
    f"CREATE INDEX IF NOT EXISTS tasks_finished_by_queue ON tasks (project, queue, modified_at) WHERE {FINISHED}",
    "CREATE INDEX IF NOT EXISTS attempts_ended ON attempts (ended_at)",
    # The leader's dependency repair sweep, across every project.
    f"CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks (project, queue, id) WHERE {WAITING}",
    "CREATE INDEX IF NOT EXISTS tokens_by_project ON tokens (project, created_at, id)",
    # forget_workers: the leader's sweep of workers silent for long, across every project.
    "CREATE INDEX IF NOT EXISTS workers_last_seen ON workers (last_seen_at)",
    # Every server's poll of the draining workers (list_workers(draining_only=True)).
    "CREATE INDEX IF NOT EXISTS workers_draining ON workers (project, id) WHERE draining = 1",
    # A batch's tasks counted by state, live and archived (batch_counts); only tasks of a batch are in them.
    "CREATE INDEX IF NOT EXISTS tasks_batch ON tasks (project, batch_id, state) WHERE batch_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS archived_tasks_batch ON archived_tasks (project, batch_id, state) "
    "WHERE batch_id IS NOT NULL",
    # The leader's sweep of open batches, oldest first.
    f"CREATE INDEX IF NOT EXISTS batches_open ON batches (created_at, project, id) WHERE {OPEN_BATCH}",
)

DDL: tuple[str, ...] = (*TABLES.values(), *INDEXES)

# Run before DDL on a database at user_version 1: the new column, and the indexes whose WHERE clauses changed.
MIGRATE_1_TO_2: tuple[str, ...] = (
    "ALTER TABLE tasks ADD COLUMN target TEXT NOT NULL DEFAULT 'pull'",
    "ALTER TABLE archived_tasks ADD COLUMN target TEXT NOT NULL DEFAULT 'pull'",
    "DROP INDEX IF EXISTS tasks_claimable",
    "DROP INDEX IF EXISTS tasks_finished",
    "DROP INDEX IF EXISTS tasks_outstanding",
)

# Version 3 puts the project first in these tables' primary keys; their version-2 columns, copied as they are.
_V2_TASK_COLUMNS = _V3_TASK_COLUMNS.removeprefix("project, ")
V2_COLUMNS: dict[str, str] = {
    "tasks": _V2_TASK_COLUMNS,
    "archived_tasks": f"{_V2_TASK_COLUMNS}, archived_at",
    "recurring_tasks": "id, seq, body",
    "queue_settings": "queue, seq, body",
    "attempts": "queue, task_id, run, attempt, ended_at, body",
}
# Where the records of a database older than version 3 go: the project of a server without auth.
MIGRATED_PROJECT = DEFAULT_PROJECT

# Run before DDL on a database at user_version 3 (after the steps above on older ones, whose rebuilt tables
# already have these columns): batches and dependencies (issue 17).
MIGRATE_3_TO_4: tuple[str, ...] = (
    "ALTER TABLE tasks ADD COLUMN batch_id TEXT",
    "ALTER TABLE archived_tasks ADD COLUMN batch_id TEXT",
)
