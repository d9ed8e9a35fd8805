"""The benchmark's peers really run: a real Redis, PostgreSQL and SQLite file each, 200 no-op tasks drained by
two worker processes of the peer's own consumer, and the exactly-once read-back (bench/ is not in `make test`
otherwise, so a peer release or a Debian package change could silently break `make bench`)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from bench.context import Context
from bench.env import BenchFailure
from bench.params import QUICK
from bench.peers import PEERS
from bench.peers.servers import ensure_installed
from bench.report import markdown
from bench.run import compare
from bench.scenarios import peers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
GROUPS = {"dramatiq": "redis", "pgqueuer": "postgres", "huey": None}


def _server_dirs() -> set[Path]:
    tmp = Path(tempfile.gettempdir())
    return {*tmp.glob("tasques-redis-*"), *tmp.glob("tasques-postgres-*")}


TASKS = 1000


@pytest.mark.parametrize("name", PEERS)
async def test_peer_drains_every_task_exactly_once(name: str, tmp_path: Path) -> None:
    ensure_installed()
    before = _server_dirs()
    # Enough tasks that the workers' CPU is measurable in clock ticks (10 ms) even for the fastest peer.
    ctx = Context(params=replace(QUICK, e2e_tasks=TASKS), workdir=tmp_path, es=None, verbose=False)
    out = await peers.run_one(ctx, name)
    assert out["verified"] is True
    assert out["tasks"] == TASKS
    assert out["tasks_per_s"] > 0
    assert out["drained_s"] > 0
    assert out["workers_cpu_ms_per_task"] > 0
    group = GROUPS[name]
    if group is not None:
        assert f"{group}_cpu_ms_per_task" in out  # the broker's or database's CPU is measured too
    assert _server_dirs() <= before  # the servers' data dirs are removed


def test_verification_catches_duplicates_losses_and_strangers() -> None:
    ids = ["t0", "t1", "t2"]
    peers._verify([("t0", 1.0), ("t1", 1.0), ("t2", 1.0)], ids)
    with pytest.raises(BenchFailure, match="more than once"):
        peers._verify([("t0", 1.0), ("t1", 1.0), ("t1", 2.0), ("t2", 1.0)], ids)
    with pytest.raises(BenchFailure, match="never ran"):
        peers._verify([("t0", 1.0), ("t2", 1.0)], ids)
    with pytest.raises(BenchFailure, match="never enqueued"):
        peers._verify([("t0", 1.0), ("t1", 1.0), ("t2", 1.0), ("x9", 1.0)], ids)


def test_report_shows_our_ratio_to_each_peer() -> None:
    runs = [
        {"claim_amount": 1, "tasks_per_s": 500.0, "mean_claim_size": 1.0},
        {"claim_amount": 100, "tasks_per_s": 3000.0, "mean_claim_size": 40.0},
    ]
    stores = {"sqlite": {"e2e": {"runs": runs}}}
    peer_results = {
        "huey": {"label": "huey 9 + SQLite 3", "tasks_per_s": 1000.0, "tasks": 10},
        "dramatiq": {"error": "x"},
    }
    comparison = compare(stores, peer_results)
    assert comparison["peers"] == {"huey": {"sqlite": {"claim_amount_1": 0.5, "claim_amount_100": 3.0}}}
    text = markdown({"stores": stores, "peers": peer_results, "comparison": comparison})
    assert "| huey 9 + SQLite 3 | **1,000** |" in text
    assert "0.5x / 3x" in text
    assert "| dramatiq | FAILED |" in text
