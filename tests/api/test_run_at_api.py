"""run_at formats and execution_delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasques.service.clock import ManualClock
from tests.api.conftest import Client, assert_error, call, create_task, parse_ts


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1_704_164_645_000, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1_704_164_645_123, datetime(2024, 1, 2, 3, 4, 5, 123_000, tzinfo=UTC)),
        ("Dec 12 2012 12:12:12 AM +07:00", datetime(2012, 12, 11, 17, 12, 12, tzinfo=UTC)),
        ("Dec 12 2012 12:12:12 PM +07:00", datetime(2012, 12, 12, 5, 12, 12, tzinfo=UTC)),
        ("Dec 12 2012 23:12:12 -0100", datetime(2012, 12, 13, 0, 12, 12, tzinfo=UTC)),
        ("Wed, 12 Dec 2012 23:12:12 +0000", datetime(2012, 12, 12, 23, 12, 12, tzinfo=UTC)),
    ],
)
async def test_run_at_formats(client: Client, given: Any, expected: datetime) -> None:
    task = await create_task(client, run_at=given)
    assert parse_ts(task["run_at"]) == expected


@pytest.mark.parametrize(
    "bad",
    ["2024-01-02T03:04:05", "Dec 12 2012 12:12:12 AM", "tomorrow", True, 10**20, "Dec 32 2012 12:12:12 AM +07:00"],
)
async def test_unparseable_run_at_is_a_400_naming_it(client: Client, bad: Any) -> None:
    body = await call(client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "run_at": bad})
    assert_error(body, "run_at")


async def test_execution_delay_in_milliseconds(client: Client, clock: ManualClock) -> None:
    task = await create_task(client, execution_delay=1500)
    assert parse_ts(task["run_at"]) == clock.now + timedelta(milliseconds=1500)
    for bad in (-1, "soon"):
        body = await call(
            client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "execution_delay": bad}
        )
        assert_error(body, "execution_delay")
    both = {"queue": "q", "kind": "k", "execution_delay": 5, "run_at": "2024-01-02T03:04:05Z"}
    assert_error(await call(client, "POST", "/tasques", status=400, body=both), "execution_delay")
