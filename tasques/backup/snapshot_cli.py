"""`tasques snapshot create|list|restore`: Elasticsearch snapshots of the configured store's indices."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from tasques.backup.snapshots import SnapshotError, SnapshotInfo, Snapshots, snapshot_name
from tasques.config import Config, ConfigError, load_config
from tasques.store.elasticsearch.core import build_client


def add_snapshot_parser(sub: Any) -> None:
    snapshot = sub.add_parser("snapshot", help="Elasticsearch snapshots of the store's indices")
    actions = snapshot.add_subparsers(dest="snapshot_command", required=True)
    repo_help = "snapshot repository (default: {index_prefix}-snapshots)"
    create = actions.add_parser("create", help="snapshot the store's indices (registers the repository if missing)")
    create.add_argument("--repository", help=repo_help)
    create.add_argument(
        "--location", help="file-system location of a new repository, under the nodes' path.repo (default: its name)"
    )
    create.add_argument("--name", help="snapshot name (default: tasques-<UTC time>, e.g. tasques-20261203t142500z)")
    create.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="wait until it is complete (default)"
    )
    listing = actions.add_parser("list", help="the repository's snapshots")
    listing.add_argument("--repository", help=repo_help)
    restore = actions.add_parser("restore", help="restore a snapshot into an empty index prefix")
    restore.add_argument("name", help="the snapshot to restore")
    restore.add_argument("--repository", help=repo_help)
    restore.add_argument("--into-prefix", help="restore under this index prefix (default: the configured one)")


def run_snapshot_cli(args: argparse.Namespace) -> int:
    command = f"tasques snapshot {args.snapshot_command}"
    try:
        config = load_config(args.config)
        if config.store.kind != "elasticsearch":
            raise ConfigError(f"snapshots are of the Elasticsearch store; store.kind is {config.store.kind}")
        lines = asyncio.run(_run(config, args))
    except (ConfigError, SnapshotError) as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


async def _run(config: Config, args: argparse.Namespace) -> list[str]:
    settings = config.store.elasticsearch
    async with build_client(settings) as client:
        snapshots = Snapshots(client, settings.index_prefix, args.repository)
        if args.snapshot_command == "create":
            await snapshots.ensure_repository(args.location)
            name = args.name or snapshot_name(datetime.now(UTC))
            info = await snapshots.create(name, wait=args.wait)
            return [name if info is not None else f"{name} (started; `tasques snapshot list` shows its state)"]
        if args.snapshot_command == "list":
            return [_row(info) for info in await snapshots.list_snapshots()]
        restored = await snapshots.restore(args.name, args.into_prefix)
        return [f"restored {restored.snapshot} into index prefix {restored.prefix}: {', '.join(restored.indices)}"]


def _row(info: SnapshotInfo) -> str:
    def at(t: datetime | None) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else "-"

    return f"{info.name}\t{info.state}\t{at(info.start)}\t{at(info.end)}\t{info.indices} indices"
