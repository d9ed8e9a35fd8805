"""`tasques token create`: a token straight from the store, for bootstrapping (the first admin) and scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta
from typing import Any

from tasques.config import Config, ConfigError, load_config
from tasques.domain.duration import DurationError, parse_duration
from tasques.domain.errors import AlreadyExists, TasquesError
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.project import Role
from tasques.server import open_store, project_settings
from tasques.service.clock import utc_now
from tasques.service.projects import ProjectService


def add_token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="issue API tokens directly in the store (auth bootstrap)")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="issue a token and print it (shown once)")
    create.add_argument("--admin", action="store_true", help="an admin token (of every project)")
    create.add_argument("--project", help="the token's project (must exist unless --create-project)")
    create.add_argument("--role", choices=[r.value for r in Role], help="the token's role")
    create.add_argument("--create-project", action="store_true", help="create the project first if missing")
    create.add_argument("--name", help="what the token is for")
    create.add_argument("--expires-in", help="a Go-style duration, e.g. 720h; never expires if absent")


def run_token_cli(args: argparse.Namespace) -> int:
    if args.admin == bool(args.project or args.role):
        print("tasques token create: give --admin, or --project and --role", file=sys.stderr)
        return 2
    if not args.admin and not (args.project and args.role):
        print("tasques token create: --project and --role go together", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        expires_in = parse_duration(args.expires_in) if args.expires_in else None
        text = asyncio.run(_create(config, args, expires_in))
    except (ConfigError, DurationError, TasquesError, ValueError) as e:
        print(f"tasques token create: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


async def _create(config: Config, args: argparse.Namespace, expires_in: timedelta | None) -> str:
    store = open_store(config)
    await store.open()
    try:
        projects = ProjectService(store, utc_now, project_settings(config))
        project = DEFAULT_PROJECT if args.admin else args.project
        role = Role.ADMIN if args.admin else Role(args.role)
        if args.create_project:
            with contextlib.suppress(AlreadyExists):
                await projects.create(project)
        expires_at = utc_now() + expires_in if expires_in is not None else None
        issued = await projects.issue(project, role, name=args.name, expires_at=expires_at)
        return issued.text
    finally:
        await store.close()
