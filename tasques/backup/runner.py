"""One backup of the SQLite store: an online copy, checked, compressed, stored, and the old ones pruned.

Everything here blocks (disk, and the destination's network): the leader runs `take` on a worker thread
(`BackupJob`), the CLI directly. The copy uses SQLite's backup API on a connection of its own, so the server
keeps serving: the store is in WAL mode, where a reader never blocks the writer.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasques.backup.destinations import BackupStorageError, Destination

log = logging.getLogger("tasques.backup")

_NAME = re.compile(r"tasques-(\d{8}T\d{6}Z)\.db\.gz")
_STAMP = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup could not be taken (the database unreadable, or its copy failed the integrity check)."""


@dataclass(frozen=True)
class BackupRecord:
    name: str
    size: int  # bytes, compressed
    taken_at: datetime


def backup_name(at: datetime) -> str:
    """ "tasques-20261203T142500Z.db.gz" for `at` (an aware time) in UTC, to the second: names sort by time."""
    if at.tzinfo is None:
        raise ValueError("backup_name needs an aware datetime")
    return f"tasques-{at.astimezone(UTC).strftime(_STAMP)}.db.gz"


def parse_backup_name(name: str) -> datetime | None:
    """The UTC time in a name `backup_name` made; None for any other name."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC)
    except ValueError:  # digits in the right places, but no such date
        return None


def check_integrity(path: Path) -> None:
    """`PRAGMA integrity_check` on the database file `path`: `BackupError` unless it says ok."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            has_tasks = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"the copy is not a readable SQLite database: {e}") from None
    if rows != [("ok",)]:
        problems = " ".join("; ".join(str(r[0]) for r in rows[:5]).split())  # one line, and short
        problems = problems if len(problems) <= 300 else f"{problems[:300]}..."
        raise BackupError(f"the copy failed PRAGMA integrity_check: {problems}")
    if has_tasks is None:
        raise BackupError("the copy holds no tasques tables: it is not a Tasques database")


class BackupRunner:
    def __init__(self, db_path: str, destination: Destination, keep: int) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.db_path = db_path
        self.destination = destination
        self.keep = keep

    def take(self, now: datetime) -> BackupRecord:
        """Back up the database as of about `now`; `BackupError` or `BackupStorageError` if it failed (then
        nothing new is visible in the destination)."""
        name = backup_name(now)
        db = Path(self.db_path)
        if not db.is_file():
            raise BackupError(f"there is no database at {db}")
        # The copies go next to the database: its disk holds the live file, so it is the likeliest to have room.
        with tempfile.TemporaryDirectory(dir=db.parent, prefix=".tasques-backup-") as work:
            raw = Path(work) / "copy.db"
            self._copy(db, raw)
            check_integrity(raw)
            packed = Path(work) / name
            _gzip(raw, packed)
            raw.unlink()  # before the upload: the peak disk use is one uncompressed copy, not both
            size = packed.stat().st_size
            self.destination.put(name, packed)
        log.info("backup %s (%d bytes) stored in %s", name, size, self.destination.description)
        self.prune()
        return BackupRecord(name, size, now)

    def prune(self) -> list[str]:
        """Delete all but the `keep` newest backups; returns the names deleted. A failure is logged, not raised:
        the backup just stored stands, and the next run prunes again."""
        try:
            names = sorted(n for n in self.destination.names() if parse_backup_name(n) is not None)
            old = names[: max(0, len(names) - self.keep)]
            for n in old:
                self.destination.delete(n)
        except BackupStorageError as e:
            log.warning("pruning old backups in %s failed: %s", self.destination.description, e)
            return []
        return old

    def _copy(self, db: Path, target: Path) -> None:
        try:
            source = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
            copy = sqlite3.connect(target)
            try:
                # One step: the copy reads one snapshot in one read transaction, which in WAL mode never holds up
                # the writer. Copying in several steps would restart at every commit made meanwhile, and under a
                # steady write load might never finish.
                source.backup(copy, pages=-1)
                # A self-contained file: the copy must not need a -wal beside it.
                copy.execute("PRAGMA journal_mode = DELETE").fetchall()
            finally:
                copy.close()
                source.close()
        except sqlite3.Error as e:
            raise BackupError(f"could not copy the database {db}: {e}") from None


def _gzip(source: Path, target: Path) -> None:
    with source.open("rb") as raw, gzip.GzipFile(target, "wb", compresslevel=6, mtime=0) as packed:
        shutil.copyfileobj(raw, packed, _CHUNK)
    with target.open("rb") as f:
        os.fsync(f.fileno())
