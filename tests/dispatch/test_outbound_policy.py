"""The default outbound policy against real servers on 127.0.0.1: nothing internal is reached, the task is dead
at once with the reason, and nothing of the target comes back. Then redirects, with `localhost` allowed by name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from tests.api.conftest import Client, call
from tests.dispatch.conftest import Target, eventually


@pytest.fixture
def dispatch_config() -> dict[str, Any]:
    return {"poll_interval": "20ms"}  # the default policy


async def _run(server: Client, id: str, url: str, retry_times: int = 5, **request: Any) -> Any:
    body = {"queue": "q", "kind": "k", "id": id, "retry_times": retry_times, "http_request": {"url": url, **request}}
    await call(server, "POST", "/tasques", status=201, body=body)

    async def finished() -> Any:
        task = await call(server, "GET", f"/tasques/q/{id}", status=200)
        return task if task["state"] in ("done", "dead") else None

    return await eventually(finished)


async def _assert_refused(server: Client, task: Any, *words: str) -> None:
    assert task["state"] == "dead", task  # not retried, although retry_times is 5
    assert task["attempted"] == 1
    failure = task["last_claimed"]["result"]["failure"]
    assert set(failure) == {"error", "duration_ms"}, failure  # no status, headers or body
    assert failure["error"].startswith("destination refused: "), failure
    for word in words:
        assert word in failure["error"], failure
    [attempt] = (await call(server, "GET", f"/tasques/timeline/q/{task['id']}", status=200))["attempts"]
    assert attempt["error"] == failure["error"]
    assert "response_body" not in attempt
    assert "status_code" not in attempt


async def test_loopback_metadata_path_is_refused(server: Client, target: Target) -> None:
    port = target.url.rsplit(":", 1)[1]
    task = await _run(server, "ip", f"http://127.0.0.1:{port}/latest/meta-data")
    await _assert_refused(server, task, "127.0.0.1", "loopback")
    assert target.received == []


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_localhost_ipv6_and_mapped_forms_are_refused(server: Client, target: Target) -> None:
    port = target.url.rsplit(":", 1)[1]
    await _assert_refused(server, await _run(server, "name", f"http://localhost:{port}/"), "localhost resolves to")
    await _assert_refused(server, await _run(server, "name-case", f"http://LocalHost:{port}/"), "loopback")
    await _assert_refused(server, await _run(server, "v6", f"http://[::1]:{port}/"), "::1", "loopback")
    await _assert_refused(server, await _run(server, "mapped", f"http://[::ffff:127.0.0.1]:{port}/"), "IPv4 127.0.0.1")
    await _assert_refused(server, await _run(server, "zero", f"http://0.0.0.0:{port}/"), "unspecified")
    assert target.received == []


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_the_metadata_address_is_refused_at_the_check(server: Client) -> None:
    # Nothing may be sent to 169.254.x: the refusal comes from the policy's check, before any socket exists
    # (a connection attempt would fail differently, or time out after the 10 s request timeout).
    task = await _run(server, "meta", "http://169.254.169.254/latest/meta-data/iam", timeout="10s")
    await _assert_refused(server, task, "169.254.169.254", "link-local")
    assert task["last_claimed"]["result"]["failure"]["duration_ms"] < 1000


# Redirects: `localhost` is allowed by name; the same server by its address is not.


class TestRedirects:
    @pytest.fixture
    def dispatch_config(self) -> dict[str, Any]:
        return {"poll_interval": "20ms", "allowed_hosts": ["localhost"], "max_redirects": 3}

    @pytest.fixture
    def port(self, target: Target) -> str:
        async def redirect(_: int, request: web.Request) -> web.Response:
            if request.path.startswith("/to/"):
                return web.Response(status=302, headers={"Location": request.path[len("/to") :]})
            if request.path == "/loop":
                return web.Response(status=307, headers={"Location": "/loop"})
            if request.path == "/secret":
                return web.Response(text="internal secret")
            return web.Response(status=303, headers={"Location": f"http://127.0.0.1:{request.url.port}/secret"})

        target.answer = redirect
        return target.url.rsplit(":", 1)[1]

    @pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
    async def test_redirects_are_not_followed_by_default(self, server: Client, target: Target, port: str) -> None:
        task = await _run(server, "nofollow", f"http://localhost:{port}/to/secret", retry_times=0)
        assert task["state"] == "dead"
        failure = task["last_claimed"]["result"]["failure"]
        assert (failure["status_code"], failure["headers"]["location"]) == (302, "/secret")
        assert [r.path for r in target.received] == ["/to/secret"]

    @pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
    async def test_followed_redirects_are_checked_at_every_hop(self, server: Client, target: Target, port: str) -> None:
        allowed = await _run(server, "ok", f"http://localhost:{port}/to/secret", follow_redirects=True)
        assert allowed["state"] == "done"
        assert allowed["last_claimed"]["result"]["success"]["body"] == "internal secret"
        target.received.clear()
        # The first hop is allowed (localhost by name); it redirects to 127.0.0.1, which is not.
        refused = await _run(server, "hop", f"http://localhost:{port}/start", follow_redirects=True)
        await _assert_refused(server, refused, "127.0.0.1", "loopback")
        assert [r.path for r in target.received] == ["/start"]  # /secret was never asked for
        looping = await _run(server, "loop", f"http://localhost:{port}/loop", follow_redirects=True, retry_times=0)
        assert looping["state"] == "dead"
        assert looping["last_claimed"]["result"]["failure"]["error"] == "stopped after 3 redirects"
        await asyncio.sleep(0)
