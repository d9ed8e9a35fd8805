"""HTTP-target tasks over the API: creation, cancel, run-now, queue pause/resume and settings."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

from tasques.api.keys import TASKS
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.service.clock import ManualClock
from tests.api.conftest import (
    OTHER_WORKER,
    WORKER,
    Client,
    MakeClient,
    assert_error,
    call,
    claim,
    claim_one,
    create_task,
    get_task,
    parse_ts,
)

HTTP = {"url": "http://127.0.0.1:9/hook", "method": "PUT", "headers": {"X-A": "1"}, "body": "aGk=",
        "body_encoding": "base64", "timeout": "5s"}  # fmt: skip


async def test_create_http_task_shows_its_request_and_target(client: Client) -> None:
    task = await create_task(client, http_request=HTTP, retry_policy={"mode": "linear", "retry_interval": "2s"})
    assert task["http_request"] == {**HTTP, "follow_redirects": False}
    assert task["retry_policy"]["mode"] == "linear"
    assert task["retry_policy"]["retry_interval"] == "2s"
    plain = await create_task(client)
    assert "http_request" not in plain


async def test_pull_workers_never_get_http_tasks(client: Client) -> None:
    await create_task(client, id="h", http_request=HTTP)
    assert await claim(client, ["q"]) == []


async def test_invalid_http_request_names_the_field(client: Client) -> None:
    for bad, field in (
        ({"url": "ftp://x"}, "http_request.url"),
        ({"url": "http://x", "method": "TRACE"}, "http_request.method"),
        ({"url": "http://x", "body": "%%%", "body_encoding": "base64"}, "http_request"),
        ({"url": "http://x", "body": {"a": 1}, "body_encoding": "text"}, "http_request"),
    ):
        body = await call(client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": bad})
        assert_error(body)
        assert {d["field"] for d in body["details"]} == {field}, body


async def test_cancel_a_queued_task(client: Client) -> None:
    await create_task(client, id="t")
    cancelled = await call(client, "PUT", "/tasques/cancel/q/t", status=200)
    assert cancelled["state"] == "cancelled"
    assert await claim(client, ["q"]) == []
    assert_error(await call(client, "PUT", "/tasques/cancel/q/t", status=409))
    assert_error(await call(client, "PUT", "/tasques/cancel/q/nope", status=404))
    queues = await call(client, "GET", "/queues", status=200)
    assert queues[0]["counts"]["cancelled"] == 1


async def test_cancel_a_claimed_task_refuses_its_worker(client: Client) -> None:
    await create_task(client, id="t")
    await claim_one(client, "q")
    assert (await call(client, "PUT", "/tasques/cancel/q/t", status=200))["state"] == "cancelled"
    assert_error(await call(client, "PUT", "/tasques/done/q/t", status=409, worker=WORKER))
    assert_error(await call(client, "PUT", "/tasques/failed/q/t", status=409, worker=WORKER))
    assert (await get_task(client, "q", "t"))["state"] == "cancelled"


async def test_run_now_makes_a_later_task_claimable(client: Client, clock: ManualClock) -> None:
    later = clock.now + timedelta(hours=1)
    await create_task(client, id="t", run_at=later.isoformat())
    assert await claim(client, ["q"]) == []
    ran = await call(client, "PUT", "/tasques/run-now/q/t", status=200)
    assert parse_ts(ran["run_at"]) == clock.now
    assert (await claim_one(client, "q"))["id"] == "t"
    assert_error(await call(client, "PUT", "/tasques/run-now/q/t", status=409))
    assert_error(await call(client, "PUT", "/tasques/run-now/q/nope", status=404))


async def test_pause_and_resume_a_queue(client: Client) -> None:
    await create_task(client, id="t")
    await create_task(client, queue="other", id="o")
    paused = await call(client, "PUT", "/queues/q/pause", status=200)
    assert paused["paused"] is True
    assert await claim(client, ["q"]) == []
    assert [t["id"] for t in await claim(client, ["q", "other"], worker=OTHER_WORKER, amount=5)] == ["o"]
    assert (await call(client, "GET", "/queues/q/settings", status=200))["paused"] is True
    assert (await call(client, "PUT", "/queues/q/resume", status=200))["paused"] is False
    assert (await claim_one(client, "q"))["id"] == "t"


async def test_queue_settings_defaults_update_and_default_retry_policy(client: Client) -> None:
    fresh = await call(client, "GET", "/queues/q/settings", status=200)
    assert (fresh["queue"], fresh["paused"]) == ("q", False)
    assert "max_dispatches_per_second" not in fresh
    updated = await call(
        client,
        "PUT",
        "/queues/q/settings",
        status=200,
        body={"max_dispatches_per_second": 5, "max_concurrent_dispatches": 2, "retry_policy": {"retry_times": 1}},
    )
    assert (updated["max_dispatches_per_second"], updated["max_concurrent_dispatches"]) == (5, 2)
    # Only the fields sent change.
    again = await call(client, "PUT", "/queues/q/settings", status=200, body={"max_concurrent_dispatches": 3})
    assert (again["max_dispatches_per_second"], again["max_concurrent_dispatches"]) == (5, 3)
    task = await create_task(client)
    assert task["retry_policy"]["retry_times"] == 1
    body = await call(client, "PUT", "/queues/q/settings", status=400, body={"max_concurrent_dispatches": 0})
    assert_error(body, "max_concurrent_dispatches")


TLS_FILES = {"dispatch": {"tls_files_dir": "/etc/tasques"}}


async def test_an_inline_tls_key_is_stored_but_never_shown(make_client: MakeClient) -> None:
    client = await make_client(TLS_FILES)
    pem_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
    tls = {"cert": "/etc/tasques/client.pem", "key": pem_key}
    created = await create_task(client, id="tls", http_request={**HTTP, "url": "https://127.0.0.1:9/x", "tls": tls})
    assert created["http_request"]["tls"]["key"] == "<redacted>"
    assert created["http_request"]["tls"]["cert"] == "/etc/tasques/client.pem"
    assert (await get_task(client, "q", "tls"))["http_request"]["tls"]["key"] == "<redacted>"
    listed = await call(client, "GET", "/tasques", status=200, params={"queue": "q"})
    assert [t["http_request"]["tls"]["key"] for t in listed["tasks"]] == ["<redacted>"]
    # The dispatcher still has the real key: the store keeps it.
    stored = await client.app[TASKS].get(QueueRef(DEFAULT_PROJECT, "q"), "tls")
    assert stored.http_request is not None
    assert stored.http_request.tls is not None
    assert stored.http_request.tls.key == pem_key
    # Line-wrapped base64 of a key is key material too: never shown.
    wrapped = base64.encodebytes(pem_key.encode()).decode()
    tls = {"cert": "client.pem", "key": wrapped}
    created = await create_task(client, id="b64", http_request={**HTTP, "url": "https://127.0.0.1:9/x", "tls": tls})
    assert created["http_request"]["tls"]["key"] == "<redacted>"


async def test_a_tls_key_path_is_shown(make_client: MakeClient) -> None:
    client = await make_client(TLS_FILES)
    tls = {"cert": "/etc/tasques/client.pem", "key": "client.key"}
    created = await create_task(client, http_request={**HTTP, "url": "https://127.0.0.1:9/x", "tls": tls})
    assert created["http_request"]["tls"]["key"] == "client.key"


async def test_tls_file_paths_are_refused_without_a_tls_files_dir(client: Client) -> None:
    for tls, field in (
        ({"ca": "/etc/ssl/certs/ca-certificates.crt"}, "http_request.tls.ca"),
        ({"cert": "/etc/tasques/client.pem", "key": "/etc/tasques/client.key"}, "http_request.tls.cert"),
    ):
        request = {**HTTP, "url": "https://127.0.0.1:9/x", "tls": tls}
        body = await call(
            client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": request}
        )
        assert field in {d["field"] for d in body["details"]}, body
        assert "tls_files_dir is not set" in body["details"][0]["problem"]
    # The same rule for recurring task definitions.
    definition = {"queue": "q", "kind": "k", "http_request": {**HTTP, "tls": {"ca": "/etc/passwd"}}}
    body = {"id": "r", "schedule_expression": "@every 1m", "task_definition": definition}
    assert_error(
        await call(client, "POST", "/recurring_tasques", status=400, body=body), "task_definition.http_request.tls.ca"
    )


async def test_headers_url_and_timeout_are_checked_at_creation(client: Client) -> None:
    for change, field in (
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "http_request.headers"),
        ({"headers": {"X-A": "a\nb"}}, "http_request.headers"),
        ({"headers": {"X-A": "a\u0000"}}, "http_request.headers"),
        ({"headers": {"Bad Name": "1"}}, "http_request.headers"),
        ({"headers": {"Host": "metadata.internal"}}, "http_request.headers"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "http_request.headers"),
        ({"headers": {f"X-{i}": "v" for i in range(100)}}, "http_request.headers"),
        ({"url": "http://127.0.0.1:99999/"}, "http_request.url"),
        ({"url": "http:///nohost"}, "http_request.url"),
        ({"timeout": "31m"}, "http_request.timeout"),
    ):
        request = {**HTTP, **change}
        body = await call(
            client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": request}
        )
        assert_error(body, field)
    ok = await create_task(client, http_request={**HTTP, "timeout": "30m", "follow_redirects": True})
    assert (ok["http_request"]["timeout"], ok["http_request"]["follow_redirects"]) == ("30m0s", True)


async def test_resume_wakes_a_claim_blocked_on_the_paused_queue(make_client: MakeClient) -> None:
    client = await make_client(poll_interval=timedelta(seconds=60))
    await call(client, "PUT", "/queues/q/pause", status=200)
    await create_task(client, id="waiting")
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending = asyncio.create_task(claim(client, ["q"], block_for="5s"))
    await asyncio.sleep(0.2)
    assert not pending.done()  # paused: nothing handed out
    await call(client, "PUT", "/queues/q/resume", status=200)
    claimed = await asyncio.wait_for(pending, 10)
    assert [t["id"] for t in claimed] == ["waiting"]
    assert loop.time() - start < 2, "the claim was not woken by the resume"
