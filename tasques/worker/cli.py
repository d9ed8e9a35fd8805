"""`tasques worker`: run a Worker with handlers loaded from a module.

    tasques worker --server http://127.0.0.1:8080 --queue emails --queue reports --handlers myapp.tasks
    python -m tasques.worker.cli --queue emails --handlers myapp.tasks:EMAIL_HANDLERS

`--handlers module[:attr]` imports `module` (the current directory is importable) and takes the mapping of
kind → async handler named `attr`, `HANDLERS` by default.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasques.observe.logs import add_logging_arguments, configure_logging
from tasques.worker.client import parse_duration
from tasques.worker.worker import Handler, Worker, WorkerError

log = logging.getLogger("tasques.worker")

DEFAULT_HANDLERS_ATTR = "HANDLERS"


class HandlerLoadError(Exception):
    """`--handlers` names no importable mapping of kind → handler."""


def load_handlers(spec: str) -> dict[str, Handler]:
    """Load `module[:attr]`: a mapping of task kind → async handler (`HANDLERS` when no attr is given)."""
    module_name, _, attr = spec.partition(":")
    attr = attr or DEFAULT_HANDLERS_ATTR
    if not module_name:
        raise HandlerLoadError(f"--handlers {spec!r}: expected module[:attr], e.g. myapp.tasks:HANDLERS")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise HandlerLoadError(f"--handlers {spec!r}: cannot import {module_name}: {e}") from e
    value: Any = getattr(module, attr, None)
    if value is None:
        raise HandlerLoadError(f"--handlers {spec!r}: module {module_name} has no attribute {attr}")
    if not isinstance(value, Mapping) or not value:
        raise HandlerLoadError(f"--handlers {spec!r}: {attr} must be a non-empty dict of kind -> async handler")
    handlers: dict[str, Handler] = {}
    for kind, handler in value.items():
        if not isinstance(kind, str) or not callable(handler):
            raise HandlerLoadError(f"--handlers {spec!r}: {attr}[{kind!r}] must map a kind (str) to a callable")
        handlers[kind] = handler
    return handlers


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return seconds


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _basic_auth(text: str) -> tuple[str, str]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text().strip()
        except OSError as e:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {e}") from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, or @FILE holding USER:PASSWORD")
    return user, password


def _token(text: str) -> str:
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text().strip()
        except OSError as e:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {e}") from None
    return text


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", default="http://127.0.0.1:8080", help="the Tasques server URL (default: %(default)s)"
    )
    parser.add_argument(
        "--queue", dest="queues", action="append", required=True, metavar="QUEUE", help="a queue to claim from; repeat"
    )
    parser.add_argument(
        "--handlers",
        required=True,
        metavar="MODULE[:ATTR]",
        help=f"module holding a dict of kind -> async handler, named {DEFAULT_HANDLERS_ATTR} unless ATTR is given",
    )
    parser.add_argument("--worker-id", help="this worker's id (default: host-pid-random)")
    parser.add_argument(
        "--concurrency", type=_positive_int, default=10, help="most handlers running at once (default: %(default)s)"
    )
    parser.add_argument(
        "--claim-amount",
        type=_positive_int,
        default=10,
        help="most tasks per claim, never more than free slots (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=100,
        help="most done/failed/report/unclaim calls sent in one batch request, up to 1000 (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-age",
        type=_duration,
        default=0.005,
        metavar="DURATION",
        help="longest a done/failed/report/unclaim call waits for its batch to fill (default: 5ms)",
    )
    parser.add_argument(
        "--block-for", type=_duration, default=5.0, metavar="DURATION", help="claim long-poll wait (default: 5s)"
    )
    parser.add_argument(
        "--heartbeat-every",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="report interval while a handler runs (default: a third of the task's processing_timeout)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=_duration,
        default=20.0,
        metavar="DURATION",
        help="on SIGTERM/SIGINT, how long running handlers may finish before their tasks are unclaimed (default: 20s)",
    )
    parser.add_argument(
        "--basic-auth", type=_basic_auth, metavar="USER:PASSWORD|@FILE", help="HTTP basic auth for the server"
    )
    parser.add_argument(
        "--token",
        type=_token,
        default=os.environ.get("TASQUES_TOKEN") or None,
        metavar="TOKEN|@FILE",
        help="a Bearer token (tq_ token or JWT) for the server; default: $TASQUES_TOKEN",
    )


def add_worker_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `worker` to the `tasques` command's subparsers (the result of `parser.add_subparsers()`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run a worker: claim tasks and run Python handlers on them",
        description="Claim tasks from QUEUEs and run the async handler for each task's kind.",
    )
    add_worker_arguments(parser)
    return parser


def run_worker_cli(args: argparse.Namespace) -> int:
    """Run the worker described by parsed `add_worker_arguments` options until SIGTERM/SIGINT; the exit code."""
    try:
        handlers = load_handlers(args.handlers)
        worker = Worker(
            args.server,
            args.worker_id,
            args.queues,
            handlers,
            claim_amount=args.claim_amount,
            concurrency=args.concurrency,
            block_for=args.block_for,
            batch_size=args.batch_size,
            batch_age=args.batch_age,
            heartbeat_every=args.heartbeat_every or None,
            shutdown_grace=args.shutdown_grace,
            basic_auth=args.basic_auth,
            token=args.token,
        )
    except (HandlerLoadError, ValueError, TypeError) as e:
        print(f"tasques worker: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(worker.run(handle_signals=True))
    except WorkerError as e:
        print(f"tasques worker: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasques worker", description="Run a Tasques worker.")
    add_logging_arguments(parser)
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_format or "text", args.log_level or "info")
    return run_worker_cli(args)


if __name__ == "__main__":
    sys.exit(main())
