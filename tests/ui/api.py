"""The test's own side of the API, next to the browser: Playwright's request context (typed, sync, in the same
loop as the browser), so a UI test sets up data and checks effects without an asyncio client."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import APIRequestContext, APIResponse

from tests.waiting import eventually

HTTP_COUNTER = re.compile(r"^tasques_http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


class Api:
    """Calls of one server, as one caller (`token`: a Bearer token when auth is on)."""

    def __init__(self, request: APIRequestContext, url: str, token: str | None = None) -> None:
        self.request = request
        self.url = url
        self.token = token

    def response(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> APIResponse:
        sent = dict(headers or {})
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            sent["Content-Type"] = "application/json"
        data = json.dumps(body) if body is not None else None
        return self.request.fetch(f"{self.url}{path}", method=method, headers=sent, data=data)

    def call(
        self, method: str, path: str, body: Any = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> Any:
        """The JSON answer of a call that must answer `status`."""
        resp = self.response(method, path, body, headers)
        text = resp.text()
        assert resp.status == status, f"{method} {path}: {resp.status}, wanted {status}: {text}"
        return json.loads(text) if text else None

    # What the UI tests set up and check.

    def create_task(self, queue: str, kind: str = "k", **fields: Any) -> Any:
        return self.call("POST", "/tasques", {"queue": queue, "kind": kind, **fields}, status=201)

    def task(self, queue: str, task_id: str) -> Any:
        return self.call("GET", f"/tasques/{queue}/{task_id}")

    def claim(self, queue: str, worker: str) -> tuple[list[Any], dict[str, str]]:
        """One claim that does not wait: the tasks and the response headers (lower-case names)."""
        resp = self.response(
            "POST",
            "/tasques/claims",
            {"queues": [queue], "amount": 1, "block_for": "0s"},
            headers={"X-TASQUES-WORKER-ID": worker},
        )
        assert resp.status == 200, f"claim {queue} as {worker}: {resp.status}: {resp.text()}"
        tasks: list[Any] = resp.json()
        return tasks, resp.headers

    def claim_until_one(self, queue: str, worker: str) -> Any:
        """The first task a claim returns (the store may need a refresh to show a new task)."""
        tasks, _ = eventually(
            f"a claim of {queue} returning a task", lambda: self.claim(queue, worker), lambda got: bool(got[0])
        )
        assert len(tasks) == 1, tasks
        return tasks[0]

    def dead_task(self, queue: str, task_id: str, worker: str = "ui-test-worker") -> Any:
        """A task claimed once and failed with no retries left."""
        self.create_task(queue, id=task_id, retry_times=0, args={"n": 1})
        claimed = self.claim_until_one(queue, worker)
        assert claimed["id"] == task_id, claimed
        body = {"data": {"error": "the image could not be decoded"}}
        dead = self.call("PUT", f"/tasques/failed/{queue}/{task_id}", body, headers={"X-TASQUES-WORKER-ID": worker})
        assert dead["state"] == "dead", dead
        return dead

    def http_requests_served(self) -> float:
        """This server's count of HTTP requests it answered (GET /metrics), leaving out the scrapes themselves."""
        resp = self.response("GET", "/metrics")
        assert resp.status == 200, resp.text()
        total = 0.0
        for line in resp.text().splitlines():
            found = HTTP_COUNTER.match(line)
            if found and 'route="/metrics"' not in found["labels"]:
                total += float(found["value"])
        return total
