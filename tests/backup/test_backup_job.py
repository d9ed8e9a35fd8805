"""The leader's backup job on a whole server (`build_server`, real SQLite): built only when enabled, run by
the leader only, its metrics exported after a success and after a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from tasques.config import Config, ConfigError, load_config
from tasques.leader.election import LOCK_NAME
from tasques.server import ELECTOR, build_server
from tasques.service.clock import utc_now
from tasques.store.sqlite.store import SqliteStore

Client = TestClient[web.Request, web.Application]
Make = Callable[..., Awaitable[Client]]


@pytest.fixture
def make(aiohttp_client: AiohttpClient, tmp_path: Path) -> Make:
    async def build(*, leader: bool, enabled: bool = True, db: str = "t.db") -> Client:
        config = Config.model_validate(
            {
                "store": {"sqlite": {"path": str(tmp_path / db)}},
                "backup": {"enabled": enabled, "every": "1m", "keep": 2,
                           "local": {"directory": str(tmp_path / "backups")}},
            }
        )  # fmt: skip
        if not leader:  # someone else holds the leader lock for good
            blocker = SqliteStore(config.store.sqlite.path)
            await blocker.open()
            assert await blocker.acquire_lock(LOCK_NAME, "someone-else", utc_now(), datetime(9999, 1, 1, tzinfo=UTC))
            await blocker.close()
        return await aiohttp_client(build_server(config, SqliteStore(config.store.sqlite.path)))

    return build


def _job(client: Client) -> Any:
    (job,) = [j for j in client.app[ELECTOR].jobs if j.name == "backup"]
    return job


async def _metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_metrics_after_a_success_and_after_a_failure_then_the_retry(make: Make, tmp_path: Path) -> None:
    client = await make(leader=False)
    job = _job(client)
    assert await _metric(client, "tasques_backup_last_success_timestamp_seconds") == 0
    assert await job.run_once() == 1
    first = await _metric(client, "tasques_backup_last_success_timestamp_seconds")
    assert first > 0
    assert await _metric(client, "tasques_backup_last_size_bytes") > 0
    assert await _metric(client, "tasques_backup_failures_total") == 0

    backups = tmp_path / "backups"
    moved = tmp_path / "moved"
    backups.rename(moved)
    backups.write_text("a file where the directory should be")  # a real failure: the put cannot write there
    assert await job.run_once() == 0
    assert await _metric(client, "tasques_backup_failures_total") == 1
    assert await _metric(client, "tasques_backup_last_success_timestamp_seconds") == first

    backups.unlink()
    moved.rename(backups)
    await asyncio.sleep(1.01)  # a new second, so a new name
    assert await job.run_once() == 1  # the next interval tries again
    assert await _metric(client, "tasques_backup_last_success_timestamp_seconds") > first
    assert len(list(backups.iterdir())) == 2


async def test_only_the_leader_takes_backups(make: Make, tmp_path: Path) -> None:
    follower = await make(leader=False)
    await asyncio.sleep(0.5)
    assert not follower.app[ELECTOR].is_leader
    assert not (tmp_path / "backups").exists()  # its job never ran
    leader = await make(leader=True, db="leader.db")
    await asyncio.wait_for(leader.app[ELECTOR].elected.wait(), 10)
    for _ in range(200):  # the loop runs each job at once when it is elected; the metric follows the file
        if await _metric(leader, "tasques_backup_last_success_timestamp_seconds") > 0:
            break
        await asyncio.sleep(0.05)
    assert len(list((tmp_path / "backups").iterdir())) == 1
    assert await _metric(leader, "tasques_backup_last_success_timestamp_seconds") > 0


async def test_no_job_unless_enabled_and_never_for_elasticsearch(make: Make) -> None:
    client = await make(leader=False, enabled=False)
    assert [j for j in client.app[ELECTOR].jobs if j.name == "backup"] == []
    text = await (await client.get("/metrics")).text()
    assert "tasques_backup" not in text
    with pytest.raises(ConfigError, match=r"backup\.enabled needs store\.kind sqlite"):
        load_config(environ={"TASQUES_STORE_KIND": "elasticsearch", "TASQUES_BACKUP_ENABLED": "true"})
