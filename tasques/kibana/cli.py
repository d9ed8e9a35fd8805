"""`tasques kibana import` (post the saved objects to Kibana) and `tasques kibana ndjson` (print them)."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from pathlib import Path
from typing import Any

from tasques.config import ConfigError, load_config
from tasques.kibana.importer import (
    Credentials,
    KibanaRefused,
    KibanaUnreachable,
    describe_error,
    import_objects,
    import_url,
)
from tasques.kibana.objects import BadPrefix, for_prefix, load, to_ndjson

# Exit codes, so a setup script can tell "retry later" (Kibana still starting) from "fix something".
EXIT_OK = 0
EXIT_IMPORT_ERRORS = 1  # Kibana answered, but some objects were not imported
EXIT_USAGE = 2  # bad options, unreadable files, bad config (argparse uses 2 as well)
EXIT_REFUSED = 3  # an error status: 401 credentials, 403 privileges, 404 space, ...
EXIT_UNREACHABLE = 4  # no answer at all


def _secret(text: str) -> str:
    """A value, or `@FILE` to read it from a file (so it stays out of `ps` and shell history)."""
    if not text.startswith("@"):
        return text
    try:
        return Path(text[1:]).read_text().strip()
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {e}") from None


def add_kibana_parser(subparsers: Any) -> None:
    """Add `kibana` to the `tasques` command's subparsers."""
    kibana: argparse.ArgumentParser = subparsers.add_parser(
        "kibana", help="Kibana saved objects: data views, saved searches, a dashboard"
    )
    actions = kibana.add_subparsers(dest="kibana_command", required=True)
    imp = actions.add_parser(
        "import",
        help="import the saved objects into Kibana (overwrites earlier copies)",
        description="POST the saved objects to Kibana's saved objects import API, overwriting objects with "
        f"the same ids. Exit codes: {EXIT_OK} imported, {EXIT_IMPORT_ERRORS} some objects failed, "
        f"{EXIT_USAGE} bad options, {EXIT_REFUSED} Kibana refused the request, {EXIT_UNREACHABLE} no answer.",
    )
    imp.add_argument("--url", required=True, help="Kibana's base URL, e.g. https://kibana.example:5601")
    auth = imp.add_mutually_exclusive_group()
    auth.add_argument("--user", help="basic-auth user (with --password)")
    auth.add_argument("--api-key", type=_secret, metavar="KEY|@FILE", help="API key: the encoded value or id:key")
    imp.add_argument("--password", type=_secret, metavar="PASSWORD|@FILE", help="basic-auth password")
    imp.add_argument("--space", help="Kibana space id (default: the default space)")
    imp.add_argument("--ca-certs", metavar="FILE", help="PEM file of the CA that signed Kibana's certificate")
    imp.add_argument("--insecure", action="store_true", help="do not verify Kibana's TLS certificate")
    imp.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Kibana (default: %(default)s)")
    _add_prefix(imp)
    show = actions.add_parser("ndjson", help="print the saved objects (for a manual import in Kibana's UI)")
    _add_prefix(show)


def _add_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-prefix",
        help="the store's index_prefix (default: store.elasticsearch.index_prefix of the configuration)",
    )


def run_kibana_cli(args: argparse.Namespace) -> int:
    try:
        prefix = args.index_prefix or load_config(args.config).store.elasticsearch.index_prefix
        ndjson = to_ndjson(for_prefix(load(), prefix))
    except (ConfigError, BadPrefix) as e:
        return _fail(EXIT_USAGE, str(e))
    if args.kibana_command == "ndjson":
        sys.stdout.buffer.write(ndjson)
        return EXIT_OK
    if args.password is not None and args.user is None:
        return _fail(EXIT_USAGE, "--password needs --user")
    try:
        tls = _tls(args.ca_certs, insecure=args.insecure)
    except (OSError, ssl.SSLError) as e:
        return _fail(EXIT_USAGE, f"--ca-certs {args.ca_certs}: {e}")
    credentials = Credentials(user=args.user, password=args.password, api_key=args.api_key)
    target = import_url(args.url, args.space)
    try:
        result = asyncio.run(
            import_objects(args.url, ndjson, credentials, space=args.space, tls=tls, request_timeout=args.timeout)
        )
    except KibanaUnreachable as e:
        return _fail(EXIT_UNREACHABLE, str(e))
    except KibanaRefused as e:
        hint = " (check --user/--password or --api-key)" if e.status == 401 else ""
        return _fail(EXIT_REFUSED, f"POST {target}: {e}{hint}")
    if not result.success or result.errors:
        lines = [f"imported {result.success_count} objects; these failed:"]
        lines += [f"  {describe_error(error)}" for error in result.errors]
        return _fail(EXIT_IMPORT_ERRORS, "\n".join(lines))
    print(f"tasques kibana: imported {result.success_count} objects for index prefix {prefix!r} into {args.url}")
    return EXIT_OK


def _tls(ca_certs: str | None, *, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    if ca_certs is not None:
        return ssl.create_default_context(cafile=ca_certs)
    return True


def _fail(code: int, message: str) -> int:
    print(f"tasques kibana: {message}", file=sys.stderr)
    return code
