"""`tasques backup now` and `tasques restore SOURCE`: the SQLite store's backups by hand (the leader takes them on
schedule). Both read the config as `serve` does (--config, TASQUES_* variables)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tasques.backup.destinations import BackupStorageError, Destination
from tasques.backup.factory import destination_for
from tasques.backup.restore import RestoreError, restore
from tasques.backup.runner import BackupError, BackupRunner
from tasques.config import Config, ConfigError, load_config
from tasques.service.clock import utc_now

EXIT_FAILED = 1  # the backup could not be taken or stored
EXIT_REFUSED = 2  # bad config, or a restore refused (server running, bad backup, no such source)


def add_backup_parsers(sub: Any) -> None:
    backup = sub.add_parser("backup", help="back up the SQLite store now (also while the server runs)")
    actions = backup.add_subparsers(dest="backup_command", required=True)
    actions.add_parser("now", help="take one backup into backup.method's destination and print its name")
    back = sub.add_parser("restore", help="replace the SQLite database by a backup (the server must be stopped)")
    back.add_argument("source", help="a .db.gz backup file, or the name of a backup in the configured destination")


def run_backup_cli(args: argparse.Namespace) -> int:
    try:
        config = _sqlite_config(args.config, "backup now")
        destination = destination_for(config.backup)
    except (ConfigError, ImportError, BackupStorageError) as e:
        print(f"tasques backup now: {e}", file=sys.stderr)
        return EXIT_REFUSED
    runner = BackupRunner(config.store.sqlite.path, destination, config.backup.keep)
    try:
        record = runner.take(utc_now())
    except (BackupError, BackupStorageError, OSError) as e:
        print(f"tasques backup now: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(record.name)
    return 0


def run_restore_cli(args: argparse.Namespace) -> int:
    try:
        config = _sqlite_config(args.config, "restore")
        destination: Destination | None = None
        if not Path(args.source).is_file():  # a name: only then is the destination needed (and its client)
            destination = destination_for(config.backup)
        previous = restore(config.store.sqlite.path, args.source, destination)
    except (ConfigError, ImportError, BackupStorageError, RestoreError, OSError) as e:
        print(f"tasques restore: {e}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"restored {config.store.sqlite.path} from {args.source}")
    if previous is not None:
        print(f"the replaced database is kept as {previous}")
    return 0


def _sqlite_config(path: str | None, command: str) -> Config:
    config = load_config(path)
    if config.store.kind != "sqlite":
        raise ConfigError(f"{command} is for the SQLite store; Elasticsearch is backed up with tasques snapshot")
    return config
