"""The `tasques` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from tasques.api.openapi import build_document, render_yaml
from tasques.config import Config, ConfigError, load_config, render_defaults, split_host_port
from tasques.server import build_server, open_store
from tasques.worker.cli import add_worker_parser, run_worker_cli

log = logging.getLogger("tasques")


async def serve(config: Config) -> None:
    host, port = split_host_port(config.server.bind_address)  # validated when the config was loaded
    app = build_server(config, open_store(config))
    runner = web.AppRunner(
        app,
        shutdown_timeout=config.server.shutdown_grace.total_seconds(),
        access_log=logging.getLogger("aiohttp.access") if config.server.access_log else None,
        # A worker that hangs up mid long-poll must not go on claiming tasks nobody will receive.
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("tasques serving on http://%s:%d with the %s store", host, port, config.store.kind)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("tasques stopping")
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasques", description="A durable task server.")
    parser.add_argument("--config", help="path to config.yaml (TASQUES_* env vars override it)")
    parser.add_argument("--log-level", default="INFO")
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    if args.command == "worker":
        return run_worker_cli(args)
    try:
        config = load_config(args.config)
        asyncio.run(serve(config))
    except ConfigError as e:
        print(f"tasques: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
