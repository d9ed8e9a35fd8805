"""Every error leaves the server as `{"message", "details": [{"field", "problem"}]}` with the right status."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tasques.api.keys import TASKS
from tasques.config import Config, load_config
from tests.api.conftest import (
    WORKER,
    Client,
    MakeClient,
    assert_error,
    basic_auth,
    call,
    claim_one,
    create_task,
    get_task,
)

# Create validation: each bad body is refused with a detail naming the offending field.

VALID: dict[str, Any] = {"queue": "q", "kind": "k"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"kind": "k"}, {"queue"}),
        ({"queue": "q"}, {"kind"}),
        ({}, {"queue", "kind"}),
        ({**VALID, "queue": 5}, {"queue"}),
        ({**VALID, "kind": ["k"]}, {"kind"}),
        ({**VALID, "priority": "high"}, {"priority"}),
        ({**VALID, "priority": 1.5}, {"priority"}),
        ({**VALID, "retry_times": "many"}, {"retry_times"}),
        ({**VALID, "retry_times": -1}, {"retry_times"}),
        ({**VALID, "processing_timeout": "5 minutes"}, {"processing_timeout"}),
        ({**VALID, "processing_timeout": "0s"}, {"processing_timeout"}),
        ({**VALID, "processing_timeout": "-1m"}, {"processing_timeout"}),
        ({**VALID, "run_at": "2024-01-02T03:04:05"}, {"run_at"}),
        ({**VALID, "run_at": "tomorrow"}, {"run_at"}),
        ({**VALID, "queue": "a/b"}, {"queue"}),
        ({**VALID, "queue": "a b"}, {"queue"}),
        ({**VALID, "queue": ""}, {"queue"}),
        ({**VALID, "id": "x/y"}, {"id"}),
        ({**VALID, "kind": ""}, {"kind"}),
        ({**VALID, "args": [1, 2]}, {"args"}),
        ({**VALID, "args": "text"}, {"args"}),
        ({**VALID, "context": 3}, {"context"}),
        ({"queue": "a b", "kind": "k", "retry_times": -1}, {"queue", "retry_times"}),
    ],
)
async def test_create_with_invalid_field_is_400(client: Client, body: dict[str, Any], fields: set[str]) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, body=body), *fields)
    assert (await call(client, "GET", "/tasques", status=200))["tasks"] == []


@pytest.mark.parametrize("raw", ["{bad json", '{"queue": "q", "kind": "k"', "[1, 2]", '"text"', "null", "42"])
async def test_create_with_malformed_or_non_object_body_is_400(client: Client, raw: str) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, raw=raw), "body")


@pytest.mark.parametrize("raw", ["", "   "])
async def test_create_with_empty_body_is_400(client: Client, raw: str) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, raw=raw), "body")


async def test_unknown_fields_are_ignored(client: Client) -> None:
    task = await call(client, "POST", "/tasques", status=201, body={**VALID, "id": "x", "future_field": 1})
    assert "future_field" not in task


async def test_numeric_processing_timeout_is_400(client: Client) -> None:
    # The API (and its OpenAPI schema) speaks durations as Go-style strings. A bare number is ambiguous: Go's
    # time.Duration counts nanoseconds, so reading 30 as 30 seconds would silently differ from the original.
    body = {**VALID, "processing_timeout": 30}
    assert_error(await call(client, "POST", "/tasques", status=400, body=body), "processing_timeout")


async def test_oversized_body_is_413(client: Client) -> None:
    big = b'{"queue": "q", "kind": "k", "args": {"blob": "' + b"x" * (9 * 1024 * 1024) + b'"}}'
    headers = {"Content-Type": "application/json"}
    async with client.post("/tasques", data=io.BytesIO(big), headers=headers) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/json"
        assert_error(await resp.json())
    assert (await call(client, "GET", "/tasques", status=200))["tasks"] == []


# Claim validation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "queues"),
        ({"queues": []}, "queues"),
        ({"queues": "q"}, "queues"),
        ({"queues": ["a/b"]}, "queues.0"),
        ({"queues": ["q"], "amount": "lots"}, "amount"),
        ({"queues": ["q"], "amount": 0}, "amount"),
        ({"queues": ["q"], "block_for": "soon"}, "block_for"),
        ({"queues": ["q"], "block_for": "-2m"}, "block_for"),
    ],
)
async def test_claim_with_invalid_body_is_400(client: Client, body: dict[str, Any], field: str) -> None:
    assert_error(await call(client, "POST", "/tasques/claims", status=400, worker=WORKER, body=body), field)


async def test_claim_with_empty_body_is_400(client: Client) -> None:
    assert_error(await call(client, "POST", "/tasques/claims", status=400, worker=WORKER, raw=""), "body")


# The worker header


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tasques/claims"),
        ("DELETE", "/tasques/claims/q/t"),
        ("PUT", "/tasques/reports/q/t"),
        ("PUT", "/tasques/done/q/t"),
        ("PUT", "/tasques/failed/q/t"),
    ],
)
@pytest.mark.parametrize("header", [None, "", "   ", "w" * 257, "w\tx"])
async def test_worker_endpoints_need_the_worker_header(
    client: Client, method: str, path: str, header: str | None
) -> None:
    await create_task(client, "q", "k", id="t")
    claimed = await claim_one(client, "q")
    body = {"queues": ["q"], "block_for": "0s"} if path == "/tasques/claims" else {}
    headers = {} if header is None else {"X-TASQUES-WORKER-ID": header}
    assert_error(await call(client, method, path, status=400, body=body, headers=headers), "X-TASQUES-WORKER-ID")
    assert await get_task(client, "q", "t") == claimed


# Unknown tasks


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasques/q/missing"),
        ("DELETE", "/tasques/claims/q/missing"),
        ("PUT", "/tasques/reports/q/missing"),
        ("PUT", "/tasques/done/q/missing"),
        ("PUT", "/tasques/failed/q/missing"),
        ("GET", "/recurring_tasques/missing"),
        ("DELETE", "/recurring_tasques/missing"),
    ],
)
async def test_unknown_records_are_404(client: Client, method: str, path: str) -> None:
    body = await call(client, method, path, status=404, worker=WORKER)
    assert_error(body)
    assert body["details"] == []


# Listing parameters


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"state": "queued,nope"}, "state"),
        ({"state": "QUEUED"}, "state"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # valid base64 of valid JSON, but not a cursor
        ({"cursor": "!!!"}, "cursor"),
    ],
)
async def test_listing_with_invalid_parameter_is_400(client: Client, params: dict[str, str], field: str) -> None:
    assert_error(await call(client, "GET", "/tasques", status=400, params=params), field)


# Routing


async def test_unknown_route_is_json_404(client: Client) -> None:
    body = await call(client, "GET", "/no/such/route", status=404)
    assert_error(body)
    assert body["details"] == []


@pytest.mark.parametrize(("method", "path"), [("POST", "/health"), ("PATCH", "/tasques"), ("GET", "/tasques/claims")])
async def test_wrong_method_is_json_405(client: Client, method: str, path: str) -> None:
    assert_error(await call(client, method, path, status=405))


async def test_unexpected_failure_is_json_500(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(queue: str, task_id: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(client.app[TASKS], "get", boom)
    body = await call(client, "GET", "/tasques/q/t", status=500)
    assert body == {"message": "internal server error", "details": []}


# Basic auth

USERS = {"server": {"basic_auth": [{"name": "alice", "password": "s3cret"}, {"name": "bob", "password": "hunter2"}]}}


@pytest.fixture
async def auth_client(make_client: MakeClient) -> Client:
    return await make_client(USERS)


async def _unauthorised(client: Client, headers: dict[str, str] | None = None) -> None:
    async with client.get("/tasques", headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="tasques", Basic realm="tasques"'
        assert resp.content_type == "application/json"
        assert_error(await resp.json())


async def test_auth_missing_credentials_is_401(auth_client: Client) -> None:
    await _unauthorised(auth_client)


@pytest.mark.parametrize(
    ("name", "password"),
    [("alice", "wrong"), ("alice", "hunter2"), ("mallory", "s3cret"), ("alice", ""), ("", ""), ("alice", "s3cret ")],
)
async def test_auth_wrong_credentials_is_401(auth_client: Client, name: str, password: str) -> None:
    await _unauthorised(auth_client, basic_auth(name, password))


@pytest.mark.parametrize(
    "header", ["Bearer abc", "Basic !!!notbase64", "Basic", "basic", "Basic YWxpY2U=", "Digest YWxpY2U6czNjcmV0"]
)
async def test_auth_malformed_header_is_401(auth_client: Client, header: str) -> None:
    await _unauthorised(auth_client, {"Authorization": header})


async def test_auth_right_credentials(auth_client: Client) -> None:
    for user, password in (("alice", "s3cret"), ("bob", "hunter2")):
        page = await call(auth_client, "GET", "/tasques", status=200, headers=basic_auth(user, password))
        assert page == {"tasks": []}
    task = await call(auth_client, "POST", "/tasques", status=201, body=VALID, headers=basic_auth("alice", "s3cret"))
    assert task["queue"] == "q"


async def test_auth_guards_writes(auth_client: Client) -> None:
    async with auth_client.post("/tasques", json=VALID) as resp:
        assert resp.status == 401
    page = await call(auth_client, "GET", "/tasques", status=200, headers=basic_auth("alice", "s3cret"))
    assert page == {"tasks": []}


async def test_auth_leaves_health_open(auth_client: Client) -> None:
    assert await call(auth_client, "GET", "/health", status=200) == {"status": "ok", "store": "sqlite"}


async def test_auth_from_environment_config(make_client: MakeClient, tmp_path: Path) -> None:
    config = load_config(
        None,
        environ={
            "TASQUES_SERVER_BASIC_AUTH": '[{"name": "env-user", "password": "env-pass"}]',
            "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "unused.db"),
        },
    )
    assert isinstance(config, Config)
    client = await make_client(config)
    await _unauthorised(client)
    assert await call(client, "GET", "/queues", status=200, headers=basic_auth("env-user", "env-pass")) == []


async def test_no_auth_configured_means_open(client: Client) -> None:
    assert await call(client, "GET", "/tasques", status=200) == {"tasks": []}
