"""Claim tokens over HTTP, on a real `tasques serve` per store.

Every claim gets `last_claimed.claim_id`; report, done, failed and unclaim sent with `X-TASQUES-CLAIM-ID` act
only on that claim (409 otherwise). Without the header only the worker id is checked, as the original Tasques
does, so Go clients keep working. Unclaim keeps `last_claimed`, as the original does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.process import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKER_ID_HEADER = "X-TASQUES-WORKER-ID"
CLAIM_ID_HEADER = "X-TASQUES-CLAIM-ID"
WORKER = "worker-1"
OTHER = "worker-2"


@pytest.fixture
async def http(store_server: ServerProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(store_server.url) as session:
        yield Api(session)


class Api:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        status: int,
        *,
        worker: str | None = WORKER,
        claim_id: str | None = None,
        body: Any = None,
    ) -> Any:
        headers = {}
        if worker is not None:
            headers[WORKER_ID_HEADER] = worker
        if claim_id is not None:
            headers[CLAIM_ID_HEADER] = claim_id
        async with self.session.request(method, path, json=body, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == status, f"{method} {path}: expected {status}, got {resp.status}: {text}"
            return await resp.json()

    async def create(self, task_id: str) -> None:
        await self.call("POST", "/tasques", 201, worker=None, body={"queue": "q", "kind": "k", "id": task_id})

    async def claim(self, worker: str = WORKER) -> Any:
        [task] = await self.call("POST", "/tasques/claims", 200, worker=worker, body={"queues": ["q"], "amount": 1})
        return task

    async def get(self, task_id: str) -> Any:
        return await self.call("GET", f"/tasques/q/{task_id}", 200, worker=None)

    async def claim_twice(self, task_id: str) -> tuple[str, Any]:
        """Claim `task_id`, hand it back, claim it again (same worker id): the first claim id and the new task."""
        await self.create(task_id)
        first = (await self.claim())["last_claimed"]["claim_id"]
        await self.call("DELETE", f"/tasques/claims/q/{task_id}", 200, claim_id=first)
        second = await self.claim()
        assert second["id"] == task_id
        assert second["last_claimed"]["claim_id"] != first
        return first, second


OWNER_CALLS = [
    ("PUT", "/tasques/reports/q/{}", {"data": {"p": 1}}),
    ("PUT", "/tasques/done/q/{}", {"data": {"ok": True}}),
    ("PUT", "/tasques/failed/q/{}", {"data": {"err": "late"}}),
    ("DELETE", "/tasques/claims/q/{}", None),
]


async def test_a_late_call_from_an_earlier_attempt_of_the_same_worker_is_refused(http: Api) -> None:
    stale, current = await http.claim_twice("t")
    for method, path, body in OWNER_CALLS:
        refused = await http.call(method, path.format("t"), 409, claim_id=stale, body=body)
        assert f"claim {stale} is not its current claim" in refused["message"]
        assert await http.get("t") == current, f"{method} {path} with a stale claim id changed the task"
    # The newer attempt goes on: it reports and finishes with its own claim id.
    new_id = current["last_claimed"]["claim_id"]
    reported = await http.call("PUT", "/tasques/reports/q/t", 200, claim_id=new_id, body={"data": {"p": 2}})
    assert reported["last_claimed"]["claim_id"] == new_id
    done = await http.call("PUT", "/tasques/done/q/t", 200, claim_id=new_id, body={"data": {"ok": True}})
    assert (done["state"], done["last_claimed"]["claim_id"]) == ("done", new_id)
    assert done["last_claimed"]["result"]["success"] == {"ok": True}
    # Once done, even the right claim id is refused: the task is not claimed any more.
    await http.call("PUT", "/tasques/done/q/t", 409, claim_id=new_id)


async def test_without_the_header_the_worker_id_check_stays(http: Api) -> None:
    """Go clients send no claim id: another worker is refused (403), the claiming worker is not."""
    await http.create("go")
    claimed = await http.claim()
    claim_id = claimed["last_claimed"]["claim_id"]
    for method, path, body in OWNER_CALLS:
        await http.call(method, path.format("go"), 403, worker=OTHER, body=body)
        # The right claim id from another worker is still the other worker's call: 403.
        await http.call(method, path.format("go"), 403, worker=OTHER, claim_id=claim_id, body=body)
    assert await http.get("go") == claimed
    reported = await http.call("PUT", "/tasques/reports/q/go", 200, body={"data": {"p": 1}})
    assert reported["last_claimed"]["last_report"]["data"] == {"p": 1}
    done = await http.call("PUT", "/tasques/done/q/go", 200)
    assert done["state"] == "done"


BAD_CLAIM_IDS = ["", "a" * 129, "has space", "semi;colon", 'quote"d', "ünïcode".encode().decode("latin-1")]


async def test_a_malformed_claim_id_is_400_naming_the_header(http: Api) -> None:
    await http.create("m")
    claimed = await http.claim()
    for bad in BAD_CLAIM_IDS:
        headers = {WORKER_ID_HEADER: WORKER, CLAIM_ID_HEADER: bad}
        for method, path, _ in OWNER_CALLS:
            async with http.session.request(method, path.format("m"), headers=headers) as resp:
                assert resp.status == 400, f"{bad!r}: {await resp.text()}"
                body = await resp.json()
            assert body["details"][0]["field"] == CLAIM_ID_HEADER
            assert CLAIM_ID_HEADER in body["message"]
    assert await http.get("m") == claimed
    # The longest well-formed id is accepted (and, not being the current claim's, refused with 409).
    await http.call("PUT", "/tasques/done/q/m", 409, claim_id="a" * 128)


async def test_unclaim_keeps_last_claimed_and_the_next_claim_replaces_it(http: Api) -> None:
    await http.create("u")
    claimed = await http.claim()
    reported = await http.call("PUT", "/tasques/reports/q/u", 200, body={"data": {"step": 1}})
    unclaimed = await http.call("DELETE", "/tasques/claims/q/u", 200)
    assert (unclaimed["state"], unclaimed["attempted"]) == ("queued", 0)
    assert unclaimed["last_claimed"] == reported["last_claimed"]
    assert unclaimed["last_claimed"]["claim_id"] == claimed["last_claimed"]["claim_id"]
    assert await http.get("u") == unclaimed
    listed = await http.call("GET", "/tasques?queue=q&state=queued", 200, worker=None)
    assert [t["last_claimed"] for t in listed["tasks"]] == [reported["last_claimed"]]
    # Queued again, it is claimable by anyone; the old claim id no longer acts on it.
    again = await http.claim(OTHER)
    assert (again["id"], again["attempted"], again["last_claimed"]["worker_id"]) == ("u", 1, OTHER)
    assert "last_report" not in again["last_claimed"]
    await http.call("PUT", "/tasques/done/q/u", 403, claim_id=claimed["last_claimed"]["claim_id"])
    await http.call("PUT", "/tasques/done/q/u", 409, worker=OTHER, claim_id=claimed["last_claimed"]["claim_id"])
