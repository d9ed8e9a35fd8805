"""Admin records: projects and their API tokens, versioned by `seq` like recurring tasks.

They are not per project themselves: a token names its project in an indexed column, for `list_tokens`.
One process owns the file, so every read sees every write at once (what revocation needs).
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.project import ApiToken, Project
from tasques.store.sqlite.records import SqliteRecords
from tasques.store.sqlite.rows import _expected_seq, _micros, _versioned

_Admin = TypeVar("_Admin", Project, ApiToken)
_WHAT = {"projects": "project", "tokens": "token"}  # a table's record, as error messages name it


class SqliteAdmin(SqliteRecords):
    """Projects and tokens on the connection threads."""

    # Projects

    async def insert_project(self, project: Project) -> Project:
        return await self._write(lambda conn: _insert(conn, "projects", {"name": project.name}, project))

    async def get_project(self, name: str) -> Project:
        return await self._read(lambda conn: _get(conn, "projects", "name", name, Project))

    async def update_project(self, project: Project) -> Project:
        return await self._write(lambda conn: _update(conn, "projects", "name", project.name, project))

    async def list_projects(self) -> list[Project]:
        def run(conn: sqlite3.Connection) -> list[Project]:
            rows = conn.execute("SELECT name, body FROM projects ORDER BY name").fetchall()
            parsed = (self._parse(Project, f"projects/{name}", body) for name, body in rows)
            return [p for p in parsed if p is not None]

        return await self._read(run)

    # Tokens

    async def insert_token(self, token: ApiToken) -> ApiToken:
        return await self._write(lambda conn: _insert(conn, "tokens", {"id": token.id, **_token_columns(token)}, token))

    async def get_token(self, token_id: str) -> ApiToken:
        return await self._read(lambda conn: _get(conn, "tokens", "id", token_id, ApiToken))

    async def update_token(self, token: ApiToken) -> ApiToken:
        return await self._write(lambda conn: _update(conn, "tokens", "id", token.id, token, _token_columns(token)))

    async def list_tokens(self, project: str) -> list[ApiToken]:
        def run(conn: sqlite3.Connection) -> list[ApiToken]:
            rows = conn.execute(
                "SELECT id, body FROM tokens WHERE project = ? ORDER BY created_at, id", (project,)
            ).fetchall()
            parsed = (self._parse(ApiToken, f"tokens/{token_id}", body) for token_id, body in rows)
            return [t for t in parsed if t is not None]

        return await self._read(run)


def _token_columns(token: ApiToken) -> dict[str, Any]:
    """The columns `list_tokens` filters and sorts on, copied from the body."""
    return {"project": token.project, "created_at": _micros(token.metadata.created_at)}


def _insert(conn: sqlite3.Connection, table: str, columns: dict[str, Any], record: _Admin) -> _Admin:
    """Insert `record` at version 1 with its key and copied `columns` (the key first); AlreadyExists if taken."""
    stored = _versioned(record, 1)
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    cur = conn.execute(
        f"INSERT INTO {table} ({names}, seq, body) VALUES ({marks}, 1, ?) ON CONFLICT DO NOTHING",
        (*columns.values(), stored.model_dump_json()),
    )
    if cur.rowcount == 0:
        raise AlreadyExists(f"{_WHAT[table]} {next(iter(columns.values()))} already exists")
    return stored


def _get(conn: sqlite3.Connection, table: str, key: str, value: str, model: type[_Admin]) -> _Admin:
    rows = conn.execute(f"SELECT body FROM {table} WHERE {key} = ?", (value,)).fetchall()
    if not rows:
        raise NotFound(f"no {_WHAT[table]} {value}")
    return model.model_validate_json(rows[0][0])


def _update(
    conn: sqlite3.Connection, table: str, key: str, value: str, record: _Admin, columns: dict[str, Any] | None = None
) -> _Admin:
    """Replace `record` in `table` (keyed by `key` = `value`), and its copied `columns`, if its stored version is
    still the one it carries."""
    expected = _expected_seq(record.metadata.version)
    stored = _versioned(record, expected + 1)
    copied: dict[str, Any] = columns or {}
    assignments = "".join(f", {name} = ?" for name in copied)
    cur = conn.execute(
        f"UPDATE {table} SET seq = ?, body = ?{assignments} WHERE {key} = ? AND seq = ?",
        (expected + 1, stored.model_dump_json(), *copied.values(), value, expected),
    )
    if cur.rowcount == 1:
        return stored
    if conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", (value,)).fetchall():
        raise VersionConflict(f"{_WHAT[table]} {value} changed since it was read")
    raise NotFound(f"no {_WHAT[table]} {value}")
