"""/tasques, /queues and /health over HTTP, against the whole server on SQLite with a manual clock."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tasques.api.keys import TASKS
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.server import ELECTOR
from tasques.service.clock import ManualClock
from tests.api.conftest import (
    OTHER_WORKER,
    T0,
    WORKER,
    Client,
    MakeClient,
    assert_error,
    call,
    claim,
    claim_one,
    create_task,
    get_task,
    list_all,
    parse_ts,
)

# Create


async def test_create_returns_the_full_task(client: Client) -> None:
    body = {
        "id": "task-1",
        "queue": "run-later",
        "kind": "sayHello",
        "priority": 5,
        "run_at": "2024-01-02T04:00:00Z",
        "retry_times": 3,
        "processing_timeout": "1h30m",
        "args": {"name": "Lloyd", "n": [1, 2]},
        "context": {"trace": "abc"},
    }
    task = await call(client, "POST", "/tasques", status=201, body=body)

    assert set(task) == {
        "project",
        "sensitive",
        "id",
        "queue",
        "kind",
        "priority",
        "run_at",
        "args",
        "context",
        "state",
        "retry_times",
        "attempted",
        "processing_timeout",
        "last_enqueued_at",
        "metadata",
    }
    assert task["id"] == "task-1"
    assert task["queue"] == "run-later"
    assert task["kind"] == "sayHello"
    assert task["priority"] == 5
    assert parse_ts(task["run_at"]) == datetime(2024, 1, 2, 4, 0, 0, tzinfo=UTC)
    assert task["args"] == {"name": "Lloyd", "n": [1, 2]}
    assert task["context"] == {"trace": "abc"}
    assert task["state"] == "queued"
    assert task["retry_times"] == 3
    assert task["attempted"] == 0
    assert task["processing_timeout"] == "1h30m0s"
    assert parse_ts(task["last_enqueued_at"]) == T0
    meta = task["metadata"]
    assert set(meta) == {"created_at", "modified_at", "version"}
    assert parse_ts(meta["created_at"]) == T0
    assert parse_ts(meta["modified_at"]) == T0
    assert meta["version"] == {"seq_num": 1, "primary_term": 1}

    assert await get_task(client, "run-later", "task-1") == task


async def test_create_applies_server_defaults(client: Client) -> None:
    task = await create_task(client, "q", "k")
    uuid.UUID(task["id"])  # a generated id is a UUID
    assert task["priority"] == 0
    assert task["retry_times"] == 25
    assert task["processing_timeout"] == "30m0s"
    assert task["attempted"] == 0
    assert task["state"] == "queued"
    assert parse_ts(task["run_at"]) == T0
    assert "last_claimed" not in task
    assert "recurring_task_id" not in task


async def test_create_defaults_come_from_config(make_client: MakeClient) -> None:
    client = await make_client({"tasks": {"retry_times": 2, "processing_timeout": "5m"}})
    task = await create_task(client, "q", "k")
    assert task["retry_times"] == 2
    assert task["processing_timeout"] == "5m0s"


async def test_two_creates_get_distinct_generated_ids(client: Client) -> None:
    a = await create_task(client, "q", "k")
    b = await create_task(client, "q", "k")
    assert a["id"] != b["id"]


@pytest.mark.parametrize(
    ("given", "shown"),
    [("1h30m", "1h30m0s"), ("90s", "1m30s"), ("1.5s", "1.5s"), ("500ms", "500ms"), ("2h", "2h0m0s")],
)
async def test_create_accepts_go_durations(client: Client, given: str, shown: str) -> None:
    task = await create_task(client, "q", "k", processing_timeout=given)
    assert task["processing_timeout"] == shown


async def test_run_at_with_offset_is_normalised_to_utc(client: Client) -> None:
    task = await create_task(client, "q", "k", id="tz", run_at="2024-01-02T05:04:05+02:00")
    assert parse_ts(task["run_at"]) == T0
    assert parse_ts(task["run_at"]).utcoffset() == timedelta(0), task["run_at"]
    stored = await get_task(client, "q", "tz")
    assert parse_ts(stored["run_at"]).utcoffset() == timedelta(0), stored["run_at"]


async def test_fractional_run_at_round_trips(client: Client) -> None:
    task = await create_task(client, "q", "k", run_at="2024-01-02T03:04:05.123456Z")
    assert parse_ts(task["run_at"]) == T0 + timedelta(microseconds=123456)


async def test_duplicate_id_in_same_queue_is_409_and_original_unchanged(client: Client) -> None:
    original = await create_task(client, "q", "k", id="dup", args={"v": 1})
    body = await call(client, "POST", "/tasques", status=409, body={"queue": "q", "kind": "other", "id": "dup"})
    assert_error(body)
    assert await get_task(client, "q", "dup") == original


async def test_same_id_in_another_queue_is_fine(client: Client) -> None:
    a = await create_task(client, "q1", "k", id="same")
    b = await create_task(client, "q2", "k", id="same")
    assert (a["queue"], b["queue"]) == ("q1", "q2")
    assert (await get_task(client, "q1", "same"))["queue"] == "q1"
    assert (await get_task(client, "q2", "same"))["queue"] == "q2"


# Get


async def test_get_unknown_task_is_404(client: Client) -> None:
    await create_task(client, "q", "k", id="exists")
    assert_error(await call(client, "GET", "/tasques/q/missing", status=404))
    assert_error(await call(client, "GET", "/tasques/other/exists", status=404))


# Claim


async def test_claim_sets_claim_fields(client: Client, clock: ManualClock) -> None:
    created = await create_task(client, "q", "k", id="c1", processing_timeout="10m")
    clock.advance(timedelta(seconds=30))
    task = await claim_one(client, "q")
    claimed_at = T0 + timedelta(seconds=30)
    assert task["id"] == "c1"
    assert task["state"] == "claimed"
    assert task["attempted"] == 1
    last = task["last_claimed"]
    assert set(last) == {"worker_id", "claim_id", "claimed_at", "times_out_at"}
    assert last["worker_id"] == WORKER
    assert re.fullmatch(r"[0-9a-f]{32}", last["claim_id"])  # a uuid4 hex, new for every claim
    assert parse_ts(last["claimed_at"]) == claimed_at
    assert parse_ts(last["times_out_at"]) == claimed_at + timedelta(minutes=10)
    assert parse_ts(task["metadata"]["modified_at"]) == claimed_at
    assert task["metadata"]["created_at"] == created["metadata"]["created_at"]
    assert task["metadata"]["version"]["seq_num"] == created["metadata"]["version"]["seq_num"] + 1
    assert await get_task(client, "q", "c1") == task


async def test_claim_order_is_priority_then_run_at(client: Client) -> None:
    await create_task(client, "q", "k", id="low-early", priority=1, run_at="2024-01-01T00:00:00Z")
    await create_task(client, "q", "k", id="high-late", priority=9, run_at="2024-01-02T00:00:00Z")
    await create_task(client, "q", "k", id="high-early", priority=9, run_at="2024-01-01T12:00:00Z")
    await create_task(client, "q", "k", id="mid", priority=5, run_at="2024-01-02T03:00:00Z")
    claimed = await claim(client, ["q"], amount=10)
    assert [t["id"] for t in claimed] == ["high-early", "high-late", "mid", "low-early"]


async def test_claim_order_spans_queues(client: Client) -> None:
    await create_task(client, "a", "k", id="a-low", priority=1)
    await create_task(client, "b", "k", id="b-high", priority=3)
    await create_task(client, "a", "k", id="a-mid", priority=2)
    await create_task(client, "c", "k", id="c-top", priority=100)
    first = await claim(client, ["a", "b"], amount=2)
    assert [t["id"] for t in first] == ["b-high", "a-mid"]
    rest = await claim(client, ["a", "b"], amount=5)
    assert [t["id"] for t in rest] == ["a-low"]


async def test_claim_amount(client: Client) -> None:
    for i in range(5):
        await create_task(client, "q", "k", id=f"t{i}")
    assert len(await claim(client, ["q"], amount=3)) == 3
    assert len(await claim(client, ["q"], amount=10)) == 2
    assert await claim(client, ["q"], amount=10) == []


async def test_future_run_at_is_not_claimable_until_due(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="later", run_at="2024-01-02T04:04:05Z")
    assert await claim(client, ["q"]) == []
    clock.advance(timedelta(minutes=59, seconds=59))
    assert await claim(client, ["q"]) == []
    clock.advance(timedelta(seconds=1))
    assert (await claim_one(client, "q"))["id"] == "later"


async def test_claim_returns_empty_after_block_for(client: Client) -> None:
    await create_task(client, "other", "k")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await claim(client, ["q"], block_for="50ms") == []
    assert loop.time() - start >= 0.05


async def test_claim_with_zero_block_for_returns_at_once(client: Client) -> None:
    assert await claim(client, ["q"], block_for="0s") == []


async def test_blocked_claim_is_woken_by_a_create(make_client: MakeClient) -> None:
    # The claim re-polls the store only once a minute here, so only the create's wake-up can end it early.
    client = await make_client(poll_interval=timedelta(seconds=60))
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending = asyncio.create_task(claim(client, ["q"], block_for="5s"))
    await asyncio.sleep(0.2)  # let the claim find nothing and start waiting
    assert not pending.done()
    created = await create_task(client, "q", "k", id="wake")
    claimed = await asyncio.wait_for(pending, timeout=10)
    elapsed = loop.time() - start
    assert [t["id"] for t in claimed] == [created["id"]]
    assert claimed[0]["state"] == "claimed"
    assert elapsed < 2, f"claim took {elapsed:.2f}s: it was not woken by the create"


async def test_claim_for_a_worker_that_hung_up_is_handed_back(make_client: MakeClient) -> None:
    client = await make_client(poll_interval=timedelta(seconds=60))
    pending = asyncio.create_task(
        client.post(
            "/tasques/claims",
            json={"queues": ["q"], "block_for": "5s"},
            headers={"X-TASQUES-WORKER-ID": WORKER},
        )
    )
    await asyncio.sleep(0.2)  # the long poll is waiting on the server
    pending.cancel()  # the worker gives up and closes its connection
    await asyncio.gather(pending, return_exceptions=True)
    await asyncio.sleep(0.1)
    await create_task(client, "q", "k", id="orphan")
    await asyncio.sleep(0.1)
    # Either the long poll was cancelled with the connection (nothing claimed), or it claimed the task and
    # handed it straight back: either way the task is claimable now, not in 30 minutes.
    assert (await claim_one(client, "q", OTHER_WORKER))["id"] == "orphan"
    task = await get_task(client, "q", "orphan")
    assert task["attempted"] == 1
    assert task["last_claimed"]["worker_id"] == OTHER_WORKER


async def test_claim_cancelled_while_the_store_claims_hands_the_tasks_back(make_client: MakeClient) -> None:
    client = await make_client()
    await create_task(client, "q", "k", id="c1")
    service = client.app[TASKS]
    pending = asyncio.create_task(service.claim(WORKER, DEFAULT_PROJECT, ["q"], 1, timedelta(0)))
    while service.shared_claims.store_calls == 0:  # until the (shared) claim is inside the store's transaction
        assert not pending.done()
        await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    task = await get_task(client, "q", "c1")
    assert task["state"] == "queued"
    assert task["attempted"] == 0
    assert task["last_claimed"]["worker_id"] == WORKER  # handed back: the claim stays visible, as after an unclaim


async def test_blocked_claim_is_woken_by_an_unclaim(make_client: MakeClient) -> None:
    client = await make_client(poll_interval=timedelta(seconds=60))
    await create_task(client, "q", "k", id="u")
    await claim_one(client, "q", OTHER_WORKER)
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending = asyncio.create_task(claim(client, ["q"], block_for="5s"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await call(client, "DELETE", "/tasques/claims/q/u", status=200, worker=OTHER_WORKER)
    claimed = await asyncio.wait_for(pending, timeout=10)
    assert [t["id"] for t in claimed] == ["u"]
    assert loop.time() - start < 2


async def test_blocked_claim_ignores_tasks_in_other_queues(make_client: MakeClient) -> None:
    client = await make_client(poll_interval=timedelta(seconds=60))
    pending = asyncio.create_task(claim(client, ["q"], block_for="300ms"))
    await asyncio.sleep(0.05)
    await create_task(client, "elsewhere", "k")
    assert await asyncio.wait_for(pending, timeout=10) == []
    assert [t["state"] for t in await list_all(client, {"queue": "elsewhere"})] == ["queued"]


@pytest.mark.parametrize("amount", [0, -1, -(10**30)])
async def test_claim_amount_below_one_is_400(client: Client, amount: int) -> None:
    body = await call(
        client, "POST", "/tasques/claims", status=400, worker=WORKER, body={"queues": ["q"], "amount": amount}
    )
    assert_error(body, "amount")


@pytest.mark.parametrize("amount", [3, 10**30])
async def test_claim_amount_above_the_max_is_clamped_to_it(make_client: MakeClient, amount: int) -> None:
    # The original accepted any amount: a 400 here would stop an unmodified Go worker for good.
    client = await make_client({"tasks": {"max_claim_amount": 2}})
    for i in range(3):
        await create_task(client, "q", "k", id=f"t{i}")
    claimed = await claim(client, ["q"], amount=amount)
    assert len(claimed) == 2
    assert len(await claim(client, ["q"], amount=amount)) == 1


@pytest.mark.parametrize("block_for", ["61s", "1h", "2562047h47m16.854775807s", "9999999999999999h"])
async def test_claim_block_for_above_the_max_is_clamped_to_it(make_client: MakeClient, block_for: str) -> None:
    # The longest wait is max_block_for, whatever the worker asks (Go's longest duration included).
    client = await make_client({"tasks": {"max_block_for": "50ms", "block_for": "0s"}})
    assert await asyncio.wait_for(claim(client, ["q"], block_for=block_for), timeout=30) == []


@pytest.mark.parametrize("block_for", ["-1s", "-9999999999999999h"])
async def test_claim_block_for_negative_is_400(client: Client, block_for: str) -> None:
    body = await call(
        client, "POST", "/tasques/claims", status=400, worker=WORKER, body={"queues": ["q"], "block_for": block_for}
    )
    assert_error(body, "block_for")


async def test_claim_without_worker_header_is_400(client: Client) -> None:
    await create_task(client, "q", "k", id="x")
    body = await call(client, "POST", "/tasques/claims", status=400, body={"queues": ["q"], "block_for": "0s"})
    assert_error(body, "X-TASQUES-WORKER-ID")
    assert (await get_task(client, "q", "x"))["state"] == "queued"


# Report


async def test_report_stores_report_and_extends_timeout(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="r", processing_timeout="10m")
    await claim_one(client, "q")
    now = clock.advance(timedelta(minutes=2))
    task = await call(client, "PUT", "/tasques/reports/q/r", status=200, worker=WORKER, body={"data": {"progress": 50}})
    assert task["state"] == "claimed"
    last = task["last_claimed"]
    assert last["last_report"].keys() == {"at", "data"}
    assert parse_ts(last["last_report"]["at"]) == now
    assert last["last_report"]["data"] == {"progress": 50}
    assert parse_ts(last["times_out_at"]) == now + timedelta(minutes=10)
    assert parse_ts(last["claimed_at"]) == T0
    assert await get_task(client, "q", "r") == task


async def test_report_with_empty_body(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="r", processing_timeout="1m")
    await claim_one(client, "q")
    now = clock.advance(timedelta(seconds=45))
    task = await call(client, "PUT", "/tasques/reports/q/r", status=200, worker=WORKER)
    assert task["last_claimed"]["last_report"] == {"at": task["last_claimed"]["last_report"]["at"]}
    assert parse_ts(task["last_claimed"]["last_report"]["at"]) == now
    assert parse_ts(task["last_claimed"]["times_out_at"]) == now + timedelta(minutes=1)


async def test_report_by_other_worker_is_403(client: Client) -> None:
    await create_task(client, "q", "k", id="r")
    claimed = await claim_one(client, "q")
    assert_error(await call(client, "PUT", "/tasques/reports/q/r", status=403, worker=OTHER_WORKER, body={}))
    assert await get_task(client, "q", "r") == claimed


async def test_report_on_unclaimed_task_is_409(client: Client) -> None:
    await create_task(client, "q", "k", id="r")
    assert_error(await call(client, "PUT", "/tasques/reports/q/r", status=409, worker=WORKER, body={}))


async def test_report_on_unknown_task_is_404(client: Client) -> None:
    assert_error(await call(client, "PUT", "/tasques/reports/q/nope", status=404, worker=WORKER, body={}))


# Done


async def test_done(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="d")
    await claim_one(client, "q")
    now = clock.advance(timedelta(seconds=7))
    task = await call(client, "PUT", "/tasques/done/q/d", status=200, worker=WORKER, body={"data": {"answer": 42}})
    assert task["state"] == "done"
    assert task["attempted"] == 1
    result = task["last_claimed"]["result"]
    assert set(result) == {"at", "success"}
    assert parse_ts(result["at"]) == now
    assert result["success"] == {"answer": 42}
    assert parse_ts(task["metadata"]["modified_at"]) == now
    assert await get_task(client, "q", "d") == task
    assert await claim(client, ["q"]) == []


async def test_done_with_empty_body(client: Client) -> None:
    await create_task(client, "q", "k", id="d")
    await claim_one(client, "q")
    task = await call(client, "PUT", "/tasques/done/q/d", status=200, worker=WORKER)
    assert task["state"] == "done"
    assert "failure" not in task["last_claimed"]["result"]


async def test_done_by_other_worker_is_403(client: Client) -> None:
    await create_task(client, "q", "k", id="d")
    claimed = await claim_one(client, "q")
    assert_error(await call(client, "PUT", "/tasques/done/q/d", status=403, worker=OTHER_WORKER, body={}))
    assert await get_task(client, "q", "d") == claimed


async def test_done_on_queued_task_is_409(client: Client) -> None:
    created = await create_task(client, "q", "k", id="d")
    assert_error(await call(client, "PUT", "/tasques/done/q/d", status=409, worker=WORKER, body={}))
    assert await get_task(client, "q", "d") == created


async def test_done_twice_is_409(client: Client) -> None:
    await create_task(client, "q", "k", id="d")
    await claim_one(client, "q")
    done = await call(client, "PUT", "/tasques/done/q/d", status=200, worker=WORKER, body={"data": {"first": True}})
    assert_error(await call(client, "PUT", "/tasques/done/q/d", status=409, worker=WORKER, body={}))
    assert await get_task(client, "q", "d") == done


async def test_done_on_unknown_task_is_404(client: Client) -> None:
    assert_error(await call(client, "PUT", "/tasques/done/q/nope", status=404, worker=WORKER, body={}))


# Failed


async def test_failed_backs_off_and_is_claimable_again(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="f", retry_times=5)
    await claim_one(client, "q")
    first_fail = clock.advance(timedelta(seconds=5))
    task = await call(client, "PUT", "/tasques/failed/q/f", status=200, worker=WORKER, body={"data": {"err": "boom"}})
    assert task["state"] == "failed"
    assert task["attempted"] == 1
    assert parse_ts(task["run_at"]) == first_fail + timedelta(seconds=1)
    result = task["last_claimed"]["result"]
    assert set(result) == {"at", "failure"}
    assert parse_ts(result["at"]) == first_fail
    assert result["failure"] == {"err": "boom"}
    assert await get_task(client, "q", "f") == task

    clock.advance(timedelta(milliseconds=999))
    assert await claim(client, ["q"]) == []
    clock.advance(timedelta(milliseconds=1))
    again = await claim_one(client, "q")
    assert again["id"] == "f"
    assert again["attempted"] == 2
    assert "result" not in again["last_claimed"]

    second_fail = clock.now
    task = await call(client, "PUT", "/tasques/failed/q/f", status=200, worker=WORKER)
    assert task["state"] == "failed"
    assert parse_ts(task["run_at"]) == second_fail + timedelta(seconds=2)


async def test_failed_without_retries_is_dead(client: Client) -> None:
    await create_task(client, "q", "k", id="f", retry_times=0)
    await claim_one(client, "q")
    task = await call(client, "PUT", "/tasques/failed/q/f", status=200, worker=WORKER, body={"data": {"why": "x"}})
    assert task["state"] == "dead"
    assert task["last_claimed"]["result"]["failure"] == {"why": "x"}
    assert await claim(client, ["q"]) == []


async def test_failed_dies_after_its_last_retry(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="f", retry_times=1)
    await claim_one(client, "q")
    assert (await call(client, "PUT", "/tasques/failed/q/f", status=200, worker=WORKER))["state"] == "failed"
    clock.advance(timedelta(seconds=1))
    assert (await claim_one(client, "q"))["attempted"] == 2
    assert (await call(client, "PUT", "/tasques/failed/q/f", status=200, worker=WORKER))["state"] == "dead"


async def test_failed_by_other_worker_is_403(client: Client) -> None:
    await create_task(client, "q", "k", id="f")
    claimed = await claim_one(client, "q")
    assert_error(await call(client, "PUT", "/tasques/failed/q/f", status=403, worker=OTHER_WORKER, body={}))
    assert await get_task(client, "q", "f") == claimed


async def test_failed_on_queued_task_is_409(client: Client) -> None:
    await create_task(client, "q", "k", id="f")
    assert_error(await call(client, "PUT", "/tasques/failed/q/f", status=409, worker=WORKER, body={}))


async def test_failed_on_unknown_task_is_404(client: Client) -> None:
    assert_error(await call(client, "PUT", "/tasques/failed/q/nope", status=404, worker=WORKER, body={}))


# Unclaim


async def test_unclaim_returns_task_to_queue(client: Client, clock: ManualClock) -> None:
    created = await create_task(client, "q", "k", id="u")
    claimed = await claim_one(client, "q")
    now = clock.advance(timedelta(seconds=3))
    task = await call(client, "DELETE", "/tasques/claims/q/u", status=200, worker=WORKER)
    assert task["state"] == "queued"
    assert task["attempted"] == 0
    assert task["last_claimed"] == claimed["last_claimed"]  # kept, as the original Tasques does
    assert parse_ts(task["last_enqueued_at"]) == now
    assert task["run_at"] == created["run_at"]
    assert await get_task(client, "q", "u") == task
    again = await claim_one(client, "q", OTHER_WORKER)
    assert again["attempted"] == 1
    assert again["last_claimed"]["worker_id"] == OTHER_WORKER
    assert again["last_claimed"]["claim_id"] != claimed["last_claimed"]["claim_id"]


async def test_unclaim_after_a_failure_keeps_earlier_attempts(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="u")
    await claim_one(client, "q")
    await call(client, "PUT", "/tasques/failed/q/u", status=200, worker=WORKER)
    clock.advance(timedelta(seconds=1))
    assert (await claim_one(client, "q"))["attempted"] == 2
    task = await call(client, "DELETE", "/tasques/claims/q/u", status=200, worker=WORKER)
    assert task["state"] == "queued"
    assert task["attempted"] == 1


async def test_unclaim_by_other_worker_is_403(client: Client) -> None:
    await create_task(client, "q", "k", id="u")
    claimed = await claim_one(client, "q")
    assert_error(await call(client, "DELETE", "/tasques/claims/q/u", status=403, worker=OTHER_WORKER))
    assert await get_task(client, "q", "u") == claimed


async def test_unclaim_of_queued_task_is_409(client: Client) -> None:
    await create_task(client, "q", "k", id="u")
    assert_error(await call(client, "DELETE", "/tasques/claims/q/u", status=409, worker=WORKER))


async def test_unclaim_of_unknown_task_is_404(client: Client) -> None:
    assert_error(await call(client, "DELETE", "/tasques/claims/q/nope", status=404, worker=WORKER))


async def test_unclaim_without_worker_header_is_400(client: Client) -> None:
    await create_task(client, "q", "k", id="u")
    claimed = await claim_one(client, "q")
    assert_error(await call(client, "DELETE", "/tasques/claims/q/u", status=400), "X-TASQUES-WORKER-ID")
    assert await get_task(client, "q", "u") == claimed


# Timeouts (the reaper)


async def test_timed_out_claim_is_reaped_as_a_failure(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="slow", processing_timeout="1s")
    await claim_one(client, "q")
    tasks = client.app[TASKS]

    clock.advance(timedelta(milliseconds=999))
    assert await tasks.reap_timed_out(100) == 0
    assert (await get_task(client, "q", "slow"))["state"] == "claimed"

    now = clock.advance(timedelta(seconds=1))
    assert await tasks.reap_timed_out(100) == 1
    task = await get_task(client, "q", "slow")
    assert task["state"] == "failed"
    assert task["attempted"] == 1
    failure = task["last_claimed"]["result"]["failure"]
    assert failure["reason"] == "processing timed out"
    assert failure["worker_id"] == WORKER
    assert parse_ts(failure["times_out_at"]) == T0 + timedelta(seconds=1)
    assert parse_ts(task["last_claimed"]["result"]["at"]) == now
    assert parse_ts(task["run_at"]) == now + timedelta(seconds=1)
    assert await tasks.reap_timed_out(100) == 0

    # The silent worker has lost the task.
    assert_error(await call(client, "PUT", "/tasques/done/q/slow", status=409, worker=WORKER, body={}))
    clock.advance(timedelta(seconds=1))
    assert (await claim_one(client, "q", OTHER_WORKER))["attempted"] == 2


async def test_timed_out_claim_without_retries_is_dead(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="slow", processing_timeout="1s", retry_times=0)
    await claim_one(client, "q")
    clock.advance(timedelta(seconds=2))
    assert await client.app[TASKS].reap_timed_out(100) == 1
    task = await get_task(client, "q", "slow")
    assert task["state"] == "dead"
    assert task["last_claimed"]["result"]["failure"]["reason"] == "processing timed out"


async def test_report_keeps_a_claim_from_timing_out(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", "k", id="busy", processing_timeout="1s")
    await claim_one(client, "q")
    clock.advance(timedelta(milliseconds=800))
    await call(client, "PUT", "/tasques/reports/q/busy", status=200, worker=WORKER, body={})
    clock.advance(timedelta(milliseconds=800))
    assert await client.app[TASKS].reap_timed_out(100) == 0
    assert (await get_task(client, "q", "busy"))["state"] == "claimed"
    clock.advance(timedelta(milliseconds=200))
    assert await client.app[TASKS].reap_timed_out(100) == 1


async def test_leader_loop_reaps_on_its_own(make_client: MakeClient, clock: ManualClock) -> None:
    client = await make_client({"housekeeping": {"reap_every": "20ms"}}, leader=True)
    await asyncio.wait_for(client.app[ELECTOR].elected.wait(), timeout=10)
    await create_task(client, "q", "k", id="slow", processing_timeout="1s")
    await claim_one(client, "q")
    clock.advance(timedelta(seconds=5))
    for _ in range(500):
        if (await get_task(client, "q", "slow"))["state"] != "claimed":
            break
        await asyncio.sleep(0.01)
    task = await get_task(client, "q", "slow")
    assert task["state"] == "failed"
    assert task["last_claimed"]["result"]["failure"]["reason"] == "processing timed out"


# Archiving


async def test_archived_task_is_readable_but_not_listed_or_counted(client: Client, clock: ManualClock) -> None:
    await create_task(client, "arch", "k", id="finished")
    await claim_one(client, "arch")
    done = await call(client, "PUT", "/tasques/done/arch/finished", status=200, worker=WORKER)
    await create_task(client, "arch", "k", id="live")
    tasks = client.app[TASKS]

    clock.advance(timedelta(hours=23))
    assert await tasks.archive_finished(timedelta(hours=24), 100) == 0
    assert {t["id"] for t in await list_all(client, {"queue": "arch"})} == {"finished", "live"}

    clock.advance(timedelta(hours=2))
    assert await tasks.archive_finished(timedelta(hours=24), 100) == 1
    assert await get_task(client, "arch", "finished") == done
    assert [t["id"] for t in await list_all(client, {"queue": "arch"})] == ["live"]
    assert [t["id"] for t in await list_all(client, {"state": "done"})] == []
    queues = await call(client, "GET", "/queues", status=200)
    assert queues == [
        {"queue": "arch", "counts": {"queued": 1, "claimed": 0, "failed": 0, "done": 0, "dead": 0}},
    ]
    # An archived id stays taken.
    assert_error(
        await call(client, "POST", "/tasques", status=409, body={"queue": "arch", "kind": "k", "id": "finished"})
    )


# Listing


async def _listing_fixture(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q1", "x", id="a")
    clock.advance(timedelta(seconds=1))
    await create_task(client, "q1", "y", id="b")
    clock.advance(timedelta(seconds=1))
    await create_task(client, "q2", "x", id="c")
    clock.advance(timedelta(seconds=1))
    await create_task(client, "q2", "y", id="d")
    await claim_one(client, "q1")  # a (oldest run_at)
    await claim_one(client, "q2")  # c
    await call(client, "PUT", "/tasques/done/q2/c", status=200, worker=WORKER)


async def test_listing_is_newest_first(client: Client, clock: ManualClock) -> None:
    await _listing_fixture(client, clock)
    page = await call(client, "GET", "/tasques", status=200)
    assert set(page) == {"tasks"}
    assert [t["id"] for t in page["tasks"]] == ["d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ([("queue", "q1")], ["b", "a"]),
        ([("queue", "q3")], []),
        ([("state", "queued")], ["d", "b"]),
        ([("state", "claimed,done")], ["c", "a"]),
        ([("state", "claimed"), ("state", "done")], ["c", "a"]),
        ([("state", "queued,claimed"), ("state", "done")], ["d", "c", "b", "a"]),
        ([("kind", "x")], ["c", "a"]),
        ([("kind", "x"), ("queue", "q2")], ["c"]),
        ([("queue", "q2"), ("state", "queued")], ["d"]),
        ([("recurring_task_id", "nothing")], []),
    ],
)
async def test_listing_filters(
    client: Client, clock: ManualClock, params: list[tuple[str, str]], ids: list[str]
) -> None:
    await _listing_fixture(client, clock)
    page = await call(client, "GET", "/tasques", status=200, params=params)
    assert [t["id"] for t in page["tasks"]] == ids
    assert "next_cursor" not in page


async def test_listing_limit(client: Client, clock: ManualClock) -> None:
    await _listing_fixture(client, clock)
    page = await call(client, "GET", "/tasques", status=200, params={"limit": "2"})
    assert [t["id"] for t in page["tasks"]] == ["d", "c"]
    assert isinstance(page["next_cursor"], str)
    exact = await call(client, "GET", "/tasques", status=200, params={"limit": "4"})
    assert [t["id"] for t in exact["tasks"]] == ["d", "c", "b", "a"]
    assert "next_cursor" not in exact


@pytest.mark.parametrize("queue_filter", [None, "p1"])
async def test_listing_pagination_visits_every_task_once(
    client: Client, clock: ManualClock, queue_filter: str | None
) -> None:
    # Several tasks share a created_at, and ids sort differently from creation order, to stress the cursor.
    created: list[tuple[str, str]] = []
    for i in range(17):
        if i % 3 == 0:
            clock.advance(timedelta(seconds=1))
        queue = ("p1", "p2", "p0")[i % 3]
        task_id = f"id-{(i * 7) % 17:02d}"
        await create_task(client, queue, "k", id=task_id)
        created.append((queue, task_id))
    params = {"limit": "3"} if queue_filter is None else {"limit": "3", "queue": queue_filter}
    everything = await call(
        client, "GET", "/tasques", status=200, params={k: v for k, v in params.items() if k != "limit"}
    )
    paged = await list_all(client, params)
    keys = [(t["queue"], t["id"]) for t in paged]
    expected = [c for c in created if queue_filter is None or c[0] == queue_filter]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(expected)
    assert keys == [(t["queue"], t["id"]) for t in everything["tasks"]]
    created_ats = [parse_ts(t["metadata"]["created_at"]) for t in paged]
    assert created_ats == sorted(created_ats, reverse=True)


# /queues and /health


async def test_queue_counts_cover_every_state(client: Client) -> None:
    await create_task(client, "main", "k", id="queued")
    await create_task(client, "main", "k", id="claimed", priority=1)
    await create_task(client, "main", "k", id="failed", priority=2)
    await create_task(client, "main", "k", id="done", priority=3)
    await create_task(client, "main", "k", id="dead", priority=4, retry_times=0)
    await create_task(client, "side", "k", id="only")
    assert [t["id"] for t in await claim(client, ["main"], amount=4)] == ["dead", "done", "failed", "claimed"]
    await call(client, "PUT", "/tasques/failed/main/dead", status=200, worker=WORKER)
    await call(client, "PUT", "/tasques/done/main/done", status=200, worker=WORKER)
    await call(client, "PUT", "/tasques/failed/main/failed", status=200, worker=WORKER)

    queues = await call(client, "GET", "/queues", status=200)
    assert sorted(queues, key=lambda q: q["queue"]) == [
        {"queue": "main", "counts": {"queued": 1, "claimed": 1, "failed": 1, "done": 1, "dead": 1}},
        {"queue": "side", "counts": {"queued": 1, "claimed": 0, "failed": 0, "done": 0, "dead": 0}},
    ]


async def test_queue_counts_empty(client: Client) -> None:
    assert await call(client, "GET", "/queues", status=200) == []


async def test_health(client: Client) -> None:
    assert await call(client, "GET", "/health", status=200) == {"status": "ok", "store": "sqlite"}


# Bulk create


async def test_bulk_create_reports_each_task(client: Client) -> None:
    await create_task(client, "q", "k", id="taken")
    body = {
        "tasks": [
            {"queue": "q", "kind": "k", "id": "b1", "args": {"n": 1}},
            {"queue": "q", "kind": "k", "id": "taken"},
            {"queue": "other", "kind": "k2", "priority": 5},
        ]
    }
    result = await call(client, "POST", "/tasques/bulk", status=200, body=body)
    statuses = [r["status"] for r in result["results"]]
    assert statuses == [201, 409, 201]
    assert result["results"][0]["task"]["args"] == {"n": 1}
    assert result["results"][0]["task"]["state"] == "queued"
    assert result["results"][1]["error"]["details"] == [{"field": "id", "problem": "taken"}]
    assert "task" not in result["results"][1]
    assert result["results"][2]["task"]["queue"] == "other"
    assert (await get_task(client, "q", "b1"))["args"] == {"n": 1}


async def test_bulk_create_is_all_or_nothing_on_invalid_input(client: Client) -> None:
    body = {"tasks": [{"queue": "q", "kind": "k", "id": "ok"}, {"queue": "q"}, {"queue": "bad queue", "kind": "k"}]}
    result = await call(client, "POST", "/tasques/bulk", status=400, body=body)
    assert_error(result, "tasks.1.kind", "tasks.2.queue")
    await call(client, "GET", "/tasques/q/ok", status=404)


@pytest.mark.parametrize("n", [0, 1001])
async def test_bulk_create_takes_one_to_a_thousand(client: Client, n: int) -> None:
    body = {"tasks": [{"queue": "q", "kind": "k"}] * n}
    assert_error(await call(client, "POST", "/tasques/bulk", status=400, body=body), "tasks")


async def test_bulk_created_tasks_wake_a_blocked_claim(make_client: MakeClient) -> None:
    client = await make_client(poll_interval=timedelta(seconds=60))
    pending = asyncio.create_task(claim(client, ["q"], block_for="5s"))
    await asyncio.sleep(0.2)
    await call(client, "POST", "/tasques/bulk", status=200, body={"tasks": [{"queue": "q", "kind": "k", "id": "w"}]})
    assert [t["id"] for t in await asyncio.wait_for(pending, 3)] == ["w"]
