"""Dispatch metrics against a real target on 127.0.0.1, on every store: by queue and status class, or "error"
when no response came; each with its duration."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Client, call
from tests.dispatch.conftest import Target, eventually


async def _samples(server: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with server.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _create(server: Client, id: str, url: str, retry_times: int = 0) -> Any:
    body = {"queue": "hooks", "kind": "hook", "id": id, "http_request": {"url": url}, "retry_times": retry_times}
    return await call(server, "POST", "/tasques", status=201, body=body)


async def _ends(server: Client, id: str) -> None:
    async def check() -> bool:
        task = await call(server, "GET", f"/tasques/hooks/{id}", status=200)
        return bool(task["state"] in ("done", "dead"))

    await eventually(check)


async def test_dispatches_are_counted_by_status_class(server: Client, target: Target) -> None:
    async def answer(n: int, request: web.Request) -> web.StreamResponse:
        return web.Response(status=503 if request.path == "/down" else 204)

    target.answer = answer
    await _create(server, "ok", f"{target.url}/up")
    await _create(server, "down", f"{target.url}/down")
    await _create(server, "refused", "http://127.0.0.1:1/")  # nothing listens: no response
    for id in ("ok", "down", "refused"):
        await _ends(server, id)

    m = await _samples(server)

    def get(name: str, **labels: str) -> float:
        return m.get((name, frozenset(labels.items())), 0.0)

    for status_class in ("2xx", "5xx", "error"):
        labels = {"queue": "hooks", "status_class": status_class}
        assert get("tasques_http_target_dispatches_total", **labels) == 1, status_class
        assert get("tasques_http_target_dispatch_duration_seconds_count", **labels) == 1, status_class
    assert get("tasques_tasks_claimed_total", queue="hooks") == 3
    assert get("tasques_tasks_finished_total", queue="hooks", outcome="done") == 1
    assert get("tasques_tasks_finished_total", queue="hooks", outcome="dead") == 2
