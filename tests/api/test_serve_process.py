"""`tasques serve` started as a real process answers on the configured address."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.process import ServerProcess


def test_health_from_cli_process(tmp_path: Path) -> None:
    settings = {"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}
    with (
        ServerProcess(settings, tmp_path / "server.log") as server,
        urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp,
    ):
        body = json.loads(resp.read())
    assert body == {"status": "ok", "store": "sqlite"}


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess({"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}, tmp_path / "server.log").start()
    server.stop()
    assert "tasques stopping" in server.log_tail()
