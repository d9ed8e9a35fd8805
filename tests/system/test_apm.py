"""Elastic APM end to end: the real agent in a real server (SQLite and Elasticsearch), sending to an intake
stand-in on 127.0.0.1 that decodes what the agent sends (tests/system/apm_intake.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.config import Config
from tasques.observe.apm import current_trace_ids, load_agent
from tasques.store.base import Store
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.api.conftest import Client
from tests.contract.conftest import es_settings
from tests.process import delete_es_prefix
from tests.system.apm_intake import Intake, running_intake

WORKER = "apm-worker-1"
TOKEN = "s3cr3t-token"


@pytest.fixture(autouse=True)
def agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's own variables: flush at once, no metrics unless a test wants them, and one that must win
    over config.yaml (the service name)."""
    monkeypatch.setenv("ELASTIC_APM_API_REQUEST_TIME", "50ms")
    monkeypatch.setenv("ELASTIC_APM_METRICS_INTERVAL", "0s")
    monkeypatch.setenv("ELASTIC_APM_SERVICE_NAME", "tasques-from-env")


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    async with running_intake(authorization=f"Bearer {TOKEN}") as intake:
        yield intake


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
async def apm_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A store for the server under test (its lifecycle opens it); nobody else holds the leader lock."""
    if request.param == "sqlite":
        yield SqliteStore(str(tmp_path / "t.db"))
        return
    url: str = request.getfixturevalue("elasticsearch_url")
    prefix = f"apm-{uuid.uuid4().hex[:10]}"
    yield ElasticsearchStore.from_config(es_settings(url, prefix, refresh_interval="100ms"))
    await delete_es_prefix(url, prefix)


def apm_config(intake: Intake, **apm: Any) -> Config:
    return Config.model_validate(
        {
            "apm": {
                "enabled": True,
                "server_url": intake.url,
                "secret_token": TOKEN,
                "environment": "test",
                "transaction_sample_rate": 1.0,  # every transaction: the tests check each one
                **apm,
            },
            "dispatch": {"poll_interval": "20ms", "allowed_networks": ["127.0.0.0/8"]},
            "housekeeping": {"reap_every": "50ms", "recurring_every": "1h"},
        }
    )


async def start(aiohttp_client: AiohttpClient, config: Config, store: Store) -> Client:
    app = tasques.server.build_server(config, store, holder=f"apm-test-{uuid.uuid4().hex[:6]}")
    return await aiohttp_client(app)


def transactions(intake: Intake, name: str) -> list[dict[str, Any]]:
    return [t for t in intake.of("transaction") if t["name"] == name]


def children(intake: Intake, transaction: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in intake.of("span") if s["transaction_id"] == transaction["id"]]


def all_spans_in(intake: Intake, transaction: dict[str, Any]) -> bool:
    """Every span the transaction started has arrived (spans are sent as they end, often in an earlier batch)."""
    started: int = transaction["span_count"]["started"]
    return len(children(intake, transaction)) >= started > 0


def store_operations() -> set[str]:
    return {name for name in dir(Store) if not name.startswith("_")}


async def test_a_create_claim_done_flow_is_traced(
    intake: Intake, aiohttp_client: AiohttpClient, apm_store: Store
) -> None:
    client = await start(aiohttp_client, apm_config(intake), apm_store)
    created = await client.post("/tasques", json={"queue": "apm-q", "kind": "k", "args": {"n": 1}})
    assert created.status == 201, await created.text()
    task_id = (await created.json())["id"]
    claimed = await client.post(
        "/tasques/claims", json={"queues": ["apm-q"], "amount": 1}, headers={"X-TASQUES-WORKER-ID": WORKER}
    )
    assert claimed.status == 200, await claimed.text()
    assert [t["id"] for t in await claimed.json()] == [task_id]
    done = await client.put(f"/tasques/done/apm-q/{task_id}", json={}, headers={"X-TASQUES-WORKER-ID": WORKER})
    assert done.status == 200, await done.text()
    missing = await client.get("/tasques/apm-q/no-such-task")
    assert missing.status == 404

    names = ["POST /tasques", "POST /tasques/claims", "PUT /tasques/done/{queue}/{id}", "GET /tasques/{queue}/{id}"]
    await intake.wait_for(lambda: all(transactions(intake, n) for n in names))
    create, claim, finish, get = (transactions(intake, n)[0] for n in names)
    backend = apm_store.kind
    for t in (create, claim, finish, get):
        assert t["type"] == "request"
        assert t["sampled"] is True
        assert t["outcome"] == "success"
        await intake.wait_for(partial(all_spans_in, intake, t))
        for span in children(intake, t):
            assert (span["type"], span["subtype"]) == ("db", backend), span
            assert span["action"] in store_operations(), span
            assert span["name"] == f"{backend} {span['action']}"
            assert span["parent_id"] == t["id"]
            assert span["trace_id"] == t["trace_id"]
            assert span["context"]["destination"]["service"]["resource"] == backend
    assert (create["result"], claim["result"], finish["result"], get["result"]) == (
        "HTTP 2xx",
        "HTTP 2xx",
        "HTTP 2xx",
        "HTTP 4xx",
    )
    assert create["context"]["tags"] == {"task_id": task_id, "queue": "apm-q", "tasks": 1}
    assert claim["context"]["tags"] == {"task_id": task_id, "queue": "apm-q", "tasks": 1, "worker_id": WORKER}
    assert finish["context"]["tags"] == {"task_id": task_id, "queue": "apm-q", "worker_id": WORKER}
    assert finish["context"]["request"]["method"] == "PUT"
    assert finish["context"]["response"]["status_code"] == 200
    assert "claim_tasks" in {s["action"] for s in children(intake, claim)}
    assert "insert_tasks" in {s["action"] for s in children(intake, create)}
    # Four transactions, four traces.
    assert len({t["trace_id"] for t in (create, claim, finish, get)}) == 4

    # The agent's own variable won over config.yaml's service name; the rest came from config.yaml.
    event = next(e for e in intake.events if e.kind == "transaction")
    service = event.metadata["service"]
    assert (service["name"], service["environment"], service["framework"]["name"]) == (
        "tasques-from-env",
        "test",
        "aiohttp",
    )
    assert service["node"]["configured_name"].startswith("apm-test-")
    assert {e.authorization for e in intake.events} == {f"Bearer {TOKEN}"}
    assert {e.encoding for e in intake.events} == {"gzip"}
    assert intake.server_info_calls >= 1
    await intake.wait_for(lambda: intake.config_calls)  # central configuration, polled on its own thread
    assert intake.config_calls[0]["service"]["name"] == "tasques-from-env"
    assert not intake.rejected
    await client.close()


async def test_a_traceparent_header_continues_the_callers_trace(
    intake: Intake, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await start(aiohttp_client, apm_config(intake), SqliteStore(str(tmp_path / "t.db")))
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    resp = await client.get("/tasques/q/x", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert resp.status == 404
    (got,) = await intake.wait_for(lambda: transactions(intake, "GET /tasques/{queue}/{id}"))
    assert (got["trace_id"], got["parent_id"]) == (trace_id, parent)
    await client.close()


async def test_an_http_target_dispatch_and_the_leader_jobs_are_background_transactions(
    intake: Intake, aiohttp_client: AiohttpClient, apm_store: Store
) -> None:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    target_app = web.Application()
    target_app.router.add_post("/hook", hook)
    runner = web.AppRunner(target_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = await start(aiohttp_client, apm_config(intake), apm_store)
        body = {
            "queue": "hooks",
            "kind": "hook",
            "http_request": {"method": "POST", "url": f"http://127.0.0.1:{port}/hook"},
        }
        resp = await client.post("/tasques", json=body)
        assert resp.status == 201, await resp.text()
        task_id = (await resp.json())["id"]

        (dispatch,) = await intake.wait_for(lambda: transactions(intake, "dispatch"))
        assert dispatch["type"] == "background"
        assert dispatch["result"] == "success"
        assert dispatch["context"]["tags"] == {"task_id": task_id, "queue": "hooks"}
        await intake.wait_for(lambda: len(children(intake, dispatch)) >= dispatch["span_count"]["started"])
        spans = children(intake, dispatch)
        (call,) = [s for s in spans if s["type"] == "external"]
        assert (call["subtype"], call["action"], call["name"]) == ("http", "POST", f"POST 127.0.0.1:{port}")
        assert call["parent_id"] == dispatch["id"]
        assert call["trace_id"] == dispatch["trace_id"]
        assert call["outcome"] == "success"
        assert call["context"]["http"] == {"url": f"http://127.0.0.1:{port}/hook", "method": "POST", "status_code": 200}
        assert call["context"]["destination"]["service"]["resource"] == f"127.0.0.1:{port}"
        assert call["context"]["tags"] == {"task_id": task_id, "queue": "hooks"}
        # Recording the outcome: store spans of the same transaction.
        assert {s["subtype"] for s in spans if s["type"] == "db"} == {apm_store.kind}

        passes = await intake.wait_for(
            lambda: [t for t in transactions(intake, "dispatcher pass") if children(intake, t)]
        )
        assert passes[0]["type"] == "background"
        assert "claim_tasks" in {s["action"] for t in passes for s in children(intake, t)}

        reaper = await intake.wait_for(lambda: transactions(intake, "leader reaper"))
        assert reaper[0]["type"] == "leader"
        assert reaper[0]["result"] == "success"
        assert reaper[0]["context"]["tags"] == {"changed": 0}
        assert not intake.rejected
        await client.close()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", ["7.17.0", "8.15.0"])
async def test_sample_rate_zero_keeps_transactions_without_spans_or_none_for_8(
    aiohttp_client: AiohttpClient, tmp_path: Path, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's semantics: an unsampled transaction has no spans; APM server 8+ does not want it at all (it
    is left out of the intake), older servers get it with `sampled: false` (for their transaction metrics)."""
    monkeypatch.setenv("ELASTIC_APM_METRICS_INTERVAL", "1s")  # the shortest; metricsets show the agent still sends
    async with running_intake(version=version, authorization=f"Bearer {TOKEN}") as intake:
        client = await start(
            aiohttp_client, apm_config(intake, transaction_sample_rate=0.0), SqliteStore(str(tmp_path / "t.db"))
        )
        agent = client.app[tasques.server.APM_AGENT]
        # The agent decides what to send by the server's version: let it learn it first.
        await intake.wait_for(lambda: agent.client is not None and agent.client.server_version is not None)
        for _ in range(3):
            resp = await client.post("/tasques", json={"queue": "q", "kind": "k"})
            assert resp.status == 201
        after = intake.batches
        await intake.wait_for(lambda: any(e.kind == "metricset" and e.batch > after for e in intake.events))
        await client.close()
        assert intake.of("span") == []
        sent = transactions(intake, "POST /tasques")
        if version.startswith("7."):
            assert len(sent) == 3
            assert all(t["sampled"] is False and t["span_count"]["started"] == 0 for t in sent)
            assert all(t["result"] == "HTTP 2xx" for t in sent)
        else:
            assert sent == []
        assert not intake.rejected


async def test_an_api_key_is_sent_as_the_intake_expects(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    async with running_intake(authorization="ApiKey a2V5LWlkOmtleQ==") as intake:
        config = apm_config(intake, secret_token=None, api_key="a2V5LWlkOmtleQ==")
        client = await start(aiohttp_client, config, SqliteStore(str(tmp_path / "t.db")))
        assert (await client.get("/health")).status == 200
        (health,) = await intake.wait_for(lambda: transactions(intake, "GET /health"))
        assert health["result"] == "HTTP 2xx"
        assert {e.authorization for e in intake.events} == {"ApiKey a2V5LWlkOmtleQ=="}
        assert not intake.rejected
        await client.close()


async def test_a_wrong_token_is_refused_and_nothing_is_recorded(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    """The stand-in really checks the header: with the wrong token the agent's batches are refused."""
    async with running_intake(authorization="Bearer the-right-one") as intake:
        client = await start(aiohttp_client, apm_config(intake), SqliteStore(str(tmp_path / "t.db")))
        assert (await client.get("/health")).status == 200
        await intake.wait_for(lambda: any(r.startswith("POST /intake") for r in intake.rejected))
        await client.close()
        assert intake.events == []


async def test_current_trace_ids_name_the_transaction_in_progress(intake: Intake) -> None:
    assert current_trace_ids() == (None, None)
    agent = load_agent(apm_config(intake).apm, "ids-test")
    agent.start()
    try:
        with agent.tracer.background("unit of work", "background"):
            inside = current_trace_ids()
        assert current_trace_ids() == (None, None)
        (sent,) = await intake.wait_for(lambda: transactions(intake, "unit of work"))
        assert inside == (sent["trace_id"], sent["id"])
    finally:
        await agent.close()


def test_with_apm_off_the_agent_is_never_imported(tmp_path: Path) -> None:
    """A fresh interpreter: a whole server built and run with the default config imports nothing of the agent."""
    script = f"""
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
import tasques.server
from tasques.config import Config
from tasques.observe.apm import current_trace_ids
from tasques.store.sqlite import SqliteStore

async def main():
    app = tasques.server.build_server(Config(), SqliteStore({str(tmp_path / "t.db")!r}))
    assert tasques.server.APM_AGENT not in app
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/tasques", json={{"queue": "q", "kind": "k"}})).status == 201
    assert current_trace_ids() == (None, None)

asyncio.run(main())
assert not [m for m in sys.modules if m.startswith("elasticapm")], "agent imported"
print("clean")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
