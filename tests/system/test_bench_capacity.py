"""The capacity model of docs/scaling.md (bench/capacity.py) and the relay's request kinds it is fed with."""

from __future__ import annotations

from typing import Any

import pytest

from bench.capacity import costs_from, predict
from bench.es_relay import kind_of


def _phase(server_ms: float, node_ms: float, conflicts_refreshes: float = 0.004, **shard_ms: float) -> dict[str, Any]:
    return {
        "per_task": {"server_cpu_ms": server_ms, "node_cpu_ms": node_ms, "refreshes_external": conflicts_refreshes},
        "es": {"indices": shard_ms, "per_index": {"{prefix}-tasks": {"refresh_ms": 40, "refreshes": 4}}},
    }


def _run(servers: int, conflicts: float, server_ms: float, node_ms: float, relayed: bool) -> dict[str, Any]:
    return {
        "servers": servers,
        "claim_amount": 100,
        "relayed": relayed,
        "claim_conflicts_per_task": conflicts,
        "enqueue": _phase(0.1, 0.1),
        "claim_done": _phase(server_ms, node_ms, 0.004 + 0.002 * (servers - 1), index_ms=60, search_query_ms=20),
    }


def _results() -> dict[str, Any]:
    runs = [
        _run(1, 0.0, 0.4, 0.5, relayed=True),
        _run(1, 0.0, 0.4, 0.5, relayed=False),
        _run(2, 1.0, 0.6, 0.7, relayed=True),
        _run(4, 3.0, 1.0, 1.1, relayed=True),
    ]
    return {"stores": {"elasticsearch": {"costs": {"runs": runs}}}}


def test_the_fit_finds_the_per_conflict_costs_and_the_growth_of_conflicts() -> None:
    c = costs_from(_results(), 100)
    assert c.server_ms == pytest.approx(0.5)  # claim/done 0.4 + enqueue 0.1
    assert c.node_ms == pytest.approx(0.6)
    assert c.conflicts_per_extra_server == pytest.approx(1.0)
    assert c.server_ms_per_conflict == pytest.approx(0.2)
    assert c.node_ms_per_conflict == pytest.approx(0.2)
    assert c.copy_share == pytest.approx(0.75)
    assert c.query_share == pytest.approx(0.25)
    assert c.refreshes_per_extra_server == pytest.approx(0.002)
    assert c.refresh_ms == pytest.approx(10.0)


def _rate(prediction: tuple[float, str]) -> tuple[float, str]:
    return round(prediction[0], 6), prediction[1]


def test_the_prediction_is_the_tightest_bound() -> None:
    c = costs_from(_results(), 100)
    # one server: 1000 / 0.5 ms = 2,000/s; one node: 1000 / 0.6 ms = 1,667/s
    assert _rate(predict(c, 1, 1, 1, 0, shared_queue=False)) == (round(1000 / 0.6, 6), "nodes")
    # a replica doubles the per-copy work but adds a core: 2 x 1000 / (0.6 x (2 x 0.75 + 0.25)) = 1,905/s
    assert _rate(predict(c, 100, 3, 1, 1, shared_queue=False)) == (round(2000 / (0.6 * 1.75), 6), "nodes")
    # one shard copy per node at most: a third data node adds nothing to one shard with one replica
    assert predict(c, 100, 12, 1, 1, shared_queue=False) == predict(c, 100, 3, 1, 1, shared_queue=False)
    # contention: node CPU per task grows with the servers, so more servers on one queue lower the limit
    shared = [predict(c, s, 12, 12, 1, shared_queue=True)[0] for s in (5, 10, 20)]
    assert shared == sorted(shared, reverse=True)
    assert _rate(predict(c, 2, 12, 12, 1, shared_queue=False)) == (2 * 1000 / 0.5, "servers")


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("POST /{prefix}-tasks/_search (hits)", "search"),
        ("PUT /_bulk", "bulk"),
        ("POST /{prefix}-tasks/_refresh", "refresh"),
        ("POST /{prefix}-tasks/_mget", "get"),
        ("GET /{prefix}-locks/_doc/{id}", "get"),
        ("HEAD /{prefix}-tasks/_doc/{id}", "get"),
        ("PUT /{prefix}-locks/_doc/{id}", "index"),
        ("PUT /{prefix}-locks/_create/{id}", "index"),
        ("DELETE /{prefix}-locks/_doc/{id}", "index"),
        ("PUT /_index_template/{prefix}-tasks", "other"),
    ],
)
def test_requests_are_told_apart_by_kind(endpoint: str, kind: str) -> None:
    assert kind_of(endpoint) == kind
