"""`tasques serve` started as a real process answers on the configured address."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import pytest

from tasques.cli import warn_if_open
from tasques.config import Config
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


def test_auth_off_beyond_loopback_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    def config(bind: str, **auth: object) -> Config:
        return Config.model_validate({"server": {"bind_address": bind}, "auth": auth})

    with caplog.at_level(logging.WARNING, logger="tasques"):
        assert warn_if_open(config("0.0.0.0:8080"))
        assert warn_if_open(config("[::]:8080"))
        assert warn_if_open(config("tasques.internal:8080"))
        assert not warn_if_open(config("127.0.0.1:8080"))
        assert not warn_if_open(config("[::1]:8080"))
        assert not warn_if_open(config("localhost:8080"))
        assert not warn_if_open(config("0.0.0.0:8080", enabled=True))
    warnings = [r.getMessage() for r in caplog.records if "AUTH IS OFF" in r.getMessage()]
    assert len(warnings) == 3
