"""The driver's side of the REST API: lean bulk loading and the read-back checks every scenario ends with."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

import aiohttp

from bench.env import Json, check

JSON_HEADERS = {"Content-Type": "application/json"}
BULK_MAX = 1000
_STATUS_CLASS = re.compile(r'status_class="([^"]+)"')


def session(connections: int = 32, headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """`headers` go with every request (e.g. `bearer(token)` for a server with auth on)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=300),
        headers=headers,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _created(http: aiohttp.ClientSession, url: str, body: Json) -> Json:
    async with http.post(url, json=body) as resp:
        text = await resp.text()
        check(resp.status == 201, f"POST {url} answered {resp.status}: {text[:300]}")
    answer: Json = json.loads(text)
    return answer


async def issue_tokens(admin: aiohttp.ClientSession, url: str, project: str, roles: Sequence[str]) -> list[str]:
    """Create `project` (no quota) through `admin` (a session sending the admin token); one token per role."""
    await _created(admin, f"{url}/projects", {"name": project, "unlimited": True})
    return [str((await _created(admin, f"{url}/projects/{project}/tokens", {"role": r}))["token"]) for r in roles]


async def http_answers(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """Requests the server answered so far by status class (`2xx`, `4xx`, ...), from its metrics."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
        check(resp.status == 200, f"GET /metrics answered {resp.status}: {text[:300]}")
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("tasques_http_requests_total{") and (m := _STATUS_CLASS.search(line)):
            out[m[1]] = out.get(m[1], 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def task_body(queue: str, i: int, task_id: str | None = None) -> str:
    """A small but not empty task, as a producer would send it."""
    ident = f'"id":"{task_id}",' if task_id is not None else ""
    return f'{{{ident}"queue":"{queue}","kind":"noop","args":{{"n":{i}}}}}'


def bulk_body(queue: str, start: int, count: int, id_prefix: str | None = None) -> bytes:
    tasks = ",".join(
        task_body(queue, i, f"{id_prefix}{i}" if id_prefix is not None else None) for i in range(start, start + count)
    )
    return f'{{"tasks":[{tasks}]}}'.encode()


async def post_bulk(http: aiohttp.ClientSession, url: str, body: bytes, expected: int) -> list[str]:
    """POST /tasques/bulk; every item must be created. Returns the created ids in order."""
    async with http.post(f"{url}/tasques/bulk", data=body, headers=JSON_HEADERS) as resp:
        text = await resp.text()
        check(resp.status == 200, f"POST /tasques/bulk answered {resp.status}: {text[:300]}")
    results: list[Json] = json.loads(text)["results"]
    check(len(results) == expected, f"POST /tasques/bulk returned {len(results)} results for {expected} tasks")
    bad = [r for r in results if r.get("status") != 201]
    check(not bad, f"POST /tasques/bulk: {len(bad)} of {expected} not created, e.g. {bad[:1]}")
    return [str(r["task"]["id"]) for r in results]


async def bulk_enqueue(
    http: aiohttp.ClientSession, url: str, queue: str, count: int, id_prefix: str | None = None
) -> list[str]:
    """Enqueue `count` no-op tasks through POST /tasques/bulk, 1,000 at a time (setup, not measured)."""
    ids: list[str] = []
    for start in range(0, count, BULK_MAX):
        n = min(BULK_MAX, count - start)
        ids.extend(await post_bulk(http, url, bulk_body(queue, start, n, id_prefix), n))
    return ids


async def queue_counts(http: aiohttp.ClientSession, url: str, queue: str) -> dict[str, int]:
    async with http.get(f"{url}/queues") as resp:
        check(resp.status == 200, f"GET /queues answered {resp.status}")
        summaries: list[Json] = await resp.json()
    for summary in summaries:
        if summary["queue"] == queue:
            return {str(k): int(v) for k, v in summary["counts"].items()}
    return {}


async def expect_counts(http: aiohttp.ClientSession, url: str, queue: str, **expected: int) -> dict[str, int]:
    """GET /queues must show exactly `expected` for `queue` (states not named must be 0)."""
    counts = await queue_counts(http, url, queue)
    for state in ("queued", "claimed", "failed", "done", "dead"):
        want = expected.get(state, 0)
        check(counts.get(state, 0) == want, f"queue {queue}: {counts.get(state, 0)} {state}, expected {want}")
    return counts


async def done_tasks(http: aiohttp.ClientSession, url: str, queue: str) -> list[Json]:
    """Every done task of `queue`, through the paged listing."""
    out: list[Json] = []
    params: dict[str, Any] = {"queue": queue, "state": "done", "limit": "1000"}
    while True:
        async with http.get(f"{url}/tasques", params=params) as resp:
            check(resp.status == 200, f"GET /tasques answered {resp.status}")
            page: Json = await resp.json()
        out.extend(page["tasks"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out
        params["cursor"] = cursor


async def expect_done_once(http: aiohttp.ClientSession, url: str, queue: str, expected_ids: Collection[str]) -> None:
    """The server lists exactly `expected_ids` as done in `queue`, each claimed exactly once."""
    tasks = await done_tasks(http, url, queue)
    ids = [str(t["id"]) for t in tasks]
    check(len(ids) == len(set(ids)), f"queue {queue}: the done listing repeats ids")
    missing = set(expected_ids) - set(ids)
    extra = set(ids) - set(expected_ids)
    check(not missing and not extra, f"queue {queue}: {len(missing)} tasks not done, {len(extra)} unexpected done")
    retried = [t["id"] for t in tasks if t["attempted"] != 1]
    check(not retried, f"queue {queue}: {len(retried)} done tasks were claimed more than once, e.g. {retried[:3]}")
