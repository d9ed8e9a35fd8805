"""What a real `tasques serve` writes on standard error, in each log format and level, on both stores.

At the default level a healthy server logs its lifecycle only: a few hundred requests add no line. At debug
every store call (and, on Elasticsearch, every client request) has its line. Secrets never appear.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.process import ServerProcess, delete_es_prefix, es_server_settings

PASSWORD = "pw-0c1d2e3f-never-logged"
TARGET_TOKEN = "tok-9a8b7c6d-never-logged"
TARGET_BODY = "body-5e4f3a2b-never-logged"
AUTH = ("ops", PASSWORD)
WORKER = {"X-TASQUES-WORKER-ID": "log-test-worker"}
TASKS = 100  # each is created, claimed and marked done: 300 requests
# All a healthy server says at the default level, whatever it is asked to do.
LIFECYCLE = re.compile(
    r"ignoring TASQUES_NOT_A_SETTING: it names no setting"
    r"|tasques serving on http://127\.0\.0\.1:\d+ with the (sqlite|elasticsearch) store"
    r"|leader lock acquired by \S+; starting \d+ jobs"
    r"|archive \S+: (lifecycle by ILM policy \S+|no ILM on this cluster; .*)"
    r"|tasques stopping"
)
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .+")


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    base = {
        "TASQUES_SERVER_BASIC_AUTH": json.dumps([{"name": AUTH[0], "password": PASSWORD}]),
        "TASQUES_DISPATCH_ENABLED": "false",  # HTTP-target tasks stay queued: their secrets stay in the store
    }
    if request.param == "sqlite":
        yield {**base, "TASQUES_STORE_KIND": "sqlite", "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}
        return
    url, prefix = request.getfixturevalue("elasticsearch_url"), request.getfixturevalue("es_index_prefix")
    try:
        yield {**base, **es_server_settings(url, prefix)}
    finally:
        asyncio.run(delete_es_prefix(url, prefix))


def run_workload(url: str, queue: str) -> list[str]:
    """Create, claim and finish TASKS tasks one request at a time, plus one HTTP-target task carrying secrets;
    returns the ids of the tasks."""
    with requests.Session() as s:
        s.auth = AUTH
        ids = []
        for n in range(TASKS):
            r = s.post(f"{url}/tasques", json={"queue": queue, "kind": "k", "args": {"n": n}}, timeout=10)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        secret: dict[str, Any] = {"url": "http://127.0.0.1:9/hook", "body": TARGET_BODY, "body_encoding": "text",
                                  "headers": {"Authorization": f"Bearer {TARGET_TOKEN}"}}  # fmt: skip
        task: dict[str, Any] = {"queue": f"{queue}-http", "kind": "k", "http_request": secret}
        r = s.post(f"{url}/tasques", json=task, timeout=10)
        assert r.status_code == 201, r.text
        claimed: list[dict[str, Any]] = []
        while len(claimed) < TASKS:
            body: dict[str, Any] = {"queues": [queue], "amount": 1, "block_for": "5s"}
            r = s.post(f"{url}/tasques/claims", json=body, headers=WORKER, timeout=10)
            assert r.status_code == 200, r.text
            claimed.extend(r.json())
        for got in claimed:
            r = s.put(f"{url}/tasques/done/{queue}/{got['id']}", json={"data": {"ok": 1}}, headers=WORKER, timeout=10)
            assert r.status_code == 200, r.text
        assert sorted(t["id"] for t in claimed) == sorted(ids)
        return ids


def serve_and_work(
    settings: dict[str, str], log: Path, cli_args: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Start a server, run the workload, stop it; returns (stderr lines, task ids)."""
    server = ServerProcess(settings, log, cli_args=cli_args or []).start()
    try:
        ids = run_workload(server.url, "logs")
    finally:
        server.stop()
    assert server.wait_exit(0) == 0, server.log_tail()
    return log.read_text().splitlines(), ids


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as JSON with the ECS fields, nested; fails on the first line that is not."""
    docs = []
    for line in lines:
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["@timestamp"]), line
        assert doc["log"]["level"] in {"debug", "info", "warning", "error", "critical"}, line
        assert isinstance(doc["log"]["logger"], str), line
        assert isinstance(doc["message"], str), line
        assert doc["service"]["name"] == "tasques", line
        assert isinstance(doc["ecs"]["version"], str), line
        assert not [k for k in doc if "." in k], line  # nested objects, never dotted keys
        docs.append(doc)
    return docs


def assert_no_secrets(text: str) -> None:
    for secret in (PASSWORD, TARGET_TOKEN, TARGET_BODY):
        assert secret not in text


def test_json_at_the_default_level_logs_no_line_per_request(store_settings: dict[str, str], tmp_path: Path) -> None:
    settings = {**store_settings, "TASQUES_LOGGING_FORMAT": "json", "TASQUES_NOT_A_SETTING": "x"}
    lines, ids = serve_and_work(settings, tmp_path / "server.log")
    docs = parsed(lines)
    # 301 creates, 100+ claims and 100 done calls, and a handful of lines: the lifecycle, nothing per request.
    assert len(docs) <= 8, "\n".join(lines)
    assert [d["message"] for d in docs if not LIFECYCLE.fullmatch(d["message"])] == []
    assert {d["log"]["level"] for d in docs} <= {"info", "warning"}
    text = "\n".join(lines)
    assert not [i for i in ids if i in text]
    assert "elastic_transport" not in text
    assert_no_secrets(text)
    # The warning about the unknown variable, logged while the config loaded, came out as JSON too.
    [warning] = [d for d in docs if d["log"]["logger"] == "tasques.config"]
    assert warning["log"]["level"] == "warning"


def test_json_at_debug_logs_every_store_call_and_no_secret(store_settings: dict[str, str], tmp_path: Path) -> None:
    settings = {**store_settings, "TASQUES_LOGGING_FORMAT": "json", "TASQUES_LOGGING_LEVEL": "debug"}
    lines, _ = serve_and_work(settings, tmp_path / "server.log")
    docs = parsed(lines)
    kind = store_settings["TASQUES_STORE_KIND"]
    store_calls = [d for d in docs if d["log"]["logger"] == "tasques.store.calls"]
    assert len(store_calls) >= 3 * TASKS  # one store call at least per request
    call = store_calls[-1]
    assert call["tasques"]["store"]["backend"] == kind
    assert isinstance(call["tasques"]["store"]["operation"], str)
    assert call["event"]["duration"] >= 0
    assert all(d["log"]["level"] == "debug" for d in store_calls)
    if kind == "elasticsearch":
        client_lines = [d for d in docs if d["log"]["logger"].startswith("elastic_transport")]
        assert len(client_lines) >= 3 * TASKS
    assert_no_secrets("\n".join(lines))


def test_the_log_flags_override_the_config(tmp_path: Path) -> None:
    settings = {
        "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db"),
        "TASQUES_LOGGING_FORMAT": "text",
        "TASQUES_LOGGING_LEVEL": "error",
    }
    server = ServerProcess(settings, tmp_path / "server.log", cli_args=["--log-level", "DEBUG", "--log-format", "json"])
    with server, requests.get(f"{server.url}/tasques/q/nope", timeout=5) as r:
        assert r.status_code == 404
    docs = parsed((tmp_path / "server.log").read_text().splitlines())
    assert [d for d in docs if d["log"]["logger"] == "tasques.store.calls"]
    assert [d for d in docs if d["message"].startswith("tasques serving on")]


def test_text_format_is_unchanged(tmp_path: Path) -> None:
    settings = {"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db"), "TASQUES_SERVER_NOPE": "1"}
    with ServerProcess(settings, tmp_path / "server.log") as server:
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
    lines = (tmp_path / "server.log").read_text().splitlines()
    assert lines
    assert [line for line in lines if not TEXT_LINE.fullmatch(line)] == []
    assert [line for line in lines if " INFO tasques: tasques serving on http://127.0.0.1:" in line]
    assert [line for line in lines if " WARNING tasques.config: ignoring TASQUES_SERVER_NOPE" in line]
    assert [line for line in lines if line.endswith(" INFO tasques: tasques stopping")]
