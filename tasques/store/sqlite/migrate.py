"""Schema migration on open: from any older `user_version` to `SCHEMA_VERSION`, in one transaction.

SQLite cannot change a primary key, so version 3 (the project first in every key) rebuilds the keyed tables:
rename the old table away, create the new one, copy its rows into project `default`, drop the old one. The
old indexes go with the old tables; the new ones are created after.
"""

from __future__ import annotations

import sqlite3

from tasques.store.sqlite.schema import (
    DDL,
    MIGRATE_1_TO_2,
    MIGRATE_3_TO_4,
    MIGRATED_PROJECT,
    SCHEMA_VERSION,
    TABLES,
    V2_COLUMNS,
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date; run inside the caller's write transaction."""
    version = conn.execute("PRAGMA user_version").fetchall()[0][0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {version} is newer than this server's {SCHEMA_VERSION}")
    if version == 1:
        for statement in MIGRATE_1_TO_2:
            conn.execute(statement)
    if 1 <= version < 3:
        _into_projects(conn)
    if version == 3:
        for statement in MIGRATE_3_TO_4:
            conn.execute(statement)
    for statement in DDL:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _into_projects(conn: sqlite3.Connection) -> None:
    existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # A version-1 file may lack the tables version 2 added; DDL creates them empty.
    present = [table for table in V2_COLUMNS if table in existing]
    for table in present:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_v2")
    for table in present:
        columns = V2_COLUMNS[table]
        conn.execute(TABLES[table])
        conn.execute(
            f"INSERT INTO {table} (project, {columns}) SELECT ?, {columns} FROM {table}_v2", (MIGRATED_PROJECT,)
        )
        conn.execute(f"DROP TABLE {table}_v2")
