"""The SQLite store: a single server on one database file."""

from tasques.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
