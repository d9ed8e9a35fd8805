"""Bounded, strictly typed input (issue 12): every finding about input, over HTTP.

Strict JSON at every depth, the documented maxima of durations and integers, one set of name rules for
bodies, paths and filters, clamped claims, `application/json` only, and Go's zero time meaning now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from aiohttp import web
from pydantic import BaseModel
from pytest_aiohttp.plugin import AiohttpClient

from tasques.api.errors import error_middleware
from tasques.service.clock import ManualClock
from tests.api.conftest import (
    WORKER,
    Client,
    assert_error,
    call,
    claim,
    claim_one,
    create_task,
    list_all,
    parse_ts,
)
from tests.process import ServerProcess

TASK: dict[str, Any] = {"queue": "q", "kind": "k"}
RECURRING: dict[str, Any] = {"id": "r", "schedule_expression": "@daily", "task_definition": TASK}
LONG = "x" * 600


# Strict JSON: no string-to-number or string-to-bool coercion, at any depth.


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tasques", {**TASK, "retry_times": "3"}, "retry_times"),
        ("/tasques", {**TASK, "priority": "5"}, "priority"),
        ("/tasques", {**TASK, "execution_delay": "5"}, "execution_delay"),
        ("/tasques", {**TASK, "retry_policy": {"retry_times": "3"}}, "retry_policy.retry_times"),
        ("/tasques", {**TASK, "retry_policy": {"max_doublings": "3"}}, "retry_policy.max_doublings"),
        ("/tasques", {**TASK, "repeat": {"interval": "1m", "times": "2"}}, "repeat.times"),
        ("/tasques", {**TASK, "http_request": {"url": "http://x.test/", "tls": {"insecure_skip_verify": "true"}}},
         "http_request.tls.insecure_skip_verify"),
        ("/tasques/bulk", {"tasks": [{**TASK, "priority": "5"}]}, "tasks.0.priority"),
        ("/recurring_tasques", {**RECURRING, "skip_if_outstanding_tasks_exist": "true"},
         "skip_if_outstanding_tasks_exist"),
        ("/recurring_tasques", {**RECURRING, "task_definition": {**TASK, "priority": "5"}},
         "task_definition.priority"),
    ],
)  # fmt: skip
async def test_string_numbers_and_booleans_are_400(client: Client, path: str, body: Any, field: str) -> None:
    assert_error(await call(client, "POST", path, status=400, body=body), field)
    assert (await call(client, "GET", "/tasques", status=200))["tasks"] == []
    assert await call(client, "GET", "/recurring_tasques", status=200) == []


async def test_string_amount_in_a_claim_is_400(client: Client) -> None:
    await create_task(client)
    body = await call(
        client, "POST", "/tasques/claims", status=400, worker=WORKER, body={"queues": ["q"], "amount": "5"}
    )
    assert_error(body, "amount")


async def test_string_number_in_queue_settings_is_400(client: Client) -> None:
    body = await call(client, "PUT", "/queues/q/settings", status=400, body={"max_concurrent_dispatches": "5"})
    assert_error(body, "max_concurrent_dispatches")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400])
async def test_non_finite_or_huge_numbers_are_400(client: Client, number: str) -> None:
    raw = '{"max_dispatches_per_second": ' + number + "}"
    assert_error(await call(client, "PUT", "/queues/q/settings", status=400, raw=raw), "body")
    raw = '{"queue": "q", "kind": "k", "args": {"x": ' + number + "}}"
    assert_error(await call(client, "POST", "/tasques", status=400, raw=raw), "body")


async def test_strict_json_still_reads_durations_times_and_enums(client: Client) -> None:
    task = await create_task(
        client,
        run_at="2024-01-02T05:04:05+02:00",
        processing_timeout="1h30m",
        retry_policy={"mode": "linear", "retry_interval": "3s", "max_retry_duration": "1h"},
        repeat={"interval": "1m", "times": 2},
        http_request={"url": "http://x.test/", "method": "PUT", "body_encoding": "text", "body": "hi"},
    )
    assert parse_ts(task["run_at"]) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert task["processing_timeout"] == "1h30m0s"
    assert task["retry_policy"]["mode"] == "linear"
    assert task["http_request"]["method"] == "PUT"
    by_epoch = await create_task(client, run_at=1_704_164_645_000)
    assert parse_ts(by_epoch["run_at"]) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# Durations: each field has a documented maximum.


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"processing_timeout": "720h1s"}, "processing_timeout"),
        ({"processing_timeout": "80000000h"}, "processing_timeout"),
        ({"processing_timeout": "9999999999999999h"}, "processing_timeout"),
        ({"retry_policy": {"mode": "linear", "retry_interval": "721h"}}, "retry_policy.retry_interval"),
        ({"retry_policy": {"min_backoff": "721h"}}, "retry_policy.min_backoff"),
        ({"retry_policy": {"max_backoff": "721h"}}, "retry_policy.max_backoff"),
        ({"retry_policy": {"max_retry_duration": "87601h"}}, "retry_policy.max_retry_duration"),
        ({"repeat": {"interval": "8785h"}}, "repeat.interval"),
        ({"execution_delay": 3650 * 86_400_000 + 1}, "execution_delay"),
        ({"priority": 2**31}, "priority"),
        ({"retry_times": 1_000_001}, "retry_times"),
        ({"repeat": {"interval": "1s", "times": 1_000_001}}, "repeat.times"),
        ({"retry_policy": {"max_doublings": 65}}, "retry_policy.max_doublings"),
    ],
)
async def test_values_above_their_maximum_are_400(client: Client, fields: dict[str, Any], field: str) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, body={**TASK, **fields}), field)


async def test_values_at_their_maximum_are_accepted(client: Client) -> None:
    task = await create_task(
        client,
        processing_timeout="720h",
        priority=2**31 - 1,
        retry_policy={
            "mode": "linear",
            "retry_interval": "720h",
            "max_backoff": "720h",
            "max_retry_duration": "87600h",
        },
        repeat={"interval": "8784h", "times": 1_000_000},
    )
    assert task["processing_timeout"] == "720h0m0s"
    claimed = await claim_one(client, "q")
    assert claimed["id"] == task["id"]
    failed = await call(client, "PUT", f"/tasques/failed/q/{task['id']}", status=200, worker=WORKER)
    assert parse_ts(failed["run_at"]) > parse_ts(claimed["last_claimed"]["claimed_at"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"priority": 2**31}, "task_definition.priority"),
        ({"retry_times": 10**7}, "task_definition.retry_times"),
        ({"processing_timeout": "721h"}, "task_definition.processing_timeout"),
        ({"queue": "a/b"}, "task_definition.queue"),
        ({"queue": ""}, "task_definition.queue"),
        ({"queue": LONG}, "task_definition.queue"),
        ({"kind": ""}, "task_definition.kind"),
        ({"kind": LONG}, "task_definition.kind"),
    ],
)
async def test_recurring_task_definition_is_bounded(client: Client, fields: dict[str, Any], field: str) -> None:
    body = {**RECURRING, "task_definition": {**TASK, **fields}}
    assert_error(await call(client, "POST", "/recurring_tasques", status=400, body=body), field)
    await call(client, "POST", "/recurring_tasques", status=201, body=RECURRING)
    update = {"task_definition": body["task_definition"]}
    assert_error(await call(client, "PUT", "/recurring_tasques/r", status=400, body=update), field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_concurrent_dispatches": 10**30}, "max_concurrent_dispatches"),
        ({"max_concurrent_dispatches": 10_001}, "max_concurrent_dispatches"),
        ({"max_dispatches_per_second": 1e300}, "max_dispatches_per_second"),
        ({"retry_policy": {"max_backoff": "721h"}}, "retry_policy.max_backoff"),
    ],
)
async def test_queue_settings_are_bounded(client: Client, body: dict[str, Any], field: str) -> None:
    assert_error(await call(client, "PUT", "/queues/q/settings", status=400, body=body), field)
    settings = await call(client, "GET", "/queues/q/settings", status=200)
    assert "max_concurrent_dispatches" not in settings
    assert "max_dispatches_per_second" not in settings


# Names: one set of rules in bodies, paths and filters.


@pytest.mark.parametrize("name", ["a/b", "", LONG, "a b", "a%b"])
async def test_bad_queue_names_are_400_everywhere(client: Client, name: str) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, body={**TASK, "queue": name}), "queue")
    bulk = {"tasks": [TASK, {**TASK, "queue": name}]}
    assert_error(await call(client, "POST", "/tasques/bulk", status=400, body=bulk), "tasks.1.queue")
    body = {"queues": ["q", name]}
    assert_error(await call(client, "POST", "/tasques/claims", status=400, worker=WORKER, body=body), "queues.1")
    assert_error(await call(client, "GET", "/tasques", status=400, params={"queue": name}), "queue")


@pytest.mark.parametrize("name", ["a%2Fb", "x" * 201, "a%20b"])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/tasques/{}/x"),
        ("PUT", "/tasques/done/{}/x"),
        ("GET", "/queues/{}/settings"),
        ("PUT", "/queues/{}/settings"),
        ("PUT", "/queues/{}/pause"),
        ("PUT", "/queues/{}/resume"),
    ],
)
async def test_bad_queue_in_a_path_is_400_naming_it(client: Client, method: str, template: str, name: str) -> None:
    body = {"max_concurrent_dispatches": 2} if template.endswith("settings") and method == "PUT" else None
    resp = await call(client, method, template.format(name), status=400, body=body, worker=WORKER)
    assert_error(resp, "queue")
    assert await call(client, "GET", "/queues", status=200) == []


@pytest.mark.parametrize("name", ["a%2Fb", "x" * 257])
async def test_bad_task_id_in_a_path_is_400_naming_it(client: Client, name: str) -> None:
    assert_error(await call(client, "GET", f"/tasques/q/{name}", status=400), "id")
    assert_error(await call(client, "PUT", f"/tasques/cancel/q/{name}", status=400), "id")


@pytest.mark.parametrize("name", ["a%2Fb", "x" * 201])
async def test_bad_recurring_id_is_400_in_body_and_path(client: Client, name: str) -> None:
    assert_error(await call(client, "GET", f"/recurring_tasques/{name}", status=400), "id")
    assert_error(await call(client, "DELETE", f"/recurring_tasques/{name}", status=400), "id")
    body = {**RECURRING, "id": name.replace("%2F", "/")}
    assert_error(await call(client, "POST", "/recurring_tasques", status=400, body=body), "id")


@pytest.mark.parametrize(("field", "value"), [("kind", ""), ("kind", LONG), ("recurring_task_id", "a/b")])
async def test_bad_listing_filters_are_400(client: Client, field: str, value: str) -> None:
    assert_error(await call(client, "GET", "/tasques", status=400, params={field: value}), field)


async def test_kind_is_bounded_in_bodies(client: Client) -> None:
    for kind in ("", LONG, "a\nb"):
        assert_error(await call(client, "POST", "/tasques", status=400, body={**TASK, "kind": kind}), "kind")


@pytest.mark.parametrize("limit", ["²", "١٢", "1" * 5000, "0", "1001", "-1", "1.5"])
async def test_bad_limit_is_400(client: Client, limit: str) -> None:
    assert_error(await call(client, "GET", "/tasques", status=400, params={"limit": limit}), "limit")


# Claims: amount and block_for above the maxima are clamped (see test_tasks_api); below stays 400.


async def test_claim_amount_and_block_for_below_minimum_are_400(client: Client) -> None:
    body = {"queues": ["q"], "amount": 0, "block_for": "-1s"}
    resp = await call(client, "POST", "/tasques/claims", status=400, worker=WORKER, body=body)
    assert_error(resp, "amount", "block_for")


# Content type.


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_that_is_not_json_is_415(client: Client, content_type: str) -> None:
    raw = '{"queue": "q", "kind": "k"}'
    resp = await call(client, "POST", "/tasques", status=415, raw=raw, headers={"Content-Type": content_type})
    assert_error(resp, "Content-Type")
    assert (await call(client, "GET", "/tasques", status=200))["tasks"] == []


async def test_a_body_without_content_type_is_415(client: Client) -> None:
    async with client.post("/tasques", data=b'{"queue": "q", "kind": "k"}', skip_auto_headers=["Content-Type"]) as r:
        assert r.status == 415
        assert_error(await r.json(), "Content-Type")


async def test_an_absent_optional_body_needs_no_content_type(client: Client) -> None:
    task = await create_task(client)
    await claim_one(client, "q")
    async with client.put(f"/tasques/done/q/{task['id']}", headers={"X-TASQUES-WORKER-ID": WORKER}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["state"] == "done"


async def test_json_with_a_charset_is_json(client: Client) -> None:
    raw = '{"queue": "q", "kind": "k"}'
    await call(
        client, "POST", "/tasques", status=201, raw=raw, headers={"Content-Type": "application/json; charset=utf-8"}
    )


# Go's zero time.


@pytest.mark.parametrize("zero", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00+00:00"])
async def test_go_zero_run_at_means_now(client: Client, clock: ManualClock, zero: str) -> None:
    early = await create_task(client, id="early", run_at="2024-01-01T00:00:00Z")
    task = await create_task(client, id="zero", run_at=zero, priority=0)
    assert parse_ts(task["run_at"]) == clock.now
    # Year one would have jumped ahead of every other task of the same priority.
    assert [t["id"] for t in await claim(client, ["q"], amount=2)] == [early["id"], task["id"]]


@pytest.mark.parametrize("run_at", ["1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "9999-01-01T00:00:00Z", -1,
                                    7_258_118_400_000, "Dec 12 2300 12:12:12 AM +07:00"])  # fmt: skip
async def test_run_at_outside_what_the_stores_hold_is_400(client: Client, run_at: Any) -> None:
    assert_error(await call(client, "POST", "/tasques", status=400, body={**TASK, "run_at": run_at}), "run_at")


# Server-side validation errors are the server's fault.


class _Strict(BaseModel):
    n: int


async def _server_bug(request: web.Request) -> web.Response:
    _Strict.model_validate({"n": "not a number"})
    return web.Response()


async def test_a_validation_error_outside_request_parsing_is_500(aiohttp_client: AiohttpClient) -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/bug", _server_bug)
    client = await aiohttp_client(app)
    async with client.get("/bug") as resp:
        assert resp.status == 500
        assert await resp.json() == {"message": "internal server error", "details": []}


# Both stores: values Elasticsearch could not hold, and Go's zero time.


def _post(server: ServerProcess, path: str, body: Any) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=30, headers={"X-TASQUES-WORKER-ID": WORKER})


@pytest.mark.slow
def test_store_limits_on_both_stores(store_server: ServerProcess) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"run_at": "2300-01-01T00:00:00Z"}, "run_at"),
        ({"run_at": "1900-01-01T00:00:00Z"}, "run_at"),
        ({"priority": 2**31}, "priority"),
    ]
    for fields, field in cases:
        resp = _post(store_server, "/tasques", {**TASK, **fields})
        assert resp.status_code == 400, resp.text
        assert_error(resp.json(), field)
    definition = {**TASK, "priority": 2**31}
    resp = _post(store_server, "/recurring_tasques", {**RECURRING, "task_definition": definition})
    assert resp.status_code == 400, resp.text
    assert_error(resp.json(), "task_definition.priority")
    before = datetime.now(UTC)
    resp = _post(store_server, "/tasques", {**TASK, "id": "go", "run_at": "0001-01-01T00:00:00.000Z"})
    assert resp.status_code == 201, resp.text
    assert before - timedelta(seconds=1) <= parse_ts(resp.json()["run_at"]) <= datetime.now(UTC)
    edge = _post(store_server, "/tasques", {**TASK, "id": "edge", "run_at": "2199-12-31T23:59:59.999999Z"})
    assert edge.status_code == 201, edge.text
    claimed = _post(store_server, "/tasques/claims", {"queues": ["q"], "amount": 5, "block_for": "0s"})
    assert claimed.status_code == 200, claimed.text
    assert [t["id"] for t in claimed.json()] == ["go"]


async def test_listing_still_works_with_valid_filters(client: Client) -> None:
    await create_task(client, "q", "kind.with spaces ok", id="a")
    assert [t["id"] for t in await list_all(client, {"queue": "q", "kind": "kind.with spaces ok"})] == ["a"]
