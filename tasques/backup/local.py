"""Backups in a local directory (another disk, a mounted volume): the `local` method."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from tasques.backup.destinations import BackupStorageError
from tasques.backup.runner import parse_backup_name


class LocalDirectory:
    """A `Destination`. A backup is copied under a hidden temporary name (which `names` never lists), flushed to
    disk, then renamed: a reader sees the whole file or none of it, even after a crash mid-copy."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"directory {directory}"

    def put(self, name: str, source: Path) -> None:
        _check_name(name)
        partial = self.directory / f".{name}.{uuid.uuid4().hex[:8]}.partial"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as src, partial.open("xb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.directory / name)
            _fsync_directory(self.directory)  # the rename itself survives a power loss
        except OSError as e:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise BackupStorageError(f"could not write {name} into {self.description}: {_reason(e)}") from None

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise BackupStorageError(f"could not list {self.description}: {_reason(e)}") from None
        return [n for n in entries if parse_backup_name(n) is not None and (self.directory / n).is_file()]

    def fetch(self, name: str, target: Path) -> None:
        _check_name(name)
        try:
            shutil.copyfile(self.directory / name, target)
        except FileNotFoundError:
            raise BackupStorageError(f"there is no backup {name} in {self.description}") from None
        except OSError as e:
            raise BackupStorageError(f"could not read {name} from {self.description}: {_reason(e)}") from None

    def delete(self, name: str) -> None:
        _check_name(name)
        try:
            (self.directory / name).unlink(missing_ok=True)
        except OSError as e:
            raise BackupStorageError(f"could not delete {name} from {self.description}: {_reason(e)}") from None


def _check_name(name: str) -> None:
    # Only names the runner makes: never a path that could leave the directory.
    if parse_backup_name(name) is None:
        raise BackupStorageError(f"{name!r} is not a backup name (tasques-YYYYMMDDTHHMMSSZ.db.gz)")


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
