"""`tasques restore`: a backup becomes the database again, checked first, swapped in whole.

Blocking; run with the server stopped (it refuses otherwise: see `tasques.store.sqlite.lock`).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import sqlite3
import tempfile
import zlib
from pathlib import Path

from tasques.backup.destinations import BackupStorageError, Destination
from tasques.backup.runner import BackupError, check_integrity, parse_backup_name
from tasques.store.sqlite.lock import lock_path, try_exclusive

log = logging.getLogger("tasques.backup")


class RestoreError(Exception):
    """The restore was refused or failed; the database is as it was. The message says why."""


def restore(db_path: str, source: str, destination: Destination | None) -> Path | None:
    """Replace the database at `db_path` by the backup `source`: a local .db.gz file or, when no such file exists,
    the name of a backup in `destination`. Returns where the replaced database was kept (`<db>.before-restore`,
    None if there was none)."""
    db = Path(db_path)
    if not db.parent.is_dir():
        raise RestoreError(f"the database directory {db.parent} does not exist")
    local = Path(source)
    if not local.is_file():
        if destination is None:
            raise RestoreError(f"there is no file {source} (and no backup destination to look it up in)")
        if parse_backup_name(source) is None:
            raise RestoreError(
                f"{source!r} is neither a file nor a backup name (tasques-YYYYMMDDTHHMMSSZ.db.gz) in "
                f"{destination.description}"
            )
    with tempfile.TemporaryDirectory(dir=db.parent, prefix=".tasques-restore-") as work:
        packed = local
        if not local.is_file():
            assert destination is not None
            packed = Path(work) / source
            try:
                destination.fetch(source, packed)
            except BackupStorageError as e:
                raise RestoreError(str(e)) from None
        # In the database's directory, so the final rename is atomic (one file system).
        candidate = Path(work) / "restored.db"
        _gunzip(packed, candidate, source)
        try:
            check_integrity(candidate)
        except BackupError as e:
            raise RestoreError(f"{source} is not restored: {e}") from None
        held = try_exclusive(db_path)
        if held is None:
            raise RestoreError(
                f"{db} is in use by a running server (or another tasques command): stop it, then restore "
                f"(lock file {lock_path(db_path)})"
            )
        try:
            previous = _keep_previous(db)
            _swap(candidate, db)
        finally:
            held.close()
    log.info("restored %s from %s", db, source)
    return previous


def _gunzip(packed: Path, target: Path, source: str) -> None:
    try:
        with gzip.open(packed, "rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise RestoreError(f"{source} is not a complete gzip backup: {e}") from None


def _keep_previous(db: Path) -> Path | None:
    """A hard link to the database about to be replaced, so a restore of the wrong backup can be undone."""
    if not db.is_file():
        return None
    try:
        # Folds the -wal into the file first (no server has it open: we hold the lock), so the link is whole.
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()
        aside = db.with_name(f"{db.name}.before-restore")
        aside.unlink(missing_ok=True)
        os.link(db, aside)
    except (sqlite3.Error, OSError) as e:
        log.warning("the replaced database %s is not kept: %s", db, e)
        return None
    return aside


def _swap(candidate: Path, db: Path) -> None:
    # The old -wal and -shm go first: a -wal left beside the new file would be replayed into it. A crash between
    # the two steps leaves the old database at its last checkpoint, and running the restore again finishes it.
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{db}{suffix}")
    os.replace(candidate, db)
    fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
