"""The configured destination of backups."""

from __future__ import annotations

from pathlib import Path

from tasques.backup.destinations import Destination
from tasques.backup.local import LocalDirectory
from tasques.config import BackupConfig


def destination_for(config: BackupConfig) -> Destination:
    """`backup.method` as a `Destination`. The object storage client is imported only when it is the method."""
    if config.method == "object_storage":
        # Written beside this module by the object storage work; the ignore covers a checkout without it yet.
        from tasques.backup.object_storage import ObjectStorage  # type: ignore[import-untyped, unused-ignore]

        storage: Destination = ObjectStorage(config.object_storage)
        return storage
    return LocalDirectory(Path(config.local.directory))
