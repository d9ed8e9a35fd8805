"""The `tasques serve` processes the browser tests drive: one per store kind, as a user would run it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import es_pool
from tests.async_bridge import run_async
from tests.process import ServerProcess, es_server_settings

# Every server of these tests may dispatch HTTP-target tasks to loopback (tests/ui/target.py), soon after a retry.
COMMON_SETTINGS = {
    "TASQUES_DISPATCH_ALLOWED_NETWORKS": "127.0.0.0/8",
    "TASQUES_DISPATCH_POLL_INTERVAL": "50ms",
    "TASQUES_TASKS_CLAIM_POLL_INTERVAL": "100ms",
}


@dataclass(frozen=True)
class UiServer:
    process: ServerProcess
    store: str  # "sqlite" or "elasticsearch", as GET /overview names it
    admin_token: str | None = None  # set when auth is on

    @property
    def url(self) -> str:
        return self.process.url

    def ui(self, route: str = "/") -> str:
        """The dashboard's address for a hash route such as "/queues/q"."""
        return f"{self.url}/ui#{route}"


def auth_settings() -> dict[str, str]:
    """A server's settings for auth on, with a new bootstrap admin token."""
    return {"TASQUES_AUTH_ENABLED": "true", "TASQUES_AUTH_ADMIN_TOKEN": secrets.token_hex(24)}


@contextmanager
def running_server(
    request: pytest.FixtureRequest, kind: str, tmp: Path, extra: dict[str, str] | None = None
) -> Iterator[UiServer]:
    es: tuple[str, str] | None = None
    if kind == "sqlite":
        settings = {"TASQUES_STORE_KIND": "sqlite", "TASQUES_STORE_SQLITE_PATH": str(tmp / "tasques.db")}
    else:
        url: str = request.getfixturevalue("elasticsearch_url")
        es = (url, es_pool.lease(url))
        settings = {**es_server_settings(*es), "TASQUES_STORE_ELASTICSEARCH_REFRESH_INTERVAL": "200ms"}
    settings = {**settings, **COMMON_SETTINGS, **(extra or {})}
    process = ServerProcess(settings, tmp / "server.log", cli_args=["--log-level", "WARNING"])
    try:
        process.start()
        yield UiServer(process, kind, (extra or {}).get("TASQUES_AUTH_ADMIN_TOKEN"))
    finally:
        process.stop()
        if es is not None:
            run_async(es_pool.give_back(*es))
