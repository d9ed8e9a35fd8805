"""The `tasques` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from aiohttp import web

from tasques.api.openapi import build_document, render_yaml
from tasques.backup.cli import add_backup_parsers, run_backup_cli, run_restore_cli
from tasques.config import Config, ConfigError, LoggingConfig, load_config, render_defaults, split_host_port
from tasques.kibana.cli import add_kibana_parser, run_kibana_cli
from tasques.observe.apm import current_trace_ids
from tasques.observe.logs import add_logging_arguments, configure_logging, holding_records, no_trace_ids
from tasques.server import ELECTOR, STOP_DEADLINE, bounded, build_server, open_store
from tasques.token_cli import add_token_parser, run_token_cli
from tasques.worker.cli import add_worker_parser, run_worker_cli

log = logging.getLogger("tasques")


# aiohttp drains in two phases (wait, then cancel and wait), each up to its shutdown_timeout: together they
# take at most 70% of the grace, which leaves time to stop the leader loop and close the store.
DRAIN_SHARE = 0.35


async def serve(config: Config) -> None:
    host, port = split_host_port(config.server.bind_address)  # validated when the config was loaded
    app = build_server(config, open_store(config))
    grace = config.server.shutdown_grace.total_seconds()
    runner = web.AppRunner(
        app,
        shutdown_timeout=grace * DRAIN_SHARE,
        access_log=logging.getLogger("aiohttp.access") if config.server.access_log else None,
        # A worker that hangs up mid long-poll must not go on claiming tasks nobody will receive.
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("tasques serving on http://%s:%d with the %s store", host, port, config.store.kind)
    warn_if_open(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            _exit_now(f"second {sig.name} while stopping: exiting at once")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await stop.wait()
    finally:
        log.info("tasques stopping")
        await _stop(app, runner, grace)


async def _stop(app: web.Application, runner: web.AppRunner, grace: float) -> None:
    """Stop within `grace` seconds whatever the store does: every step gets only the time left."""
    # The last resort, on a thread so that it fires even if the loop is stuck in a blocking call.
    hard_stop = threading.Timer(grace, _exit_now, args=("did not stop within server.shutdown_grace; exiting now",))
    hard_stop.daemon = True
    hard_stop.start()
    deadline = app[STOP_DEADLINE]
    deadline.begin()
    # The leader steps down first and at once: it must not renew or retake the lock while requests drain.
    # Its release may use half the time left; a store that has not answered by then will not, and closing the
    # store (last) must still fit.
    leader = asyncio.create_task(app[ELECTOR].stop(deadline.left() / 2), name="leader-stop")
    await bounded("draining requests", runner.cleanup(), deadline.left())
    await asyncio.wait({leader}, timeout=deadline.left())
    # Whatever still runs (say a handler awaiting a hung store call) is cancelled, and not awaited past the grace.
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for t in rest:
        t.cancel()
    if rest:
        await asyncio.wait(rest, timeout=deadline.left())
    stuck = [t.get_name() for t in rest if not t.done()]
    if stuck:
        _exit_now(f"tasks {stuck} ignored cancellation; exiting now")
    hard_stop.cancel()


def warn_if_open(config: Config) -> bool:
    """Log a loud warning (and say so) when a server without auth listens beyond loopback."""
    host, _ = split_host_port(config.server.bind_address)
    if config.auth.enabled or config.server.basic_auth or _loopback(host):
        return False
    log.warning(
        "AUTH IS OFF on a non-loopback address (%s): anyone who can reach this port can create, claim and "
        "cancel tasks. Set auth.enabled (see the README, Projects and auth) or bind 127.0.0.1",
        host,
    )
    return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _exit_now(reason: str) -> None:
    log.error("tasques: %s", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasques", description="A durable task server.")
    parser.add_argument("--config", help="path to config.yaml (TASQUES_* env vars override it)")
    add_logging_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the server")
    sub.add_parser("openapi", help="print the OpenAPI document (YAML) that the server serves")
    sub.add_parser("config", help="print every setting at its default, documented (the shipped config.yaml)")
    hook = sub.add_parser("dummy-webhook", help="run a webhook target that fails every 7th and 11th request")
    hook.add_argument("--host", default="127.0.0.1")
    hook.add_argument("--port", type=int, default=8081)
    hook.add_argument("--min-delay-ms", type=float, default=100.0, help="shortest answer delay")
    hook.add_argument("--max-delay-ms", type=float, default=500.0, help="longest answer delay")
    add_worker_parser(sub)
    add_kibana_parser(sub)
    add_token_parser(sub)
    add_backup_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve_command(args)
    # The other commands read no config file: their logs are text at INFO unless the flags say otherwise.
    configure_logging(args.log_format or "text", args.log_level or "info")
    if args.command == "openapi":
        sys.stdout.write(render_yaml(build_document()))
        return 0
    if args.command == "config":
        sys.stdout.write(render_defaults())
        return 0
    if args.command == "dummy-webhook":
        from tasques.dispatch.dummy_webhook import WebhookState, run_webhook

        state = WebhookState(min_delay_ms=args.min_delay_ms, max_delay_ms=args.max_delay_ms)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_webhook(args.host, args.port, state))
        return 0
    if args.command == "kibana":
        return run_kibana_cli(args)
    if args.command == "token":
        return run_token_cli(args)
    if args.command == "backup":
        return run_backup_cli(args)
    if args.command == "restore":
        return run_restore_cli(args)
    return run_worker_cli(args)  # the one command left: worker


def _serve_command(args: argparse.Namespace) -> int:
    # Logging is configured by the config it reads: what loading it logs (warnings) is held until then.
    error: ConfigError | None = None
    with holding_records() as held:
        try:
            config = load_config(args.config)
        except ConfigError as e:
            error = e
    if error is not None:
        held.replay()  # no handler yet: Python's last resort prints the warnings on stderr
        print(f"tasques: {error}", file=sys.stderr)
        return 2
    config = with_logging_flags(config, args)
    configure_logging(
        config.logging.format,
        config.logging.level,
        service_name=config.apm.service_name,
        trace_ids=current_trace_ids if config.apm.enabled else no_trace_ids,
    )
    held.replay()
    try:
        asyncio.run(serve(config))
    except ConfigError as e:
        log.error("tasques: %s", e)
        return 2
    return 0


def with_logging_flags(config: Config, args: argparse.Namespace) -> Config:
    """`config` with the --log-level / --log-format flags, when given, in place of its logging settings."""
    if args.log_level is None and args.log_format is None:
        return config
    merged = LoggingConfig(
        format=args.log_format or config.logging.format, level=args.log_level or config.logging.level
    )
    return config.model_copy(update={"logging": merged})


if __name__ == "__main__":
    sys.exit(main())
