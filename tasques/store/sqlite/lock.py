"""The database's "in use" mark: an advisory `flock` on a sidecar file `<db>.lock`.

Every open `SqliteStore` holds a shared lock on it for as long as it is open; `tasques restore` takes it exclusive,
non-blocking, so it refuses while any store (a server, a `tasques token` run) has the database open. Shared, so
several stores on one file (in one process or several) never refuse each other. flock locks belong to the open
file, not the process: a restore in the same process as an open store is refused too.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO


def lock_path(db_path: str) -> str:
    return f"{db_path}.lock"


def hold_shared(db_path: str) -> IO[bytes]:
    """Take the shared lock (blocking calls only: run on a worker thread). Keep the file open to hold it;
    `OSError` if the lock file cannot be created, `BlockingIOError` while a restore holds it exclusive."""
    return _locked(db_path, fcntl.LOCK_SH)


def try_exclusive(db_path: str) -> IO[bytes] | None:
    """The exclusive lock, or None at once when a store holds the database. Close the file to release it."""
    os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
    try:
        return _locked(db_path, fcntl.LOCK_EX)
    except BlockingIOError:
        return None


def _locked(db_path: str, operation: int) -> IO[bytes]:
    """The lock file, open and locked with `operation` without waiting (`BlockingIOError` when it cannot be)."""
    handle = open(lock_path(db_path), "ab")  # noqa: SIM115  # held open on purpose: the lock lives as long as it
    try:
        fcntl.flock(handle.fileno(), operation | fcntl.LOCK_NB)
    except BaseException:
        handle.close()
        raise
    return handle
