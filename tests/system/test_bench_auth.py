"""The benchmark's auth scenario really runs with a token on every request (bench/ is not in `make test`
otherwise), and a token mode run fails rather than retry through the rate limit."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from bench.context import Context
from bench.env import BenchFailure
from bench.params import QUICK
from bench.report import markdown
from bench.scenarios import auth
from bench.scenarios.end_to_end import run_one

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _ctx(tmp_path: Path) -> Context:
    params = replace(QUICK, auth_tasks=300, auth_rounds=1, worker_processes=1, workers_per_process=2)
    return Context(params=params, workdir=tmp_path, es=None, verbose=False)


async def test_both_modes_run_and_the_token_mode_is_refused_nothing(tmp_path: Path) -> None:
    out = await auth.run(_ctx(tmp_path), "sqlite")
    assert len(out["off_tasks_per_s"]) == len(out["token_tasks_per_s"]) == 1
    assert out["median_off"] > 0
    assert out["median_token"] > 0
    assert out["met"] == (out["loss_pct"] <= 5.0)
    assert "Cost of auth" in markdown({"stores": {"sqlite": {"auth": out}}})


async def test_token_mode_answers_only_2xx_and_names_what_it_saw(tmp_path: Path) -> None:
    admin = secrets.token_urlsafe(32)
    ctx = _ctx(tmp_path)
    out = await run_one(ctx, "sqlite", 10, settings=auth.token_settings(admin), tasks=300, admin_token=admin)
    assert out["transient_errors"] == 0
    assert set(out["http_answers"]) == {"2xx"}
    assert out["http_answers"]["2xx"] > 300 / 10  # claims and done batches, all counted with the token


async def test_a_rate_limited_run_fails(tmp_path: Path) -> None:
    admin = secrets.token_urlsafe(32)
    slow = {**auth.token_settings(admin), "TASQUES_AUTH_RATE_PER_SECOND": "5", "TASQUES_AUTH_BURST": "5"}
    with pytest.raises(BenchFailure, match=r"'4xx': [1-9]"):
        await run_one(_ctx(tmp_path), "sqlite", 1, settings=slow, tasks=20, admin_token=admin)
