"""JSON log lines written inside a traced request carry its APM trace and transaction ids (log correlation),
as the real agent reports them to the intake stand-in; lines outside any transaction carry none."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.config import Config
from tasques.observe.apm import current_trace_ids
from tasques.observe.logs import EcsJsonFormatter
from tasques.store.sqlite import SqliteStore
from tests.system.apm_intake import Intake, running_intake


@pytest.fixture(autouse=True)
def agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTIC_APM_API_REQUEST_TIME", "50ms")
    monkeypatch.setenv("ELASTIC_APM_METRICS_INTERVAL", "0s")


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    async with running_intake() as intake:
        yield intake


@pytest.fixture
def store_call_lines() -> Iterator[io.StringIO]:
    """The store-call lines (logged at debug) in JSON, formatted with the APM ids as the CLI wires them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(EcsJsonFormatter("tasques", current_trace_ids))
    logger = logging.getLogger("tasques.store.calls")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def test_lines_inside_a_request_carry_its_trace_ids(
    intake: Intake, aiohttp_client: AiohttpClient, tmp_path: Path, store_call_lines: io.StringIO
) -> None:
    config = Config.model_validate(
        {
            "apm": {"enabled": True, "server_url": intake.url, "transaction_sample_rate": 1.0},
            "logging": {"format": "json", "level": "debug"},
            "housekeeping": {"recurring_every": "1h"},
        }
    )
    app = tasques.server.build_server(config, SqliteStore(str(tmp_path / "t.db")), holder=f"l-{uuid.uuid4().hex[:6]}")
    client = await aiohttp_client(app)
    created = await client.post("/tasques", json={"queue": "q", "kind": "k"})
    assert created.status == 201, await created.text()

    (create,) = await intake.wait_for(lambda: [t for t in intake.of("transaction") if t["name"] == "POST /tasques"])
    docs: list[dict[str, Any]] = [json.loads(line) for line in store_call_lines.getvalue().splitlines()]
    inside = [d for d in docs if d.get("transaction", {}).get("id") == create["id"]]
    assert inside, docs
    for doc in inside:
        assert doc["trace"] == {"id": create["trace_id"]}
        assert doc["tasques"]["store"]["backend"] == "sqlite"
    # The store's open, before any request, ran in no transaction: no ids.
    [opened] = [d for d in docs if d["tasques"]["store"]["operation"] == "open"]
    assert "trace" not in opened
    assert "transaction" not in opened
