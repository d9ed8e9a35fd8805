"""/recurring_tasques over HTTP, and the enqueuer driven by a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasques.api.keys import RECURRING
from tasques.service.clock import ManualClock
from tests.api.conftest import T0, WORKER, Client, MakeClient, assert_error, call, claim_one, list_all, parse_ts

# T0 is 2024-01-02T03:04:05Z, so the first `@every 1m` slot after it is 03:05:00.
FIRST_MINUTE = datetime(2024, 1, 2, 3, 5, 0, tzinfo=UTC)


def recurring(
    rid: str = "every-minute", schedule: str = "@every 1m", skip: bool | None = None, **definition: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "schedule_expression": schedule,
        "task_definition": {"queue": "rq", "kind": "tick", **definition},
    }
    if skip is not None:
        body["skip_if_outstanding_tasks_exist"] = skip
    return body


async def create_recurring(client: Client, body: dict[str, Any]) -> Any:
    return await call(client, "POST", "/recurring_tasques", status=201, body=body)


async def enqueued(client: Client, rid: str) -> list[Any]:
    return await list_all(client, {"recurring_task_id": rid})


async def enqueue_due(client: Client) -> int:
    return await client.app[RECURRING].enqueue_due()


# CRUD


async def test_create(client: Client) -> None:
    body = recurring(skip=True, priority=3, args={"a": 1}, context={"c": 2}, retry_times=4, processing_timeout="90s")
    created = await create_recurring(client, body)
    assert {"id", "schedule_expression", "task_definition", "skip_if_outstanding_tasks_exist", "metadata"} <= set(
        created
    )
    assert "loaded_at" not in created
    assert created["id"] == "every-minute"
    assert created["schedule_expression"] == "@every 1m"
    assert created["task_definition"] == {
        "queue": "rq",
        "kind": "tick",
        "priority": 3,
        "retry_times": 4,
        "processing_timeout": "1m30s",
        "args": {"a": 1},
        "context": {"c": 2},
        "sensitive": False,
    }
    assert created["skip_if_outstanding_tasks_exist"] is True
    meta = created["metadata"]
    assert parse_ts(meta["created_at"]) == T0
    assert parse_ts(meta["modified_at"]) == T0
    assert meta["version"] == {"seq_num": 1, "primary_term": 1}
    assert await call(client, "GET", "/recurring_tasques/every-minute", status=200) == created


async def test_create_defaults(client: Client) -> None:
    created = await create_recurring(client, recurring())
    assert created["skip_if_outstanding_tasks_exist"] is False
    # The effective retries and timeout are shown, as the original server shows them.
    assert created["task_definition"] == {
        "queue": "rq",
        "kind": "tick",
        "priority": 0,
        "retry_times": 25,
        "processing_timeout": "30m0s",
        "sensitive": False,
    }


async def test_every_response_shows_the_effective_retries_and_timeout(make_client: MakeClient) -> None:
    client = await make_client({"tasks": {"retry_times": 7, "processing_timeout": "10m"}})
    created = await create_recurring(client, recurring("r"))
    shown = [
        created,
        await call(client, "GET", "/recurring_tasques/r", status=200),
        (await call(client, "GET", "/recurring_tasques", status=200))[0],
        await call(client, "PUT", "/recurring_tasques/r", status=200, body={"schedule_expression": "@hourly"}),
        await call(client, "DELETE", "/recurring_tasques/r", status=200),
    ]
    for body in shown:
        assert (body["task_definition"]["retry_times"], body["task_definition"]["processing_timeout"]) == (7, "10m0s")


async def test_given_retries_and_timeout_are_shown_as_given(client: Client) -> None:
    created = await create_recurring(client, recurring("r", retry_times=0, processing_timeout="2s"))
    assert (created["task_definition"]["retry_times"], created["task_definition"]["processing_timeout"]) == (0, "2s")


async def test_an_http_definition_shows_its_request_timeout_plus_grace(client: Client, clock: ManualClock) -> None:
    http = {"url": "http://example.com/hook", "timeout": "20s"}
    created = await create_recurring(client, recurring("h", http_request=http))
    assert created["task_definition"]["processing_timeout"] == "25s"
    # Resolved when shown, not frozen at creation: a new request timeout moves the default with it, exactly as
    # the enqueued task's.
    definition = {"queue": "rq", "kind": "tick", "http_request": {**http, "timeout": "1m"}}
    body = {"task_definition": definition}
    updated = await call(client, "PUT", "/recurring_tasques/h", status=200, body=body)
    assert updated["task_definition"]["processing_timeout"] == "1m5s"
    clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1
    (task,) = await enqueued(client, "h")
    assert task["processing_timeout"] == "1m5s"
    assert task["retry_times"] == updated["task_definition"]["retry_times"] == 25


# Time zones: `CRON_TZ=` / `TZ=` prefixes.


@pytest.mark.parametrize(
    "schedule", ["CRON_TZ=Mars/Olympus 0 9 * * *", "TZ=../../etc/passwd 0 9 * * *", "CRON_TZ=UTC @every 1m"]
)
async def test_a_bad_zone_prefix_is_400_naming_the_schedule(client: Client, schedule: str) -> None:
    body = await call(client, "POST", "/recurring_tasques", status=400, body=recurring("r", schedule))
    assert_error(body, "schedule_expression")


async def test_a_zoned_schedule_enqueues_at_its_local_time(client: Client, clock: ManualClock) -> None:
    # T0 is 03:04:05Z on 2024-01-02, 04:04:05 in Paris (UTC+1 in winter): the 05:00 Paris slot is 04:00Z.
    created = await create_recurring(client, recurring("paris", "CRON_TZ=Europe/Paris 0 5 * * *"))
    assert created["schedule_expression"] == "CRON_TZ=Europe/Paris 0 5 * * *"
    clock.advance(timedelta(minutes=55, seconds=54))  # 03:59:59Z
    assert await enqueue_due(client) == 0
    clock.advance(timedelta(seconds=1))
    assert await enqueue_due(client) == 1
    (task,) = await enqueued(client, "paris")
    assert parse_ts(task["run_at"]) == datetime(2024, 1, 2, 4, 0, tzinfo=UTC)
    assert task["run_at"].endswith("Z")


async def test_duplicate_id_is_409(client: Client) -> None:
    original = await create_recurring(client, recurring("r"))
    body = await call(client, "POST", "/recurring_tasques", status=409, body=recurring("r", "@hourly"))
    assert_error(body)
    assert await call(client, "GET", "/recurring_tasques/r", status=200) == original


@pytest.mark.parametrize("schedule", ["@fortnightly", "* * *", "@every 0s", "@every soon", "61 * * * *", "", "   "])
async def test_invalid_schedule_is_400(client: Client, schedule: str) -> None:
    body = await call(client, "POST", "/recurring_tasques", status=400, body=recurring("r", schedule))
    assert_error(body, "schedule_expression")
    assert await call(client, "GET", "/recurring_tasques", status=200) == []


@pytest.mark.parametrize("schedule", ["@daily", "@hourly", "@weekly", "@every 90s", "*/5 * * * *", "0 9 * * 1-5"])
async def test_valid_schedules_are_accepted(client: Client, schedule: str) -> None:
    created = await create_recurring(client, recurring("r", schedule))
    assert created["schedule_expression"] == schedule


async def test_missing_task_definition_queue_is_400(client: Client) -> None:
    body = {"id": "r", "schedule_expression": "@hourly", "task_definition": {"kind": "tick"}}
    assert_error(await call(client, "POST", "/recurring_tasques", status=400, body=body), "task_definition.queue")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule_expression": "@hourly", "task_definition": {"queue": "q", "kind": "k"}}, "id"),
        ({"id": "r", "task_definition": {"queue": "q", "kind": "k"}}, "schedule_expression"),
        ({"id": "r", "schedule_expression": "@hourly"}, "task_definition"),
        ({"id": "r", "schedule_expression": "@hourly", "task_definition": {"queue": "q"}}, "task_definition.kind"),
        (
            {
                "id": "r",
                "schedule_expression": "@hourly",
                "task_definition": {"queue": "q", "kind": "k", "retry_times": -1},
            },
            "task_definition.retry_times",
        ),
        (
            {
                "id": "r",
                "schedule_expression": "@hourly",
                "task_definition": {"queue": "q", "kind": "k", "processing_timeout": "5 minutes"},
            },
            "task_definition.processing_timeout",
        ),
        ({"id": "a/b", "schedule_expression": "@hourly", "task_definition": {"queue": "q", "kind": "k"}}, "id"),
    ],
)
async def test_invalid_recurring_body_is_400(client: Client, body: dict[str, Any], field: str) -> None:
    assert_error(await call(client, "POST", "/recurring_tasques", status=400, body=body), field)


async def test_list(client: Client) -> None:
    assert await call(client, "GET", "/recurring_tasques", status=200) == []
    b = await create_recurring(client, recurring("b", "@hourly"))
    a = await create_recurring(client, recurring("a", "@daily"))
    listed = await call(client, "GET", "/recurring_tasques", status=200)
    assert sorted(listed, key=lambda r: r["id"]) == [a, b]


async def test_get_unknown_is_404(client: Client) -> None:
    assert_error(await call(client, "GET", "/recurring_tasques/nope", status=404))


async def test_update_schedule_only(client: Client, clock: ManualClock) -> None:
    created = await create_recurring(client, recurring("r", "@hourly", skip=True, args={"x": 1}))
    now = clock.advance(timedelta(minutes=10))
    updated = await call(client, "PUT", "/recurring_tasques/r", status=200, body={"schedule_expression": "*/5 * * * *"})
    assert updated["schedule_expression"] == "*/5 * * * *"
    assert updated["task_definition"] == created["task_definition"]
    assert updated["skip_if_outstanding_tasks_exist"] is True
    assert updated["metadata"]["created_at"] == created["metadata"]["created_at"]
    assert parse_ts(updated["metadata"]["modified_at"]) == now
    assert updated["metadata"]["version"]["seq_num"] > created["metadata"]["version"]["seq_num"]
    assert await call(client, "GET", "/recurring_tasques/r", status=200) == updated


async def test_update_definition_and_skip(client: Client) -> None:
    await create_recurring(client, recurring("r", "@hourly", skip=True))
    updated = await call(
        client,
        "PUT",
        "/recurring_tasques/r",
        status=200,
        body={"task_definition": {"queue": "other", "kind": "tock"}, "skip_if_outstanding_tasks_exist": False},
    )
    assert updated["schedule_expression"] == "@hourly"
    assert updated["task_definition"] == {
        "queue": "other",
        "kind": "tock",
        "priority": 0,
        "retry_times": 25,
        "processing_timeout": "30m0s",
        "sensitive": False,
    }
    assert updated["skip_if_outstanding_tasks_exist"] is False


async def test_update_with_invalid_schedule_is_400(client: Client) -> None:
    created = await create_recurring(client, recurring("r", "@hourly"))
    body = await call(client, "PUT", "/recurring_tasques/r", status=400, body={"schedule_expression": "@fortnightly"})
    assert_error(body, "schedule_expression")
    assert await call(client, "GET", "/recurring_tasques/r", status=200) == created


async def test_update_unknown_is_404(client: Client) -> None:
    assert_error(
        await call(client, "PUT", "/recurring_tasques/nope", status=404, body={"schedule_expression": "@daily"})
    )


async def test_delete(client: Client) -> None:
    created = await create_recurring(client, recurring("r", "@hourly"))
    assert await call(client, "DELETE", "/recurring_tasques/r", status=200) == created
    assert_error(await call(client, "GET", "/recurring_tasques/r", status=404))
    assert_error(await call(client, "DELETE", "/recurring_tasques/r", status=404))
    assert await call(client, "GET", "/recurring_tasques", status=200) == []


# Enqueueing


async def test_enqueues_at_each_slot(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r", args={"n": 1}, priority=2, retry_times=7, processing_timeout="2m"))

    assert await enqueue_due(client) == 0  # nothing is due at creation, but the definition is now loaded
    assert await enqueued(client, "r") == []
    loaded = await call(client, "GET", "/recurring_tasques/r", status=200)
    assert parse_ts(loaded["loaded_at"]) == T0

    now = clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1
    tasks = await enqueued(client, "r")
    assert len(tasks) == 1
    task = tasks[0]
    assert task["recurring_task_id"] == "r"
    assert task["queue"] == "rq"
    assert task["kind"] == "tick"
    assert task["args"] == {"n": 1}
    assert task["priority"] == 2
    assert task["retry_times"] == 7
    assert task["processing_timeout"] == "2m0s"
    assert task["state"] == "queued"
    assert parse_ts(task["run_at"]) == FIRST_MINUTE
    assert parse_ts(task["metadata"]["created_at"]) == now
    assert await call(client, "GET", f"/tasques/rq/{task['id']}", status=200) == task

    # Loaded once; an unchanged definition is not reloaded.
    assert (await call(client, "GET", "/recurring_tasques/r", status=200))["loaded_at"] == loaded["loaded_at"]

    # Running again at the same instant enqueues nothing more.
    assert await enqueue_due(client) == 0
    assert len(await enqueued(client, "r")) == 1

    clock.advance(timedelta(seconds=60))
    assert await enqueue_due(client) == 1
    run_ats = sorted(parse_ts(t["run_at"]) for t in await enqueued(client, "r"))
    assert run_ats == [FIRST_MINUTE, FIRST_MINUTE + timedelta(minutes=1)]


async def test_enqueued_task_uses_server_defaults(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r"))
    now = clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1
    loaded = await call(client, "GET", "/recurring_tasques/r", status=200)
    assert parse_ts(loaded["loaded_at"]) == now
    (task,) = await enqueued(client, "r")
    assert task["retry_times"] == 25
    assert task["processing_timeout"] == "30m0s"
    assert task["priority"] == 0


async def test_missed_slots_collapse_into_one(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r"))
    clock.advance(timedelta(minutes=10))
    assert await enqueue_due(client) == 1
    (task,) = await enqueued(client, "r")
    assert parse_ts(task["run_at"]) == datetime(2024, 1, 2, 3, 14, 0, tzinfo=UTC)


async def test_cron_schedule_enqueues_at_its_slot(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("five", "*/5 * * * *"))
    clock.advance(timedelta(seconds=54))  # 03:04:59
    assert await enqueue_due(client) == 0
    clock.advance(timedelta(seconds=1))  # 03:05:00, exactly on the slot
    assert await enqueue_due(client) == 1
    (task,) = await enqueued(client, "five")
    assert parse_ts(task["run_at"]) == FIRST_MINUTE


async def test_skip_if_outstanding_tasks_exist(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r", skip=True))
    clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1

    clock.advance(timedelta(seconds=60))  # slot 03:06:00, while the first task is still queued
    assert await enqueue_due(client) == 0
    (first,) = await enqueued(client, "r")

    claimed = await claim_one(client, "rq")
    assert claimed["id"] == first["id"]
    clock.advance(timedelta(seconds=60))  # slot 03:07:00, while it is claimed
    assert await enqueue_due(client) == 0
    await call(client, "PUT", f"/tasques/done/rq/{first['id']}", status=200, worker=WORKER)

    clock.advance(timedelta(seconds=60))  # slot 03:08:00
    assert await enqueue_due(client) == 1
    run_ats = sorted(parse_ts(t["run_at"]) for t in await enqueued(client, "r"))
    assert run_ats == [FIRST_MINUTE, FIRST_MINUTE + timedelta(minutes=3)]


async def test_without_skip_outstanding_tasks_do_not_block(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r", skip=False))
    clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1
    clock.advance(timedelta(seconds=60))
    assert await enqueue_due(client) == 1
    assert len(await enqueued(client, "r")) == 2


async def test_update_is_reloaded_by_the_enqueuer(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r"))
    clock.advance(timedelta(seconds=10))
    await enqueue_due(client)
    first_load = parse_ts((await call(client, "GET", "/recurring_tasques/r", status=200))["loaded_at"])
    assert first_load == T0 + timedelta(seconds=10)

    clock.advance(timedelta(seconds=5))
    await call(
        client, "PUT", "/recurring_tasques/r", status=200, body={"task_definition": {"queue": "new", "kind": "k2"}}
    )
    now = clock.advance(timedelta(seconds=50))  # 03:05:10
    assert await enqueue_due(client) == 1
    reloaded = await call(client, "GET", "/recurring_tasques/r", status=200)
    assert parse_ts(reloaded["loaded_at"]) == now
    (task,) = await enqueued(client, "r")
    assert (task["queue"], task["kind"]) == ("new", "k2")


async def test_deleted_recurring_task_stops_enqueueing(client: Client, clock: ManualClock) -> None:
    await create_recurring(client, recurring("r"))
    clock.advance(timedelta(seconds=61))
    assert await enqueue_due(client) == 1
    await call(client, "DELETE", "/recurring_tasques/r", status=200)
    clock.advance(timedelta(minutes=5))
    assert await enqueue_due(client) == 0
    assert len(await enqueued(client, "r")) == 1
