"""monitoring/grafana/tasques.json: a Grafana 10/11 dashboard whose queries go through the datasource variable,
filtered by the `$job` and `$queue` variables. (No Grafana runs here: Debian does not package it. That every
query reads only exported metrics and evaluates on a real Prometheus: test_prometheus_e2e.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.monitoring.prometheus import DASHBOARD
from tests.monitoring.promql import dashboard_exprs, metric_names, panels

BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text())
EXPRS = dashboard_exprs(DASHBOARD)
CLUSTER_WIDE = {"tasques_tasks", "tasques_queue_oldest_task_age_seconds"}  # read from the store by every server
QUEUE_LABELLED = {  # the metrics with a queue label (tasques/observe/README.md)
    "tasques_tasks_created_total",
    "tasques_tasks_claimed_total",
    "tasques_tasks_finished_total",
    "tasques_task_claim_latency_seconds",
    "tasques_task_run_duration_seconds",
    "tasques_tasks",
    "tasques_queue_oldest_task_age_seconds",
    "tasques_claim_conflicts_total",
    "tasques_claims_expired_total",
    "tasques_http_target_dispatches_total",
    "tasques_http_target_dispatch_duration_seconds",
}


def test_schema_and_identity() -> None:
    assert BOARD["schemaVersion"] == 39  # Grafana 10.4 and 11 write 39 (and migrate older ones up)
    assert BOARD["uid"] == "tasques"
    assert BOARD["title"] == "Tasques"


def test_variables() -> None:
    variables = {var["name"]: var for var in BOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queue = variables["queue"]
    assert queue["query"]["query"] == 'label_values(tasques_tasks{job=~"$job"}, queue)'
    assert queue["multi"] is True
    assert queue["includeAll"] is True
    assert queue["allValue"] == ".*"
    assert variables["job"]["query"]["query"] == "label_values(tasques_build_info, job)"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in panels(BOARD):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_panel_ids_unique_and_grid_without_overlap() -> None:
    ids = [panel["id"] for panel in panels(BOARD)]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels(BOARD):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_brief_panels_are_there() -> None:
    exprs = " ".join(EXPRS.values())
    for needle in [
        "max without(instance) (tasques_tasks{",  # backlog, deduplicated across servers
        "rate(tasques_tasks_finished_total{",
        "histogram_quantile(0.99, sum by (le) (rate(tasques_task_claim_latency_seconds_bucket{",
        "sum by (le, method, route) (rate(tasques_http_request_duration_seconds_bucket{",
        "sum by (le, backend, operation) (rate(tasques_store_operation_duration_seconds_bucket{",
        "tasques_leader{",
        "rate(tasques_http_target_dispatches_total{",
    ]:
        assert needle in exprs, needle


@pytest.mark.parametrize(("where", "expr"), EXPRS.items(), ids=list(EXPRS))
def test_query_is_filtered_by_the_variables(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    for name in names & CLUSTER_WIDE:
        assert where == "variable queue" or re.search(rf"max (without\(instance\)|by \([^)]*\)) \({name}\{{", expr)
    for name, selector in re.findall(r"\b((?:tasques|process)_\w+)\{([^}]*)\}", expr):
        if where != "variable job":
            assert 'job=~"$job"' in selector, selector
        if where != "variable queue" and _base(name) in QUEUE_LABELLED:
            assert 'queue=~"$queue"' in selector, selector


def _base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)
