"""Where backups go: a directory or an S3-compatible bucket, behind one small synchronous interface.

Every method blocks (file or network I/O): callers run them in a worker thread, never on the event loop.
A destination stores whole, named, already-compressed backup files; `put` makes a backup visible only once it
is complete (a partial upload or copy is never listed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BackupStorageError(Exception):
    """A destination refused or could not be reached; the message says which and why (no secrets)."""


class Destination(Protocol):
    description: str  # for logs: "directory /backups", "s3://bucket/prefix at https://..."

    def put(self, name: str, source: Path) -> None:
        """Store the file `source` as `name`, visible only when complete; replaces an existing `name`."""

    def names(self) -> list[str]:
        """Every backup name stored (any order); only names this module could have written."""

    def fetch(self, name: str, target: Path) -> None:
        """Copy backup `name` into the file `target` (`BackupStorageError` if there is no such backup)."""

    def delete(self, name: str) -> None:
        """Remove backup `name`; no error if it is already gone."""
